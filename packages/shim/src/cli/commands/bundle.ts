import { defineCommand } from "@tsrun/runtime/src/cli/def.ts";
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
    remove: { type: "boolean", description: "unmount and remove the bundle DIR made earlier instead" },
    id: { type: "string", description: "name of the bundle's rootfs in the image store (default: the directory's name)" },
    ...imageSpecFlags,
  },
  args: [{ name: "dir", description: "bundle directory (new or empty)", required: true }],
  variadic: true,
  run(ctx, flags, args) {
    return userErrors(async () => {
      const svc = images(flags);
      const [dir, ...cmd] = args as [string, ...string[]];
      if (flags.remove) {
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
