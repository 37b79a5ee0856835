// `run` with --image: the runtime's own `run` (same flags, same fast parser) when no image is
// named; with one, a bundle is made from the image first (under the image store's
// bundles/<ID>) and, with --rm, removed after the container is gone. The image code
// is loaded only for --image: a plain `run` stays on the start path's budget.
import { defineCommand, CliError } from "@tsrun/runtime/cli";
import runtimeRun from "@tsrun/runtime/cli/run";
import { bundleSpecOptions, imageSpecFlags, networkFlags } from "./flags.ts";

export default defineCommand({
  ...runtimeRun,
  summary: "create and start a container (from a bundle, or from an image with --image), and wait for it unless --detach",
  description: `${runtimeRun.description ?? ""} With --image REF the bundle is made from the image first (as \`tsrun bundle\` does, in the image store), ARGS after the id replace the image's Cmd, and --rm removes the container (its root filesystem, bundle and log) when it exits. A container of an image has a monitor (the tsrun binary in a hidden mode, in a session of its own) that holds its stdio: its output goes to a log in containerd's CRI format (\`tsrun logs\`), and with -d tsrun prints the id and returns while it runs on; in the foreground (or with \`tsrun attach\`) its stdout and stderr come here, stdin too with -i, a terminal with -t (raw, resized on SIGWINCH), and the detach keys (ctrl-p ctrl-q) leave it running. It is kept when it exits (\`tsrun container ls\`, \`tsrun logs\`, \`tsrun commit\`) until \`tsrun delete\` removes it. The container gets a network namespace of its own on tsrun's bridge (CNI plugins; the network's conflist is networks/tsrun.conflist in the image store, written on first use), with its own /etc/hosts, /etc/hostname and /etc/resolv.conf; its monitor releases the network when it exits (and, with --rm, also with -d, removes the container), or \`tsrun delete\` does.`,
  examples: [...(runtimeRun.examples ?? []), "tsrun run --image busybox --rm demo -- sh -c 'echo hello'", "tsrun run --image busybox -d -p 8080:80 web -- httpd -f -p 80", "tsrun run --image localhost/debian:12 --rm -it shell -- bash"],
  flags: {
    ...runtimeRun.flags,
    image: { type: "string", description: "run the image REF: make its bundle first (flags below shape its config)" },
    rm: { type: "boolean", description: "with --image: remove the container's bundle and root filesystem when it exits" },
    "image-root": { type: "string", description: "with --image: image store directory (default /var/lib/tsrun, or $TSRUN_IMAGE_ROOT)" },
    ...imageSpecFlags,
    ...networkFlags,
    interactive: { type: "boolean", char: "i", description: "with --image: keep the container's stdin open and attach ours to it" },
    "detach-keys": { type: "string", description: "with --image: the keys that detach from the container and leave it running (Docker's form, default ctrl-p,ctrl-q)" },
  },
  args: [{ name: "id", description: "the container id, unique on this root; with --image, ARGS after -- replace the image's Cmd", required: true }],
  variadic: true,
  usage: ["run [FLAGS] ID", "run --image REF [FLAGS] ID [-- ARGS...]"],
  async run(ctx, flags, args) {
    const [id, ...cmd] = args as [string, ...string[]];
    if (flags.image === undefined) {
      const imageOnly = (["rm", "image-root", "env", "user", "workdir", "entrypoint", "tty", "hostname", "read-only", "net", "publish", "interactive", "detach-keys"] as const).filter((f) =>
        Array.isArray(flags[f]) ? (flags[f] as string[]).length > 0 : flags[f] !== undefined && flags[f] !== false,
      );
      if (imageOnly.length) throw new CliError(`--${imageOnly[0]} needs --image`);
      if (cmd.length) throw new CliError(`unexpected argument: ${cmd[0]} (a command line after the id needs --image)`);
      return runtimeRun.run(ctx, flags, [id]);
    }
    if (flags.bundle !== undefined) throw new CliError("--bundle and --image exclude each other");
    const { runFromImage } = await import("./run-image.ts");
    return runFromImage(ctx, { ...flags, image: flags.image }, id, cmd, bundleSpecOptions(flags));
  },
});
