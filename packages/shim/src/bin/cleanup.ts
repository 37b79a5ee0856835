// `delete`, the shim's other short-lived command: it cleans up after a shim that is gone (the
// runtime's state, the rootfs mounts, the socket).
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { timestamp } from "../ttrpc/codec.ts";
import { taskProto } from "../task/proto.ts";
import { Reaper } from "../task/reaper.ts";
import { unmountRootfs } from "../task/rootfs.ts";
import { loadSavedOptions, newRuntime } from "../task/service.ts";
import { connectable } from "./manager.ts";
import type { ShimFlags } from "./flags.ts";

/**
 * `delete`: what a shim that died would have cleaned up. Idempotent: containerd runs it after
 * every normal Shutdown too. Problems are reported on stderr (containerd logs them as warnings);
 * the DeleteResponse goes to stdout either way.
 */
export async function deleteShim(f: ShimFlags): Promise<Uint8Array> {
  if (!f.id) throw new Error("delete: -id is required");
  const namespace = f.namespace || "default";
  const bundle = f.bundle || process.cwd();
  const saved = loadSavedOptions(bundle);
  try {
    const runtime = newRuntime(saved, namespace, bundle, new Reaper());
    await runtime.delete(f.id, true);
  } catch (err) {
    const message = (err as Error).message;
    if (!/does not exist|not found/i.test(message)) console.error(`containerd-shim-tsrun-v2 delete ${f.id}: ${message}`);
  }
  try {
    unmountRootfs(join(bundle, "rootfs"));
  } catch (err) {
    console.error(`containerd-shim-tsrun-v2 delete ${f.id}: unmounting the rootfs: ${(err as Error).message}`);
  }
  await removeDeadSocket(bundle);
  let pid = 0;
  try {
    pid = Number(readFileSync(join(bundle, "init.pid"), "utf8").trim()) || 0;
  } catch {
    // Create never got as far as the pid file.
  }
  // 137 = 128 + SIGKILL: the container died with its shim, as far as anyone can tell.
  return taskProto().deleteResponse.encode({ pid, exitStatus: 137, exitedAt: timestamp(Date.now()) });
}

async function removeDeadSocket(bundle: string): Promise<void> {
  let address: string;
  try {
    address = readFileSync(join(bundle, "address"), "utf8").trim();
  } catch {
    return;
  }
  if (!address.startsWith("unix://")) return;
  const path = address.slice("unix://".length);
  if (!(await connectable(path))) rmSync(path, { force: true });
}
