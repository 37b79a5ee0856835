// `delete` for containers of images: the runtime's own delete, then, for a container that
// `run --image` made (its bundle is the image store's bundles/<id>), its monitor, its network
// (CNI DEL from the attachment's record, its namespace) and its bundle: the writable layer, the
// rootfs mount and the log, as `docker rm` removes a container. The image and network code is
// loaded only for such a container: delete stays on the start path's budget.
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import runtimeDelete from "@tsrun/runtime/cli/delete";
import { defineCommand, CliError } from "@tsrun/runtime/cli";
import { deleteContainer, Store, type ContainerRecord } from "@tsrun/runtime";
import { cniContainerId, recordPath } from "../../network/paths.ts";

/** The image store a bundle of `run --image` belongs to, or undefined for any other bundle. */
export function imageStoreOf(bundle: string): string | undefined {
  const root = dirname(dirname(bundle));
  return basename(dirname(bundle)) === "bundles" && existsSync(join(root, "containers")) && existsSync(join(bundle, "config.json")) ? root : undefined;
}

/** The default image store, where `run --image` without --image-root put its containers. */
function defaultImageRoot(): string {
  return process.env.TSRUN_IMAGE_ROOT ?? "/var/lib/tsrun";
}

/**
 * Releases a container's network (CNI DEL, its namespace), found by its record even when the
 * runtime has no state of the container; returns the bundle the record names.
 */
export async function releaseNetwork(root: string, id: string, imageRoot: string): Promise<string | undefined> {
  const cid = cniContainerId(root, id);
  if (!existsSync(recordPath(imageRoot, cid))) return undefined;
  const { readRecord, teardownNetwork } = await import("../../network/attach.ts");
  try {
    const bundle = readRecord(imageRoot, cid)?.bundle;
    await teardownNetwork(imageRoot, cid);
    return bundle;
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** Stops waiting for the container's monitor (it drains, records the exit, releases the network), then ends it. */
async function endMonitor(bundle: string): Promise<void> {
  if (!existsSync(join(bundle, "monitor.json"))) return;
  const { readMonitorRecord, monitorAlive } = await import("../../monitor/files.ts");
  const m = readMonitorRecord(bundle);
  if (!m || m.pid === process.pid) return;
  for (let i = 0; i < 100 && monitorAlive(m); i++) await Bun.sleep(50);
  if (!monitorAlive(m)) return;
  try {
    process.kill(m.pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 200 && monitorAlive(m); i++) await Bun.sleep(10);
}

/** `tsrun delete [--force] ID`: the container, its monitor, network and bundle. */
export async function removeContainer(root: string, id: string, force: boolean, imageRoot?: string): Promise<void> {
  const state = new Store(root);
  let rec: ContainerRecord | undefined;
  try {
    rec = state.read(id);
  } catch {
    // missing or damaged: the runtime's delete says so, or --force cleans up what it finds
  }
  let bundle = rec?.bundle;
  // The record read here is the runtime's: it is not read a second time.
  deleteContainer(state, id, force, rec);
  // The init is gone: its monitor finishes (or is ended) before anything it uses goes.
  const store0 = bundle && imageStoreOf(bundle);
  if (bundle && store0) await endMonitor(bundle);
  // The network after the container: no process of it is left to use it. Its record is found
  // even when the runtime has no state of the container (tsrun killed after the network was
  // made but before the container was): then in the default store, where such a run made it,
  // and the record names the bundle that run made.
  const netStore = store0 || imageRoot || defaultImageRoot();
  const recorded = await releaseNetwork(root, id, netStore);
  bundle ??= recorded;
  const store = bundle && imageStoreOf(bundle);
  if (store && bundle) {
    const { LocalImages } = await import("../../image/local.ts");
    await new LocalImages(store).removeBundle(bundle);
  }
}

export default defineCommand({
  ...runtimeDelete,
  description: `${runtimeDelete.description ?? ""} A container made by \`tsrun run --image\` is removed with everything it holds: its monitor, its network (CNI DEL, also of an attachment a killed tsrun left half made), its log and its bundle (its writable layer and its root filesystem's mount), as \`docker rm\` removes a container.`,
  async run(ctx, flags, args) {
    await removeContainer(ctx.globals.root, args[0]!, flags.force);
    return 0;
  },
});
