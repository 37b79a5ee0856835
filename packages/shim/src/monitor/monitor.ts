// The monitor of an image container: a small process per container, the tsrun binary in a
// hidden mode (as podman's conmon is to runc), so that a container run with -d keeps its
// stdio, its log and its exit status after tsrun has returned.
//
// tsrun (run-image.ts) starts it in a session of its own (setsid), its stdin and stdout on
// /dev/null and its stderr on the bundle's monitor.err: it holds nothing of the caller's, so
// `$(tsrun run -d …)` returns. It makes the container's stdio (pipes, or a pty through a console
// socket with -t), runs `tsrun create` with them as a child and, being a child subreaper, becomes
// the container init's parent when create exits. It says "created" (or create's error) on the
// status pipe tsrun gave it (fd 3) and closes it; tsrun then attaches or not, and starts the
// container. From then on it copies the container's output into container.log (CRI format) and
// to the attached clients, their input into the container's stdin or terminal, resizes the
// terminal, and when the init exits it drains the output, writes exit.json, releases the
// container's network (a stopped container holds no address, as with Docker), removes the
// container with --rm, tells the clients the status and exits.
//
// `kill -9` of the monitor: the init is reparented to the host's init (or the nearest
// subreaper), which reaps it; the container runs on until it writes to its stdout or stderr
// (no reader: SIGPIPE, as with conmon) or its terminal hangs up (SIGHUP); no exit.json is
// written, so the listing says the status is unknown; `tsrun delete` removes everything.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, rmSync, writeSync, constants as fsc } from "node:fs";
import net from "node:net";
import { join, resolve } from "node:path";
import { Store } from "@tsrun/runtime";
import * as linux from "@tsrun/runtime/linux";
import { CriLineWriter, type Stream } from "./cri.ts";
import { monitorFiles, processStartTime, writeJsonAtomic, type MonitorRecord } from "./files.ts";
import { FRAME, FrameReader, frame, SOCKET_NAME } from "./protocol.ts";

const TIOCSWINSZ = 0x5414;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const F_SETFL = 4;
const O_RDWR = 2;

export interface MonitorOptions {
  root: string;
  imageRoot: string;
  bundle: string;
  id: string;
  image: string;
  tty: boolean;
  stdin: boolean;
  rm: boolean;
  /** The command line that runs tsrun itself. */
  self: string[];
}

/** Where the tsrun binary is: itself when compiled, bun and the entry script otherwise. */
export function selfCommand(): string[] {
  return Bun.main.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, Bun.main];
}

function status(msg: Record<string, unknown>): void {
  try {
    writeSync(3, `${JSON.stringify(msg)}\n`);
    closeSync(3);
  } catch {
    // tsrun is gone: nobody to tell
  }
}

/** The last error line of create's --log (JSON lines), or undefined. */
function createError(file: string): string | undefined {
  try {
    const lines = readFileSync(file, "utf8").trim().split("\n").reverse();
    for (const l of lines) {
      const j = JSON.parse(l) as { level?: string; msg?: string };
      if (j.level === "error" && j.msg) return j.msg;
    }
  } catch {
    // no log
  }
  return undefined;
}

/**
 * Writes all of `data` to a non-blocking `fd`, waiting a little whenever it is full: a container
 * that does not read its stdin holds up only its own input. A failure (it closed its stdin) drops it.
 */
async function writeFully(fd: number, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; ) {
    try {
      at += writeSync(fd, data, at, data.length - at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") return;
      await Bun.sleep(10);
    }
  }
}

export async function runMonitor(opts: MonitorOptions): Promise<number> {
  // It works from / (it holds no directory of anyone's): every path absolute first.
  const o = { ...opts, root: resolve(opts.root), imageRoot: resolve(opts.imageRoot), bundle: resolve(opts.bundle) };
  process.chdir("/");
  linux.setChildSubreaper();
  const files = monitorFiles(o.bundle);
  const rec: MonitorRecord = { pid: process.pid, startTime: processStartTime(process.pid) ?? 0, id: o.id, image: o.image, tty: o.tty, stdin: o.stdin, created: new Date().toISOString(), rm: o.rm };
  writeJsonAtomic(files.record, rec);
  const logFd = openSync(files.log, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | O_CLOEXEC, 0o600);
  // The bundle's directory, open: sockets are reached through /proc/PID/fd/N/, whose path is short.
  const dirFd = openSync(o.bundle, fsc.O_RDONLY | fsc.O_DIRECTORY | O_CLOEXEC);
  const viaDir = (name: string) => `/proc/${process.pid}/fd/${dirFd}/${name}`;

  // The container's stdio: pipes, or a pty whose master comes over a console socket.
  const devnull = openSync("/dev/null", fsc.O_RDWR | O_CLOEXEC);
  let console: { fd: number; path: string } | undefined;
  let stdinW = -1;
  const outputs: { fd: number; stream: Stream }[] = [];
  const childStdio: number[] = [devnull, devnull, devnull];
  const parentEnds: number[] = [];
  if (o.tty) {
    console = { fd: linux.listenUnix(viaDir("console.sock")), path: viaDir("console.sock") };
  } else {
    if (o.stdin) {
      const [r, w] = linux.pipe(O_CLOEXEC);
      childStdio[0] = r;
      stdinW = w;
      linux.fcntl(w, F_SETFL, O_NONBLOCK);
    }
    for (const [i, stream] of [[1, "stdout"], [2, "stderr"]] as const) {
      const [r, w] = linux.pipe(O_CLOEXEC);
      childStdio[i] = w;
      outputs.push({ fd: r, stream });
    }
  }
  parentEnds.push(...childStdio.filter((fd) => fd !== devnull));

  const env = { ...process.env };
  delete env._TSRUN_MONITOR;
  const args = [...o.self, "--root", o.root, "--log", files.createLog, "--log-format", "json", "create", "--bundle", o.bundle, ...(console ? ["--console-socket", console.path] : []), o.id];
  const create = spawn(args[0]!, args.slice(1), { stdio: childStdio, env });
  const createCode = await new Promise<number>((resolve) => {
    create.on("exit", (code, sig) => resolve(code ?? 128 + (sig ? 9 : 0)));
    create.on("error", () => resolve(127));
  });
  for (const fd of parentEnds) closeSync(fd);
  if (createCode !== 0) {
    status({ error: createError(files.createLog) ?? `tsrun create exited with status ${createCode}` });
    if (console) linux.close(console.fd);
    return 1;
  }
  rmSync(files.createLog, { force: true });
  const state = new Store(o.root).read(o.id);
  const initPid = state.pid;
  let master = -1;
  if (console) {
    const conn = linux.acceptUnix(console.fd);
    try {
      master = linux.recvWithFd(conn, new Uint8Array(4096)).fd;
    } finally {
      linux.close(conn);
      linux.close(console.fd);
      rmSync(join(o.bundle, "console.sock"), { force: true });
    }
    if (master < 0) {
      status({ error: "tsrun create sent no terminal" });
      return 1;
    }
    linux.fcntl(master, F_SETFL, O_NONBLOCK | O_RDWR);
    outputs.push({ fd: master, stream: "stdout" });
  }

  // The attach socket.
  let stdinQueue: Promise<void> = Promise.resolve();
  const clients = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    clients.add(sock);
    const reader = new FrameReader((type, payload) => {
      const input = master >= 0 ? master : stdinW;
      // In order, and the pipe closed only after what came before its EOF is written; a
      // container that does not read its stdin blocks none of this loop.
      if (type === FRAME.STDIN && input >= 0 && o.stdin) {
        const data = Buffer.from(payload);
        stdinQueue = stdinQueue.then(() => writeFully(input, data));
      } else if (type === FRAME.STDIN_EOF && stdinW >= 0) {
        const fd = stdinW;
        stdinW = -1;
        stdinQueue = stdinQueue.then(() => closeSync(fd));
      } else if (type === FRAME.RESIZE && master >= 0) {
        const ws = new Uint8Array(8);
        const v = new DataView(ws.buffer);
        v.setUint16(0, payload.readUInt16BE(0), true);
        v.setUint16(2, payload.readUInt16BE(2), true);
        try {
          linux.ioctl(master, TIOCSWINSZ, ws);
        } catch {
          // the terminal is gone
        }
      }
    });
    sock.on("data", (d: string | Buffer) => reader.push(typeof d === "string" ? Buffer.from(d) : d));
    sock.on("error", () => clients.delete(sock));
    sock.on("close", () => clients.delete(sock));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(viaDir(SOCKET_NAME), resolve);
  });
  status({ created: true, pid: initPid });

  // Output: into the log (CRI records) and to every client (raw, at once).
  const drained = outputs.map(
    ({ fd, stream }) =>
      new Promise<void>((resolve) => {
        const cri = new CriLineWriter(stream, (line) => writeSync(logFd, line));
        // Bun's own stream of the fd, on its event loop: fs streams would each hold one of the
        // thread pool's few threads in a blocking read for the container's whole life.
        void (async () => {
          try {
            for await (const chunk of Bun.file(fd).stream()) {
              const b = Buffer.from(chunk);
              cri.write(b);
              const f = frame(stream === "stdout" ? FRAME.STDOUT : FRAME.STDERR, b);
              for (const c of clients) c.write(f);
            }
          } catch {
            // EIO: the terminal's last holder closed it
          }
          cri.end();
          resolve();
        })();
      }),
  );

  // The init's exit: it is our child (we are a subreaper and create, its parent, has exited).
  const code = await new Promise<number>((resolve) => {
    const t = setInterval(() => {
      const st = linux.waitpid(initPid, linux.WNOHANG);
      if (st.pid === initPid || st.pid < 0) {
        clearInterval(t);
        resolve(st.pid < 0 ? 255 : st.exited ? st.code : 128 + st.signal);
      }
    }, 50);
  });
  // Its output to the end: a process of the container still holding a pipe (none should, its
  // pid namespace is gone with its init) does not keep the monitor for ever.
  await Promise.race([Promise.all(drained), Bun.sleep(2000)]);
  writeJsonAtomic(files.exit, { code, finished: new Date().toISOString() });
  closeSync(logFd);
  server.close();
  // What `tsrun delete` does (with --rm: the container, its network, layer and bundle), or only
  // its network: the same code as by hand.
  try {
    const { releaseNetwork, removeContainer } = await import("../cli/commands/delete.ts");
    if (o.rm) await removeContainer(o.root, o.id, true, o.imageRoot);
    else await releaseNetwork(o.root, o.id, o.imageRoot);
  } catch (e) {
    process.stderr.write(`tsrun monitor: ${o.id}: ${(e as Error).message}\n`);
  }
  const exitFrame = frame(FRAME.EXIT, Buffer.from(String(code)));
  await Promise.all([...clients].map((c) => new Promise<void>((resolve) => c.end(exitFrame, () => resolve()))));
  if (master >= 0) linux.close(master);
  return 0;
}
