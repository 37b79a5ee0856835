// The native half of the plan boundary: libtsrun.so (loaded through bun:ffi on first use) and
// the static executor tsrun-exec. Both are embedded in the compiled binary; the executor is
// copied once per process into a sealed memfd and every container init is exec'd from it, so
// /proc/<init>/exe is never tsrun (CVE-2019-5736) and the Bun binary is never copied.
import { dlopen, FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
import libPath from "../../native/build/libtsrun.so" with { type: "file" };
import exePath from "../../native/build/tsrun-exec" with { type: "file" };
import { AF_UNIX, SOCK } from "./constants.ts";
import { exitOp } from "../plan/fold.ts";
import { encodePlan } from "../plan/wire.ts";
import { ERROR_OP_PLAN, FD_KIND, MSG } from "./protocol.ts";
import { close, pollIn, recvWithFd, sealedMemfd, sendBytes, sendFd as sendFdWith, socketpair, SysError } from "./libc.ts";

const { i32, u32, ptr } = FFIType;

/**
 * The path to dlopen. In the compiled binary the library is embedded (a /$bunfs/ path), and
 * Bun's dlopen would extract it to /tmp/.bun-<uid>-<hash>.so, left on every host that ever ran
 * tsrun; instead it goes into a sealed memfd and is loaded through /proc/self/fd/N, which
 * leaves nothing behind. The fd is closed once loaded: the mapping keeps the memory. From the
 * sources (tests) the built file is loaded where it is.
 */
function libraryPath(): { path: string; fd?: number } {
  if (!libPath.startsWith("/$bunfs/")) return { path: libPath };
  const fd = sealedMemfd("libtsrun.so", readFileSync(libPath), true);
  return { path: `/proc/self/fd/${fd}`, fd };
}

function open() {
  const { path, fd } = libraryPath();
  try {
    return load(path);
  } finally {
    if (fd !== undefined) close(fd);
  }
}

function load(path: string) {
  return dlopen(path, {
    tsrun_spawn: { args: [i32, i32, i32, ptr, ptr, i32], returns: i32 },
    tsrun_wire_version: { args: [], returns: u32 },
  });
}

let lib: ReturnType<typeof open>["symbols"] | undefined;
function native(): ReturnType<typeof open>["symbols"] {
  return (lib ??= open().symbols);
}

const EPROTO = 71;

let exeFd: number | undefined;
/** The executor's sealed memfd, made once per process. */
export function executorFd(): number {
  return (exeFd ??= sealedMemfd("tsrun-exec", readFileSync(exePath), true));
}

/**
 * Starts the executor writing "0" to a cgroup.procs file: a move of itself to the cgroup it is
 * already in (see container/warmup.ts). A plan of its own, without exec: the executor writes,
 * then exits 0 (1 when the write fails; its report goes to a socket already closed). Returns
 * its pid; nobody waits for it (it may sit in the kernel for milliseconds, which is the point):
 * tsrun's parent or init reaps it, or the caller.
 */
export function spawnWarmup(procsFile: string): number {
  const plan = encodePlan([{ op: "setRoot", path: "/" }, { op: "writeFile", path: procsFile.replace(/^\/+/, ""), data: "0", inRoot: true }, exitOp(0)]);
  const { pid, sync } = spawnExecutor(plan, { stdio: [-1, -1, -1] });
  sync.close();
  return pid;
}

export interface SpawnOptions {
  /** The container's fds 0, 1, 2 (-1: /dev/null). Default: tsrun's own 0, 1, 2. */
  stdio?: [number, number, number];
  /** Become the container's fds 3, 4, … in this order (runc's --preserve-fds). */
  preserveFds?: number[];
}

export interface Spawned {
  /** Stage 1: reap it. After a `fork` op the init's pid comes as a "pid" message. */
  pid: number;
  sync: SyncChannel;
}

/**
 * Starts the executor on an encoded plan (wire.ts). No Bun code runs in the child: a C
 * function clones it (signals blocked) and execs the executor from its memfd.
 */
export function spawnExecutor(plan: Uint8Array, opts: SpawnOptions = {}): Spawned {
  const version = plan.length >= 8 ? new DataView(plan.buffer, plan.byteOffset, 8).getUint32(4, true) : -1;
  const lib = native();
  if (version !== lib.tsrun_wire_version()) {
    throw new SysError("spawn", EPROTO, `plan wire version ${version}, the executor reads ${lib.tsrun_wire_version()}`);
  }
  const exe = executorFd();
  const planFd = sealedMemfd("tsrun-plan", plan);
  let mine = -1;
  let theirs = -1;
  try {
    [mine, theirs] = socketpair(AF_UNIX, SOCK.SEQPACKET | SOCK.CLOEXEC);
    const stdio = Int32Array.from(opts.stdio ?? [0, 1, 2]);
    const preserve = Int32Array.from(opts.preserveFds ?? []);
    const pid = lib.tsrun_spawn(exe, planFd, theirs, stdio, preserve.length ? preserve : null, preserve.length);
    if (pid < 0) throw new SysError("spawn", -pid, "tsrun-exec");
    const sync = new SyncChannel(mine);
    mine = -1;
    return { pid, sync };
  } finally {
    close(planFd);
    if (theirs >= 0) close(theirs);
    if (mine >= 0) close(mine);
  }
}

export type Message =
  | { type: "sync"; code: number }
  | { type: "pid"; pid: number }
  /** op: the failing op's index in the plan, -1 for the plan itself. */
  | { type: "error"; op: number; errno: number; text: string }
  /** A received fd (CLOEXEC, now ours to close): the console master (name: its peer's path) or a seccomp listener. */
  | { type: "fd"; fd: number; kind: "console" | "seccomp"; name: string }
  | { type: "exec" }
  | { type: "eof" };

/** No message within the timeout: the executor hangs or waits on something. */
export class SyncTimeout extends Error {
  readonly code = "ETIMEDOUT";
  constructor(readonly timeoutMs: number) {
    super(`no word from the container's init process within ${timeoutMs} ms`);
    this.name = "SyncTimeout";
  }
}

const utf8 = new TextDecoder();

function cText(b: Uint8Array): string {
  const end = b.indexOf(0);
  return utf8.decode(end < 0 ? b : b.subarray(0, end));
}

/** tsrun's end of the sync socket (see the protocol diagram in native/executor.c). */
export class SyncChannel {
  private readonly buf = new Uint8Array(1024);
  private open = true;

  constructor(readonly fd: number) {}

  /** The next message; {type:"eof"} once every executor stage has exited or exec'd. Throws SyncTimeout. */
  recv(timeoutMs: number): Message {
    if (!pollIn(this.fd, Math.max(0, Math.floor(timeoutMs)))) throw new SyncTimeout(timeoutMs);
    const { n, fd } = recvWithFd(this.fd, this.buf);
    if (n === 0) return { type: "eof" };
    const v = new DataView(this.buf.buffer, 0, n);
    const type = n >= 4 ? v.getUint32(0, true) : 0;
    if (type === MSG.FD && fd >= 0 && n >= 8) {
      const kind = v.getUint32(4, true) === FD_KIND.SECCOMP ? "seccomp" : "console";
      return { type: "fd", fd, kind, name: cText(this.buf.subarray(8, n)) };
    }
    if (fd >= 0) close(fd);
    if (type === MSG.SYNC && n >= 8) return { type: "sync", code: v.getUint32(4, true) };
    if (type === MSG.PID && n >= 8) return { type: "pid", pid: v.getInt32(4, true) };
    if (type === MSG.EXEC) return { type: "exec" };
    if (type === MSG.ERROR && n >= 12) {
      const op = v.getUint32(4, true);
      return { type: "error", op: op === ERROR_OP_PLAN ? -1 : op, errno: v.getInt32(8, true), text: cText(this.buf.subarray(12, n)) };
    }
    throw new SysError("recvmsg", EPROTO, `sync socket: unknown message type ${type} (${n} bytes)`);
  }

  /** Answers a "sync": go on (true) or abort (false). False when the executor is gone. */
  answer(ok: boolean): boolean {
    return sendBytes(this.fd, Uint8Array.of(ok ? 0 : 1));
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    close(this.fd);
  }
}

/** Sends fd over the unix stream socket at path with `name` as the data (runc's --console-socket). */
export function sendFd(unixSocketPath: string, fd: number, name: string): void {
  sendFdWith(unixSocketPath, fd, Buffer.from(name));
}
