// `start`, the shim's short-lived command containerd runs with the bundle as cwd: it finds the
// daemon that serves the container's group (pod, group annotation, or namespace) and has room
// for it, or spawns one (this binary without an action) and waits until it answers on its
// socket; then it writes <bundle>/address and prints the address. It loads none of the Task service's modules
// (containerd waits for it on every container start); `delete` is in cleanup.ts.
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { isatty } from "node:tty";
import { join } from "node:path";
import { fcntl, flock } from "@tsrun/runtime/linux";
import type { ShimFlags } from "./flags.ts";
import { connectable } from "./socket.ts";
import { announcedVersion, bootstrapFromStdin, engineOf, probeContainerdVersion, protocolFromEnv, startOutput, type Protocol } from "./bootstrap.ts";

/** Where runc's shim puts its sockets; containerd 1.6 does not pass a directory. */
export const SOCKET_DIR = "/run/containerd/s";
/** sun_path holds 108 bytes; containerd's own limit is 106. */
const MAX_SOCKET_PATH = 106;
const START_TIMEOUT_MS = 10_000;
/** How long `start` waits for a running daemon to answer a reservation. */
const RESERVE_TIMEOUT_MS = 5_000;
/** Shims per group at most (each holding up to the group cap). */
const MAX_SLOTS = 1024;
const LOCK_EX = 2;

/** The annotations that put a container into a group (the first one present wins). */
export const POD_ANNOTATION = "io.kubernetes.cri.sandbox-id";
export const GROUP_ANNOTATION = "io.containerd.runc.v2.group";
/**
 * Containers per shim daemon. One Bun process costs ~50 MB whatever it serves, so sharing it is
 * what makes the shim cheap; but its containers share its fate (a crashed or killed daemon takes
 * every task it serves out of containerd's hands) and its one event loop (IO copying, reaping,
 * every Task call). 32 brings the fixed cost under 2 MB a container while bounding that blast
 * radius and the daemon's fds (each task holds its stdio fifos). TSRUN_SHIM_GROUP_MAX (from
 * containerd's environment) overrides it.
 */
export const DEFAULT_GROUP_MAX = 32;
/** Env override of DEFAULT_GROUP_MAX, read by `start` and by the daemon. */
export const GROUP_MAX_ENV = "TSRUN_SHIM_GROUP_MAX";
/** The daemon's membership service, spoken by `start` only (containerd never calls it). */
export const GROUP_SERVICE = "tsrun.shim.v1.Group";

export function groupMax(env: Record<string, string | undefined> = process.env): number {
  const v = Number(env[GROUP_MAX_ENV]);
  return Number.isInteger(v) && v > 0 ? v : DEFAULT_GROUP_MAX;
}

/**
 * The group of the container whose bundle this is: its pod (CRI's sandbox id, which the pause
 * container carries as its own id), else the runc shim's group annotation, else its containerd
 * namespace as a whole. containerd passes `start` no labels, only the bundle: a container label
 * reaches the shim only if the client also copies it into the spec's annotations.
 */
export function groupOf(bundle: string): string {
  let annotations: Record<string, unknown> = {};
  try {
    const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as { annotations?: Record<string, unknown> };
    if (spec && typeof spec.annotations === "object" && spec.annotations !== null) annotations = spec.annotations;
  } catch {
    // No readable spec: Create will say what is wrong with it; group by namespace meanwhile.
  }
  const pod = annotations[POD_ANNOTATION];
  if (typeof pod === "string" && pod) return `pod:${pod}`;
  const group = annotations[GROUP_ANNOTATION];
  if (typeof group === "string" && group) return `group:${group}`;
  return "namespace";
}

/**
 * The socket of a group's shim number `slot` (a full group spills into the next slot's shim).
 * Named, as runc's, after containerd's address, the namespace and the group, plus this
 * executable, so that another build of the shim never receives this one's containers.
 */
export function socketPath(address: string, namespace: string, group: string, slot = 0, dir = SOCKET_DIR, self = selfCommand().argv.join(" ")): string {
  const hash = new Bun.CryptoHasher("sha256").update(JSON.stringify([address, namespace, group, slot, self])).digest("hex");
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

/** A shim daemon's answer to a reservation; "absent" when none listens on the socket. */
type Reservation = "ok" | "full" | "gone" | "absent";

/**
 * Asks the daemon at `socket` to hold a place for container `id`. One connection both finds
 * whether a daemon serves the socket and asks it: `start` runs on every container start.
 */
async function reserve(socket: string, id: string): Promise<Reservation> {
  if (!existsSync(socket)) return "absent";
  const { TtrpcClient } = await import("../ttrpc/client.ts");
  const { Code, TtrpcError } = await import("../ttrpc/status.ts");
  let client;
  try {
    client = await TtrpcClient.connect(socket);
  } catch {
    // A stale socket file of a daemon that is gone.
    return "absent";
  }
  try {
    await client.call(GROUP_SERVICE, "Reserve", new TextEncoder().encode(id), { timeoutMs: RESERVE_TIMEOUT_MS });
    return "ok";
  } catch (err) {
    if (err instanceof TtrpcError && err.code === Code.RESOURCE_EXHAUSTED) return "full";
    // Shutting down (UNAVAILABLE), hung, or not a shim of ours: use another slot.
    return "gone";
  } finally {
    client.close();
  }
}

export async function startShim(f: ShimFlags): Promise<string> {
  if (!f.id) throw new Error("start: -id is required");
  const namespace = f.namespace || "default";
  const bundle = process.cwd();
  // containerd writes the task options to stdin (2.3+: BootstrapParams, with the options inside);
  // read them all so its writer never sees EPIPE. The options are unused here: Create receives them.
  const stdin = await readStdin();
  const protocol = protocolFromEnv();
  const engine = engineOf(bootstrapFromStdin(stdin, f.id, namespace), process.env);
  const version = await announcedVersion(engine, protocol, () => probeContainerdVersion(f.address));
  const group = groupOf(bundle);
  // A gRPC daemon is another daemon than the group's ttrpc one (another socket).
  const key = protocol === "grpc" ? `${group}@grpc` : group;
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o700 });
  // Starts take turns (a lock on the socket directory, released when this process exits at the
  // latest): two starts of one group must not both spawn a daemon for the same socket.
  const lock = openSync(SOCKET_DIR, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    flock(lock, LOCK_EX);
    for (let slot = 0; slot < MAX_SLOTS; slot++) {
      const socket = socketPath(f.address, namespace, key, slot);
      // The group's shim, if it runs, takes this container unless it is full or going away.
      const reservation = await reserve(socket, f.id);
      if (reservation === "absent") await spawnDaemon(f, namespace, group, bundle, socket, protocol);
      else if (reservation !== "ok") continue;
      // containerd 1.6 and 1.7 read this file (as they read the output) to reconnect after a restart.
      const output = startOutput(socket, protocol, version);
      writeFileSync(join(bundle, "address"), output);
      return output;
    }
    throw new Error(`no shim slot left for group ${group} of namespace ${namespace} (${MAX_SLOTS} shims)`);
  } finally {
    closeSync(lock);
  }
}

/**
 * Reads fd 0 to its end with plain reads (Bun's stdin stream costs milliseconds to set up); a
 * terminal or a missing fd is left alone (nothing read), and a non-blocking pipe goes through the stream.
 */
export async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  try {
    if (isatty(0)) return new Uint8Array(0);
    for (;;) {
      const buf = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(0, buf, 0, buf.length, null);
      if (n <= 0) break;
      chunks.push(buf.subarray(0, n));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EAGAIN") chunks.push(Buffer.from(await Bun.stdin.bytes()));
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** Spawns the daemon that will serve `socket`, with container `id` as its first member, and waits until it answers. */
async function spawnDaemon(f: ShimFlags, namespace: string, group: string, bundle: string, socket: string, protocol: Protocol): Promise<void> {
  rmSync(socket, { force: true });
  const log = openLog(bundle);
  const self = selfCommand();
  const argv = [...self.argv, "-namespace", namespace, "-id", f.id, "-address", f.address, "-socket", socket, "-group", group];
  if (f.publishBinary) argv.push("-publish-binary", f.publishBinary);
  if (f.debug) argv.push("-debug");
  if (protocol === "grpc") argv.push("-protocol", "grpc");
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
