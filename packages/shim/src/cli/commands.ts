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
};
