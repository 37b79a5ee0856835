import { existsSync, readFileSync } from "node:fs";
import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, userErrors } from "./common.ts";
import { bundleSpecOptions, imageSpecFlags } from "./flags.ts";

export default defineCommand({
  summary: "make a runtime bundle (config.json + rootfs) from an image",
  description:
    "Makes DIR a bundle that `tsrun run --bundle DIR` runs: rootfs/ is an overlay of the image's layers (unpacked once, shared by every container of the image) with the container's own upper dir, and config.json is made from the image's config the way containerd does it (command, environment, user, working directory, default capabilities, mounts, masked paths, Docker's seccomp profile). ARGS after the directory replace the image's Cmd. `tsrun image rm` keeps the layers a bundle uses; remove the bundle with `tsrun bundle --remove DIR` after deleting its container.",
  examples: ["tsrun bundle --image busybox ./b -- sh -c 'echo hi'", "tsrun bundle --image localhost/demo:1 -e DEBUG=1 -u nobody ./b"],
  flags: {
    ...imageRootFlag,
    image: { type: "string", description: "the image to make the bundle from" },
    remove: { type: "boolean", description: "unmount and remove the bundle DIR made earlier instead (refused while a container runs from it)" },
    force: { type: "boolean", description: "with --remove: kill the processes of a container still running from the bundle first" },
    prune: { type: "boolean", description: "remove the rootfs of every bundle whose directory is gone (removed without --remove)" },
    id: { type: "string", description: "name of the bundle's rootfs in the image store (default: the directory's name and a hash of its path)" },
    ...imageSpecFlags,
  },
  args: [{ name: "dir", description: "bundle directory (new or empty)" }],
  variadic: true,
  run(ctx, flags, args) {
    return userErrors(async () => {
      const svc = images(flags);
      if (flags.prune) {
        if (args.length) throw new Error("bundle --prune takes no directory");
        for (const d of await svc.pruneBundles()) ctx.stdout(`removed ${d}\n`);
        return 0;
      }
      const [dir, ...cmd] = args as [string | undefined, ...string[]];
      if (dir === undefined) throw new Error("bundle: the bundle directory DIR is missing");
      if (flags.force && !flags.remove) throw new Error("bundle: --force goes with --remove");
      if (flags.remove) {
        if (flags.force) await killAndWait(svc.bundleUsers(dir));
        await svc.removeBundle(dir);
        return 0;
      }
      if (flags.image === undefined) throw new Error("bundle: --image is required (or --remove)");
      const b = await svc.bundle({
        image: flags.image,
        dir,
        ...(flags.id !== undefined ? { id: flags.id } : {}),
        ...(cmd.length ? { args: cmd } : {}),
        ...bundleSpecOptions(flags),
      });
      ctx.stdout(`${b.dir}\n`);
      return 0;
    });
  },
});

/** SIGKILLs the processes and waits (up to 10 s) until none of them is left. */
async function killAndWait(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  for (let i = 0; i < 500 && pids.some((p) => existsSync(`/proc/${p}/root`) && !isZombie(p)); i++) await Bun.sleep(20);
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}
