// `delete` for containers of images: the runtime's own delete, then, for a container that
// `run --image` made (its bundle is the image store's bundles/<id>), its bundle with it: the
// writable layer and the rootfs mount, as `docker rm` removes a container's layer. The image
// code is loaded only for such a container: delete stays on the start path's budget.
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import runtimeDelete from "@tsrun/runtime/src/cli/commands/delete.ts";
import { defineCommand } from "@tsrun/runtime/src/cli/def.ts";
import { Store } from "@tsrun/runtime/src/container/store.ts";

/** The image store a bundle of `run --image` belongs to, or undefined for any other bundle. */
function imageStoreOf(bundle: string): string | undefined {
  const root = dirname(dirname(bundle));
  return basename(dirname(bundle)) === "bundles" && existsSync(join(root, "containers")) && existsSync(join(bundle, "config.json")) ? root : undefined;
}

export default defineCommand({
  ...runtimeDelete,
  description: `${runtimeDelete.description ?? ""} A container made by \`tsrun run --image\` is removed with its bundle: its writable layer and its root filesystem's mount.`,
  async run(ctx, flags, args) {
    let bundle: string | undefined;
    try {
      bundle = new Store(ctx.globals.root).read(args[0]!).bundle;
    } catch {
      // missing or damaged: the runtime's delete says so, or --force cleans up what it finds
    }
    const code = await runtimeDelete.run(ctx, flags, args);
    const store = bundle && imageStoreOf(bundle);
    if (store && bundle) {
      const { LocalImages } = await import("../../image/local.ts");
      await new LocalImages(store).removeBundle(bundle);
    }
    return code;
  },
});
