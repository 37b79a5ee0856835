// `start`, the shim's short-lived command containerd runs with the bundle as cwd: it spawns the
// long-lived daemon (this binary without an action), waits until it answers on its socket,
// writes <bundle>/address and prints the address. It loads none of the Task service's modules
// (containerd waits for it on every container start); `delete` is in cleanup.ts.
import { closeSync, constants, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fcntl } from "@tsrun/runtime/linux";
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

/**
 * The argv that runs this program again, and the argv[0] to give it. Compiled, the shim is the
 * tsrun executable run under the shim's name, and process.execPath is the executable itself
 * (symlinks resolved), so the name goes in argv[0] (what cli/bin.ts dispatches on). From source,
 * bun runs the entry script.
 */
export function selfCommand(): { argv: string[]; argv0: string } {
  if (Bun.main.startsWith("/$bunfs/")) return { argv: [process.execPath], argv0: process.argv0 };
  return { argv: [process.execPath, Bun.main], argv0: process.execPath };
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
  const self = selfCommand();
  const argv = [...self.argv, "-namespace", namespace, "-id", f.id, "-address", f.address, "-socket", socket];
  if (f.publishBinary) argv.push("-publish-binary", f.publishBinary);
  if (f.debug) argv.push("-debug");
  // The daemon must not hold containerd's output pipe (stdout and stderr of this process):
  // containerd reads until every holder has closed it. Its stderr is the shim log instead.
  const daemon = Bun.spawn(argv, { argv0: self.argv0, cwd: bundle, stdio: ["ignore", "ignore", log], detached: true });
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
