// `delete` for containers of images: the runtime's own delete, then, for a container that
// `run --image` made (its bundle is the image store's bundles/<id>), its network (CNI DEL from
// the attachment's record, its namespace) and its bundle: the writable layer and the rootfs
// mount, as `docker rm` removes a container's layer. The image and network code is loaded only
// for such a container: delete stays on the start path's budget.
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import runtimeDelete from "@tsrun/runtime/cli/delete";
import { defineCommand, CliError } from "@tsrun/runtime/cli";
import { deleteContainer, Store, type ContainerRecord } from "@tsrun/runtime";
import { cniContainerId, recordPath } from "../../network/paths.ts";

/** The image store a bundle of `run --image` belongs to, or undefined for any other bundle. */
function imageStoreOf(bundle: string): string | undefined {
  const root = dirname(dirname(bundle));
  return basename(dirname(bundle)) === "bundles" && existsSync(join(root, "containers")) && existsSync(join(bundle, "config.json")) ? root : undefined;
}

/** The default image store, where `run --image` without --image-root put its containers. */
function defaultImageRoot(): string {
  return process.env.TSRUN_IMAGE_ROOT ?? "/var/lib/tsrun";
}

export default defineCommand({
  ...runtimeDelete,
  description: `${runtimeDelete.description ?? ""} A container made by \`tsrun run --image\` is removed with its network (CNI DEL, also of an attachment a killed tsrun left half made) and its bundle: its writable layer and its root filesystem's mount.`,
  async run(ctx, flags, args) {
    const id = args[0]!;
    const state = new Store(ctx.globals.root);
    let rec: ContainerRecord | undefined;
    try {
      rec = state.read(id);
    } catch {
      // missing or damaged: the runtime's delete says so, or --force cleans up what it finds
    }
    let bundle = rec?.bundle;
    // The record read here is the runtime's: it is not read a second time.
    deleteContainer(state, id, flags.force, rec);
    // The network after the container: no process of it is left to use it. Its record is found
    // even when the runtime has no state of the container (tsrun killed after the network was
    // made but before the container was): then in the default store, where such a run made it,
    // and the record names the bundle that run made.
    const cid = cniContainerId(ctx.globals.root, id);
    const netStore = (bundle && imageStoreOf(bundle)) || defaultImageRoot();
    if (existsSync(recordPath(netStore, cid))) {
      const { readRecord, teardownNetwork } = await import("../../network/attach.ts");
      try {
        bundle ??= readRecord(netStore, cid)?.bundle;
        await teardownNetwork(netStore, cid);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
    }
    const store = bundle && imageStoreOf(bundle);
    if (store && bundle) {
      const { LocalImages } = await import("../../image/local.ts");
      await new LocalImages(store).removeBundle(bundle);
    }
    return 0;
  },
});
