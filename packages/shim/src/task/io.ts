// A task's stdio. containerd's client creates fifos and passes their paths; the shim opens them
// and hands the fds to the runtime as its own stdio, which the runtime passes on to the
// container's init: the container then writes straight into containerd's fifos, with no copy
// loop in the shim.
//
// - stdout, stderr: opened read-write, so the open neither blocks for a reader nor fails
//   without one, and the container never gets SIGPIPE while the client reconnects.
// - stdin: opened read-only and non-blocking (a read-only open would block until a writer
//   appears), then made blocking for the container. The shim keeps a write handle until CloseIO:
//   without it, the container would read EOF before the client has opened its end.
// - "" means no stream (/dev/null); `file:///abs/path` appends stdout and stderr to a file.
import { closeSync, constants, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { fcntl } from "@tsrun/runtime/linux";
import { unimplemented, invalidArgument } from "../ttrpc/status.ts";

const F_GETFL = 3;
const F_SETFL = 4;

export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

export class TaskIo {
  /** fds for the runtime's 0/1/2 ("ignore" is /dev/null); closed by `release` once the runtime has them. */
  readonly fds: [number | "ignore", number | "ignore", number | "ignore"] = ["ignore", "ignore", "ignore"];
  private stdinWriter: number | undefined;

  /** Opens the streams; on failure nothing stays open. */
  static open(paths: StdioPaths): TaskIo {
    const io = new TaskIo();
    try {
      if (paths.stdin) {
        const fifo = fifoPath(paths.stdin, "stdin");
        const r = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
        io.fds[0] = r;
        io.stdinWriter = openSync(fifo, constants.O_WRONLY);
        fcntl(r, F_SETFL, fcntl(r, F_GETFL) & ~constants.O_NONBLOCK);
      }
      const file = paths.stdout.startsWith("file://") || paths.stderr.startsWith("file://");
      if (file) {
        if (paths.stdout !== paths.stderr) throw invalidArgument(`file:// logging needs stdout and stderr to be the same URI, got ${paths.stdout} and ${paths.stderr}`);
        const path = new URL(paths.stdout).pathname;
        mkdirSync(dirname(path), { recursive: true });
        io.fds[1] = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o644);
        io.fds[2] = openSync(path, constants.O_WRONLY | constants.O_APPEND);
      } else {
        if (paths.stdout) io.fds[1] = openSync(fifoPath(paths.stdout, "stdout"), constants.O_RDWR);
        if (paths.stderr) io.fds[2] = openSync(fifoPath(paths.stderr, "stderr"), constants.O_RDWR);
      }
    } catch (err) {
      io.close();
      throw err;
    }
    return io;
  }

  /** The runtime has started and holds its own copies: the shim's go (except stdin's writer). */
  release(): void {
    for (let i = 0; i < 3; i++) {
      const fd = this.fds[i];
      if (typeof fd === "number") closeQuietly(fd);
      this.fds[i] = "ignore";
    }
  }

  /** CloseIO(stdin): the container reads EOF once the client has closed its end too. */
  closeStdin(): void {
    if (this.stdinWriter !== undefined) closeQuietly(this.stdinWriter);
    this.stdinWriter = undefined;
  }

  close(): void {
    this.release();
    this.closeStdin();
  }
}

function fifoPath(uri: string, stream: string): string {
  if (!uri.includes("://")) return uri;
  const scheme = uri.slice(0, uri.indexOf("://"));
  throw unimplemented(`${stream} ${uri}: ${scheme}:// logging is not supported by containerd-shim-tsrun-v2 yet (fifos and file:// are)`);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}
