// `delete`, the shim's other short-lived command: it cleans up after a shim that is gone (the
// runtime's state, the rootfs mounts, the socket). containerd 1.6 runs it after every task too,
// once the Task API's Delete is done and the connection closed, and waits for it before the
// client's delete returns: so what is already clean costs no more than reading it. The Task
// service, the runtime and the mount code load only when something is left for them.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs/minimal.js";
import { loadSavedOptions, namesTsrun } from "../task/options.ts";
import { connectable } from "./socket.ts";
import { socketsOf } from "./bootstrap.ts";
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
  // tsrun keeps a container's state in <root>/<namespace>/<id>, made before anything else of it
  // and removed last: without it the runtime has nothing to delete. Another runtime's layout is
  // its own business, so it is always asked.
  if (!namesTsrun(saved.binary_name) || existsSync(join(saved.root, namespace, f.id))) {
    try {
      const [{ newRuntime }, { Reaper }] = await Promise.all([import("../task/service.ts"), import("../task/reaper.ts")]);
      const runtime = newRuntime(saved, namespace, bundle, new Reaper());
      await runtime.delete(f.id, true);
    } catch (err) {
      const message = (err as Error).message;
      if (!/does not exist|not found/i.test(message)) console.error(`containerd-shim-tsrun-v2 delete ${f.id}: ${message}`);
    }
  }
  const rootfs = join(bundle, "rootfs");
  if (mayHaveMounts(rootfs)) {
    try {
      (await import("../task/rootfs.ts")).unmountRootfs(rootfs);
    } catch (err) {
      console.error(`containerd-shim-tsrun-v2 delete ${f.id}: unmounting the rootfs: ${(err as Error).message}`);
    }
  }
  await removeDeadSocket(bundle);
  let pid = 0;
  try {
    pid = Number(readFileSync(join(bundle, "init.pid"), "utf8").trim()) || 0;
  } catch {
    // Create never got as far as the pid file.
  }
  // 137 = 128 + SIGKILL: the container died with its shim, as far as anyone can tell.
  return deleteResponse(pid, 137, Date.now());
}

/**
 * Whether anything may be mounted at or under `rootfs`: its path, as mountinfo escapes it,
 * appears in this mount namespace's table. A cheap superset test; rootfs.ts decides exactly.
 */
export function mayHaveMounts(rootfs: string, info = readFileSync("/proc/self/mountinfo", "utf8")): boolean {
  const escaped = rootfs.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  return info.includes(` ${escaped}`);
}

/**
 * containerd.task.v2.DeleteResponse { uint32 pid = 1; uint32 exit_status = 2;
 * google.protobuf.Timestamp exited_at = 3 }, written with protobufjs's minimal writer: the full
 * codec would parse every .proto file of the Task API for one three-field message. The shim's
 * tests decode it with the full codec.
 */
export function deleteResponse(pid: number, exitStatus: number, ms: number): Uint8Array {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  const w = protobuf.Writer.create();
  if (pid) w.uint32((1 << 3) | 0).uint32(pid);
  if (exitStatus) w.uint32((2 << 3) | 0).uint32(exitStatus);
  w.uint32((3 << 3) | 2).fork();
  if (seconds) w.uint32((1 << 3) | 0).int64(seconds);
  if (nanos) w.uint32((2 << 3) | 0).int32(nanos);
  w.ldelim();
  return w.finish();
}

async function removeDeadSocket(bundle: string): Promise<void> {
  let address: string;
  try {
    address = readFileSync(join(bundle, "address"), "utf8");
  } catch {
    return;
  }
  // A plain ttrpc address, or JSON (a gRPC daemon has its control socket and its gRPC one).
  for (const path of socketsOf(address)) if (!(await connectable(path))) rmSync(path, { force: true });
}
