// The shim's two short-lived commands, run by containerd with the bundle as cwd:
// - `start` spawns the long-lived daemon (this binary without an action), waits until it
//   answers on its socket, writes <bundle>/address and prints the address;
// - `delete` cleans up after a shim that is gone: the runtime's state, the rootfs mounts, the socket.
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fcntl } from "@tsrun/runtime/linux";
import { timestamp } from "../ttrpc/codec.ts";
import { taskProto } from "../task/proto.ts";
import { Reaper } from "../task/reaper.ts";
import { unmountRootfs } from "../task/rootfs.ts";
import { loadSavedOptions, newRuntime } from "../task/service.ts";
import type { ShimFlags } from "./flags.ts";

/** Where runc's shim puts its sockets; containerd 1.6 does not pass a directory. */
export const SOCKET_DIR = "/run/containerd/s";
/** sun_path holds 108 bytes; containerd's own limit is 106. */
const MAX_SOCKET_PATH = 106;
const START_TIMEOUT_MS = 10_000;

/** One shim per container: the socket is named after containerd's address, the namespace and the id, as runc's is. */
export function socketPath(address: string, namespace: string, id: string, dir = SOCKET_DIR): string {
  const hash = new Bun.CryptoHasher("sha256").update(join(address, namespace, id)).digest("hex");
  const path = join(dir, hash);
  if (path.length > MAX_SOCKET_PATH) throw new Error(`shim socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes`);
  return path;
}

/** The argv that runs this program again (a compiled binary, or bun with the entry script). */
export function selfCommand(): string[] {
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
}

export async function startShim(f: ShimFlags): Promise<string> {
  if (!f.id) throw new Error("start: -id is required");
  const namespace = f.namespace || "default";
  const bundle = process.cwd();
  // containerd writes the task options to stdin; read them all so its writer never sees EPIPE.
  // (They are unused here: Create receives the same options.)
  if (!process.stdin.isTTY) await Bun.stdin.bytes();
  const socket = socketPath(f.address, namespace, f.id);
  const address = `unix://${socket}`;
  if (await connectable(socket)) {
    // A shim for this id already runs (containerd retried start): hand out its address.
    writeFileSync(join(bundle, "address"), address);
    return address;
  }
  rmSync(socket, { force: true });
  mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
  const log = openLog(bundle);
  const argv = [...selfCommand(), "-namespace", namespace, "-id", f.id, "-address", f.address, "-socket", socket];
  if (f.publishBinary) argv.push("-publish-binary", f.publishBinary);
  if (f.debug) argv.push("-debug");
  // The daemon must not hold containerd's output pipe (stdout and stderr of this process):
  // containerd reads until every holder has closed it. Its stderr is the shim log instead.
  const daemon = Bun.spawn(argv, { cwd: bundle, stdio: ["ignore", "ignore", log], detached: true });
  closeSync(log);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (await connectable(socket)) break;
    if (daemon.exitCode !== null || daemon.signalCode !== null) throw new Error(`shim daemon exited (${daemon.exitCode ?? daemon.signalCode}) before serving ${socket}; see the shim log`);
    if (Date.now() > deadline) {
      daemon.kill("SIGKILL");
      rmSync(socket, { force: true });
      throw new Error(`shim daemon did not serve ${socket} within ${START_TIMEOUT_MS} ms`);
    }
    await Bun.sleep(5);
  }
  daemon.unref();
  writeFileSync(join(bundle, "address"), address);
  return address;
}

/**
 * The daemon's stderr: containerd's `log` fifo in the bundle (containerd holds it open for
 * reading, so a non-blocking open succeeds), or `shim.log` in the bundle when there is none.
 */
function openLog(bundle: string): number {
  const fifo = join(bundle, "log");
  if (existsSync(fifo)) {
    try {
      const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      fcntl(fd, 4 /* F_SETFL */, fcntl(fd, 3 /* F_GETFL */) & ~constants.O_NONBLOCK);
      return fd;
    } catch {
      // No reader (containerd gone): fall back to a file.
    }
  }
  return openSync(join(bundle, "shim.log"), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600);
}

export async function connectable(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  try {
    const s = await Bun.connect({ unix: path, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

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
