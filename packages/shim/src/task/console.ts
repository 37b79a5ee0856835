// Terminals for a task's processes, as containerd's runc shim makes them: the shim listens on an
// AF_UNIX socket, passes its path to the runtime as --console-socket, and receives the pty
// master in SCM_RIGHTS; then it copies the client's stdin fifo into the master and the master
// into the stdout fifo, and resizes the master on ResizePty.
//
// Bun's sockets cannot receive descriptors, so the socket is the runtime's libc one. It is
// non-blocking and read only after the runtime has exited: by then `exec --detach` and `create`
// have connected and sent the master (the kernel queues both), so nothing here waits.
import { closeSync, createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { acceptUnix, close as closeFd, ioctl, listenUnix, recvWithFd } from "@tsrun/runtime/linux";

const TIOCSWINSZ = 0x5414;

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
    try {
      return new ConsoleSocket(path, dir, listenUnix(path));
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The master the runtime sent (call after the runtime exited successfully). */
  receiveMaster(): number {
    let conn: number;
    try {
      conn = acceptUnix(this.fd);
    } catch (e) {
      throw new Error(`the runtime sent no terminal on ${this.path} (${(e as Error).message})`);
    }
    try {
      const { fd } = recvWithFd(conn, new Uint8Array(4096));
      if (fd < 0) throw new Error(`the runtime's message on ${this.path} carried no file descriptor`);
      return fd;
    } finally {
      closeFd(conn);
    }
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
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
    ioctl(this.master, TIOCSWINSZ, new Uint8Array(new Uint16Array([height, width, 0, 0]).buffer));
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
