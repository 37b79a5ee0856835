// Terminals for a task's processes, as containerd's runc shim makes them: the shim listens on an
// AF_UNIX socket, passes its path to the runtime as --console-socket, and receives the pty
// master in SCM_RIGHTS; then it copies the client's stdin fifo into the master and the master
// into the stdout fifo, and resizes the master on ResizePty.
//
// Bun's sockets cannot receive descriptors, so the socket is libc's through bun:ffi. It is
// non-blocking and read only after the runtime has exited: by then `exec --detach` and `create`
// have connected and sent the master (the kernel queues both), so nothing here waits.
import { dlopen, FFIType, ptr as addressOf, read } from "bun:ffi";
import { closeSync, createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";

const { i32, u64, ptr } = FFIType;

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const TIOCSWINSZ = 0x5414;
const SUN_PATH_MAX = 108;

function open() {
  return dlopen("libc.so.6", {
    __errno_location: { args: [], returns: ptr },
    socket: { args: [i32, i32, i32], returns: i32 },
    bind: { args: [i32, ptr, u64], returns: i32 },
    listen: { args: [i32, i32], returns: i32 },
    accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
    recvmsg: { args: [i32, ptr, i32], returns: i64 },
    ioctl: { args: [i32, u64, ptr], returns: i32 },
    close: { args: [i32], returns: i32 },
  });
}
const { i64 } = FFIType;

let lib: ReturnType<typeof open>["symbols"] | undefined;
function libc(): ReturnType<typeof open>["symbols"] {
  return (lib ??= open().symbols);
}

function errno(): number {
  const p = libc().__errno_location();
  return p ? read.i32(p, 0) : 0;
}

function fail(what: string): never {
  throw new Error(`${what}: errno ${errno()}`);
}

/** A listening socket for one process's pty master; `path` goes to the runtime. */
export class ConsoleSocket {
  private constructor(
    readonly path: string,
    private dir: string,
    private fd: number,
  ) {}

  /** Made in a fresh private directory (sun_path is short: not under the bundle, whose path containerd chooses). */
  static listen(): ConsoleSocket {
    const dir = mkdtempSync("/tmp/tsrun-pty-");
    const path = join(dir, "s");
    const fd = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      rmSync(dir, { recursive: true, force: true });
      fail("socket(AF_UNIX)");
    }
    const sock = new ConsoleSocket(path, dir, fd);
    try {
      const addr = new Uint8Array(2 + SUN_PATH_MAX);
      new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
      const name = new TextEncoder().encode(path);
      if (name.length >= SUN_PATH_MAX) throw new Error(`console socket path ${path} is too long`);
      addr.set(name, 2);
      if (libc().bind(fd, addr, addr.length) < 0) fail(`bind ${path}`);
      if (libc().listen(fd, 1) < 0) fail(`listen ${path}`);
    } catch (err) {
      sock.close();
      throw err;
    }
    return sock;
  }

  /** The master the runtime sent (call after the runtime exited successfully). */
  receiveMaster(): number {
    const conn = libc().accept4(this.fd, null, null, SOCK_CLOEXEC);
    if (conn < 0) fail(`the runtime sent no terminal on ${this.path} (accept)`);
    try {
      const data = new Uint8Array(4096);
      const iov = new BigUint64Array([BigInt(addressOf(data)), BigInt(data.length)]);
      const control = new Uint8Array(64);
      const msg = new BigUint64Array(7);
      msg[2] = BigInt(addressOf(iov)); // msg_iov
      msg[3] = 1n; // msg_iovlen
      msg[4] = BigInt(addressOf(control)); // msg_control
      msg[5] = BigInt(control.length); // msg_controllen
      const n = Number(libc().recvmsg(conn, msg, MSG_CMSG_CLOEXEC));
      if (n < 0) fail(`recvmsg on ${this.path}`);
      const view = new DataView(control.buffer);
      const controlLen = Number(msg[5]);
      // struct cmsghdr { size_t len; int level; int type; unsigned char data[]; }
      if (controlLen >= 20 && view.getInt32(8, true) === SOL_SOCKET && view.getInt32(12, true) === SCM_RIGHTS) return view.getInt32(16, true);
      throw new Error(`the runtime's message on ${this.path} carried no file descriptor`);
    } finally {
      libc().close(conn);
    }
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A pty master and the copies between it and the client's fifos. */
export class Console {
  /** Settles when the master's output has all reached the stdout fifo (EIO: every slave holder is gone). */
  readonly drained: Promise<void>;
  private closed = false;
  /** Destroyed before the master closes, so that no later read or write lands on a reused fd number. */
  private streams: Array<{ destroy(): void }> = [];

  constructor(
    private master: number,
    stdinFd: number | undefined,
    stdoutFd: number | undefined,
  ) {
    // Node's fs streams read on the thread pool: a blocking read of the master or a fifo does not
    // stall the shim's event loop.
    const out = createReadStream("", { fd: master, autoClose: false, highWaterMark: 32 * 1024 });
    this.streams.push(out);
    this.drained = new Promise<void>((resolve) => {
      if (stdoutFd === undefined) {
        out.on("data", () => {});
      } else {
        const sink = createWriteStream("", { fd: stdoutFd, autoClose: false });
        this.streams.push(sink);
        out.pipe(sink, { end: false });
        sink.on("error", () => out.destroy());
      }
      // EIO is how a master reports that the last slave closed: the end of the output.
      out.on("error", () => resolve());
      out.on("end", () => resolve());
      out.on("close", () => resolve());
    });
    if (stdinFd !== undefined) {
      const input = createReadStream("", { fd: stdinFd, autoClose: false });
      const sink = createWriteStream("", { fd: master, autoClose: false });
      this.streams.push(input, sink);
      input.pipe(sink, { end: false });
      input.on("error", () => {});
      sink.on("error", () => input.destroy());
    }
  }

  resize(width: number, height: number): void {
    if (this.closed) return;
    const ws = new Uint16Array([height, width, 0, 0]);
    if (libc().ioctl(this.master, TIOCSWINSZ, ws) < 0) fail("ioctl(TIOCSWINSZ) on the pty master");
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams) s.destroy();
    try {
      closeSync(this.master);
    } catch {
      // Already gone.
    }
  }
}
