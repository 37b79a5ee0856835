// The commands this package adds to tsrun. `run` is replaced by one that also takes --image and
// hands everything else to the runtime's own `run` (still on the fast parser: it is hot).
import { entry, type CommandEntry } from "@tsrun/runtime/cli";

export const IMAGE_COMMANDS: Record<string, CommandEntry> = {
  run: entry("create and start a container (from a bundle, or from an image with --image), and wait for it unless --detach", true, () => import("./commands/run.ts")),
  delete: entry("delete a container and everything it holds (with an image container's writable layer)", true, () => import("./commands/delete.ts")),
  // Parsed by the runc-like parser: it leaves everything after the directory (or "--") alone.
  bundle: entry("make a runtime bundle (config.json + rootfs) from an image", true, () => import("./commands/bundle.ts")),
  commit: entry("make a new image from a container's changes to its image", false, () => import("./commands/commit.ts")),
  "image import": entry("import an OCI image layout (dir or tar) or a docker-archive tar", false, () => import("./commands/image-import.ts")),
  "image pull": entry("pull an image from an OCI distribution registry", false, () => import("./commands/image-pull.ts")),
  "image push": entry("push an image to an OCI distribution registry", false, () => import("./commands/image-push.ts")),
  "image ls": entry("list the images of the image store", false, () => import("./commands/image-ls.ts")),
  "image inspect": entry("show an image's manifest, config and layers as JSON", false, () => import("./commands/image-inspect.ts")),
  "image serve": entry("serve the image store over gRPC (tsrun.image.v1.Images)", false, () => import("./commands/image-serve.ts")),
  "image rm": entry("remove images (and the blobs and snapshots nothing else uses)", false, () => import("./commands/image-rm.ts")),
  logs: entry("show the output of a container of `run --image` (its CRI log)", false, () => import("./commands/logs.ts")),
  attach: entry("attach to a running container of `run --image`: its stdin, stdout and stderr", true, () => import("./commands/attach.ts")),
  // Not `list` or `ps`: those are runc's (every container of the state root; a container's processes).
  "container ls": entry("list the containers of `run --image` with image, command, status, age and ports (runc's `list` shows every container of the root)", false, () => import("./commands/container-ls.ts")),
};

// The monitor of an image container is the tsrun binary in a hidden mode, started by tsrun
// itself with $_TSRUN_MONITOR set: it is registered only then, and is in no help.
if (process.env._TSRUN_MONITOR === "1") IMAGE_COMMANDS.__monitor = entry("monitor an image container (internal)", true, () => import("./commands/monitor.ts"));

// `run -it`, `-dit`: Docker's grouped short flags, which users of `run --image` type. The fast
// parser takes one flag per word (as runc's does), so the groups of run's own boolean flags
// -d, -i and -t are split here, before the command line is parsed, and nothing else is.
{
  const argv = process.argv;
  const withValue = new Set(["--root", "--log", "--log-format"]);
  let at = 2;
  while (at < argv.length && argv[at]!.startsWith("-")) at += withValue.has(argv[at]!) ? 2 : 1;
  if (argv[at] === "run")
    for (let i = at + 1; i < argv.length && argv[i] !== "--"; i++)
      if (/^-[dit]{2,3}$/.test(argv[i]!) && new Set(argv[i]!.slice(1)).size === argv[i]!.length - 1) argv.splice(i, 1, ...[...argv[i]!.slice(1)].map((c) => `-${c}`));
}
