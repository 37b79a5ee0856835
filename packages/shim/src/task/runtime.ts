// The OCI runtime behind a task, two ways with one interface (RuntimeDriver):
// - LibraryRuntime (the default): @tsrun/runtime called in the shim's own process. No process
//   is started per call; the executor, cloned from the shim and exec'd from a sealed memfd, runs
//   the container's process, so nothing of the shim's state (fds, memory, environment) reaches
//   the container. Its waits yield to the event loop: one slow Create does not hold up calls
//   for other tasks.
// - BinaryRuntime: any runc-compatible binary (a runtime table's BinaryName), driven as
//   containerd's runc shim drives runc: global flags before the command
//   (`runc --root R --log L --log-format json create …`), failures read from the JSON log.
import { appendFileSync, closeSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import {
  containerCgroup,
  containerPids,
  containerStats,
  createContainerAsync,
  deleteContainerAsync,
  encodeJSON,
  errorFields,
  type ErrorFields,
  killContainer,
  pauseContainer,
  resourcesFromJSON,
  resumeContainer,
  startContainerAsync,
  startExec,
  status,
  Store,
  TsrunError,
  updateContainer,
  validateProcess,
} from "@tsrun/runtime";
import { ConsoleSocket } from "./console.ts";
import type { Reaper } from "./reaper.ts";

import { DEFAULT_BINARY, DEFAULT_ROOT, namesTsrun } from "./options.ts";

export { DEFAULT_BINARY, DEFAULT_ROOT, namesTsrun };

/** A runtime command failed; the message is the runtime's own last error when it logged one. */
export class RuntimeError extends Error {
  override name = "RuntimeError";
  constructor(
    message: string,
    readonly exitCode: number,
    /** The library's error fields (pointer, path, errno, …); empty from a binary. */
    readonly fields: Readonly<ErrorFields> = {},
  ) {
    super(message);
  }
}

type Fd = number | "ignore";

/** A process the runtime started: the pid (the shim reaps it) and its terminal's master, if any. */
export interface Started {
  pid: number;
  console?: number;
}

export interface CreateFlags {
  noPivot?: boolean;
  noNewKeyring?: boolean;
  /** The init gets a terminal (config.json says so); its master comes back in Started.console. */
  terminal?: boolean;
}

/** What the Task service needs of an OCI runtime; every call acts on one container of one state root. */
export interface RuntimeDriver {
  /** For messages: "tsrun (library)" or the binary's path. */
  readonly name: string;
  /** Creates the container with the given stdio; writes the init's pid to pidFile (`shim delete` reads it). */
  create(id: string, bundle: string, pidFile: string, stdio: [Fd, Fd, Fd], flags?: CreateFlags): Promise<Started>;
  /** Runs a process (runtime-spec Process) in the container; returns once it runs. */
  exec(id: string, execId: string, spec: Record<string, unknown>, stdio: [Fd, Fd, Fd], terminal: boolean): Promise<Started>;
  start(id: string): Promise<void>;
  kill(id: string, signal: number, all: boolean): Promise<void>;
  delete(id: string, force: boolean): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** resources: runtime-spec LinuxResources as JSON. */
  update(id: string, resources: string): Promise<void>;
  /** runc's stats object (the `data` of `events --stats`). */
  stats(id: string): Promise<Record<string, unknown>>;
  /** The pids of every process in the container's cgroup. */
  ps(id: string): Promise<number[]>;
}

export interface RuntimeOptions {
  /** The binary: a path, or a name looked up beside the shim's executable and then on PATH. */
  binary: string;
  /** The state root for this namespace (<root>/<ns>). */
  root: string;
  /** The runtime's JSON log (<bundle>/log.json); its last error line explains a failure. */
  log: string;
  reaper: Reaper;
  /** A runtime binary still running after this long is killed (SIGKILL) and the call fails. */
  timeoutMs?: number;
}

export class BinaryRuntime implements RuntimeDriver {
  readonly binary: string;

  constructor(private opts: RuntimeOptions & { bundle: string }) {
    this.binary = resolveBinary(opts.binary);
  }

  get name(): string {
    return this.binary;
  }

  /** `create`: the container's stdio is the runtime's own (the runtime passes it on to the init). */
  async create(id: string, bundle: string, pidFile: string, stdio: [Fd, Fd, Fd], flags: CreateFlags = {}): Promise<Started> {
    const args = ["create", "--bundle", bundle, "--pid-file", pidFile];
    if (flags.noPivot) args.push("--no-pivot");
    if (flags.noNewKeyring) args.push("--no-new-keyring");
    const socket = flags.terminal ? ConsoleSocket.listen() : undefined;
    try {
      if (socket) args.push("--console-socket", socket.path);
      args.push(id);
      await this.run(args, socket ? ["ignore", "ignore", "ignore"] : stdio, "create", { handsOnStdio: true });
      const console = socket?.receiveMaster();
      return { pid: readPid(pidFile), ...(console === undefined ? {} : { console }) };
    } finally {
      socket?.close();
    }
  }

  /**
   * `exec --detach`: returns once the process runs; its stdio is the runtime's own, and with a
   * terminal the runtime sends the pty master to a console socket (as go-runc's Exec).
   */
  async exec(id: string, execId: string, spec: Record<string, unknown>, stdio: [Fd, Fd, Fd], terminal: boolean): Promise<Started> {
    const processFile = join(this.opts.bundle, `${execId}.process.json`);
    const pidFile = join(this.opts.bundle, `${execId}.pid`);
    const socket = terminal ? ConsoleSocket.listen() : undefined;
    try {
      writeFileSync(processFile, JSON.stringify(spec), { mode: 0o600 });
      const args = ["exec", "--detach", "--pid-file", pidFile, "--process", processFile];
      if (socket) args.push("--console-socket", socket.path);
      args.push(id);
      await this.run(args, socket ? ["ignore", "ignore", "ignore"] : stdio, "exec", { handsOnStdio: true });
      const console = socket?.receiveMaster();
      return { pid: readPid(pidFile), ...(console === undefined ? {} : { console }) };
    } finally {
      socket?.close();
      rmSync(processFile, { force: true });
      rmSync(pidFile, { force: true });
    }
  }

  async start(id: string): Promise<void> {
    await this.run(["start", id], ["ignore", "ignore", "ignore"], "start");
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    await this.run(["kill", ...(all ? ["--all"] : []), id, String(signal)], ["ignore", "ignore", "ignore"], "kill");
  }

  async delete(id: string, force: boolean): Promise<void> {
    await this.run(["delete", ...(force ? ["--force"] : []), id], ["ignore", "ignore", "ignore"], "delete");
  }

  async pause(id: string): Promise<void> {
    await this.run(["pause", id], ["ignore", "ignore", "ignore"], "pause");
  }

  async resume(id: string): Promise<void> {
    await this.run(["resume", id], ["ignore", "ignore", "ignore"], "resume");
  }

  /** `update -r -`: the resources (runtime-spec LinuxResources JSON) on stdin, as go-runc's Update. */
  async update(id: string, resources: string): Promise<void> {
    await this.run(["update", "-r", "-", id], ["pipe", "ignore", "ignore"], "update", { input: resources });
  }

  /** `events --stats`: one runc stats object (the `data` of its one JSON line). */
  async stats(id: string): Promise<Record<string, unknown>> {
    const out = await this.run(["events", "--stats", id], ["ignore", "pipe", "ignore"], "events --stats");
    const line = out.split("\n").find((l) => l.trim());
    const event = line ? (JSON.parse(line) as { type?: string; data?: Record<string, unknown> }) : undefined;
    if (event?.type !== "stats" || !event.data) throw new RuntimeError(`${this.binary} events --stats printed ${JSON.stringify(out.slice(0, 200))}, not a stats event`, 0);
    return event.data;
  }

  /** `ps --format json`: the pids of every process in the container's cgroup. */
  async ps(id: string): Promise<number[]> {
    const out = await this.run(["ps", "--format", "json", id], ["ignore", "pipe", "ignore"], "ps");
    const pids = JSON.parse(out || "[]") as unknown;
    if (!Array.isArray(pids) || !pids.every((p) => Number.isInteger(p))) throw new RuntimeError(`${this.binary} ps printed ${JSON.stringify(out.slice(0, 200))}, not a JSON list of pids`, 0);
    return pids as number[];
  }

  /**
   * Runs one runtime command; resolves with its stdout when that was "pipe".
   * `handsOnStdio`: the runtime passes its stdio to a container process that outlives it, so its
   * stderr must never be a pipe of the shim's (the shim would wait for an EOF that comes only
   * when the container exits, and with null IO the container would write into the shim). Such a
   * command's failure is read from the JSON log only, as containerd's runc shim reads runc's.
   */
  private async run(args: string[], stdio: [Fd | "pipe", Fd | "pipe", Fd], what: string, opts: { handsOnStdio?: boolean; input?: string } = {}): Promise<string> {
    const argv = [this.binary, "--root", this.opts.root, "--log", this.opts.log, "--log-format", "json", ...args];
    const logStart = logSize(this.opts.log);
    // The runtime must not see a systemd notify socket meant for containerd.
    const env = { ...process.env, NOTIFY_SOCKET: undefined };
    // stderr is captured only from commands that start no container process: create and exec
    // write their errors to the container's stderr, and to the log, which is read below either way.
    const captured = stdio[2] === "ignore" && !opts.handsOnStdio;
    let proc: Bun.Subprocess;
    try {
      proc = this.opts.reaper.spawn(argv, { env, stdio: [stdio[0], stdio[1], captured ? "pipe" : stdio[2]] });
    } catch (err) {
      throw new RuntimeError(`cannot run ${this.binary}: ${(err as Error).message}`, -1);
    }
    let timedOut = false;
    const timer =
      this.opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            proc.kill("SIGKILL");
          }, this.opts.timeoutMs);
    let stdout: string;
    let stderr: string;
    let code: number;
    try {
      if (opts.input !== undefined) {
        const sink = proc.stdin as import("bun").FileSink;
        sink.write(opts.input);
        await sink.end();
      }
      [stdout, stderr] = await Promise.all([
        stdio[1] === "pipe" ? new Response(proc.stdout as ReadableStream<Uint8Array>).text() : "",
        captured ? new Response(proc.stderr as ReadableStream<Uint8Array>).text() : "",
      ]);
      code = await proc.exited;
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) throw new RuntimeError(`${this.binary} ${what} killed after ${this.opts.timeoutMs} ms (no answer)`, code);
    if (code === 0) return stdout;
    const message = lastLoggedError(this.opts.log, logStart) ?? (stderr.trim().split("\n").pop() || `exit status ${code}`);
    throw new RuntimeError(`${this.binary} ${what} failed: ${message}`, code);
  }
}

/**
 * tsrun as a library in this process. Failures are the library's TsrunErrors: their message
 * becomes the RuntimeError's, as the binary's last logged error line would, and the line
 * (message and fields: pointer, path, errno, …) is appended to the bundle's log.json just as
 * `tsrun --log-format json` writes it.
 */
export class LibraryRuntime implements RuntimeDriver {
  readonly name = "tsrun (library)";
  private store: Store;

  constructor(private opts: { root: string; log: string }) {
    this.store = new Store(opts.root);
  }

  async create(id: string, bundle: string, pidFile: string, stdio: [Fd, Fd, Fd], flags: CreateFlags = {}): Promise<Started> {
    return this.locked(id, "create", async () => {
      const { rec, console } = await createContainerAsync(this.store, {
        id,
        bundle,
        pidFile,
        noPivot: flags.noPivot ?? false,
        noNewKeyring: flags.noNewKeyring ?? false,
        stdio: stdioFds(stdio),
        takeConsole: true,
      });
      if (!!flags.terminal !== (console !== undefined)) {
        // containerd sets both from one flag; a bundle made otherwise must not run half right.
        if (console !== undefined) closeSync(console);
        await deleteContainerAsync(this.store, id, true);
        throw new TsrunError(`container ${id}: the task ${flags.terminal ? "asks for" : "has no"} terminal but config.json's process.terminal is ${!flags.terminal}`, { id, pointer: "/process/terminal" });
      }
      return { pid: rec.pid, ...(console === undefined ? {} : { console }) };
    });
  }

  async exec(id: string, _execId: string, spec: Record<string, unknown>, stdio: [Fd, Fd, Fd], terminal: boolean): Promise<Started> {
    return this.call("exec", async () => {
      const proc = validateProcess({ ...spec, terminal }, "the exec's process");
      return await startExec(this.store, { id, process: proc, detach: true, stdio: terminal ? [-1, -1, -1] : stdioFds(stdio), takeConsole: terminal });
    });
  }

  async start(id: string): Promise<void> {
    await this.locked(id, "start", async () => this.warn(await startContainerAsync(this.store, id)));
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    await this.call("kill", async () => killContainer(this.store, id, String(signal), all));
  }

  async delete(id: string, force: boolean): Promise<void> {
    await this.locked(id, "delete", async () => this.warn(await deleteContainerAsync(this.store, id, force)));
  }

  async pause(id: string): Promise<void> {
    await this.locked(id, "pause", async () => pauseContainer(this.store, id));
  }

  async resume(id: string): Promise<void> {
    await this.locked(id, "resume", async () => resumeContainer(this.store, id));
  }

  async update(id: string, resources: string): Promise<void> {
    await this.locked(id, "update", async () => updateContainer(this.store, id, resourcesFromJSON(resources, "the resources"), (m) => this.warn([m])));
  }

  async stats(id: string): Promise<Record<string, unknown>> {
    return this.call("events --stats", async () => {
      const rec = this.store.read(id);
      if (status(this.store, rec) === "stopped") throw new TsrunError(`container with id ${id} is not running`, { id });
      const cg = containerCgroup(rec);
      // As the binary's JSON line reads back: 64-bit counters become numbers.
      return JSON.parse(encodeJSON(containerStats(cg.paths(), cg.mode))) as Record<string, unknown>;
    });
  }

  async ps(id: string): Promise<number[]> {
    return this.call("ps", async () => containerPids(this.store, id));
  }

  private warn(warnings: string[]): void {
    for (const w of warnings) this.log("warning", w, {});
  }

  private log(level: "error" | "warning", msg: string, fields: object): void {
    try {
      appendFileSync(this.opts.log, `${JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields })}\n`);
    } catch {
      // The bundle may be gone (shim delete after containerd removed it): the error still goes up.
    }
  }

  /**
   * A call that takes the container's lock (flock on its state directory) in the library. The
   * library's async calls hold it across awaits (create and start through their hooks); a second
   * flock from this same process would then block the event loop, on which the holder needs to
   * finish, for ever. So such calls on one container run one after the other here: a later one
   * waits (asynchronously, bounded by the Task service's call timeout) for the earlier to end.
   */
  private locked<T>(id: string, what: string, fn: () => Promise<T>): Promise<T> {
    const key = `${this.opts.root}\0${id}`;
    const before = lockQueue.get(key) ?? Promise.resolve();
    const mine = before.then(() => this.call(what, fn));
    const tail = mine.then(
      () => {},
      () => {},
    );
    lockQueue.set(key, tail);
    void tail.then(() => {
      if (lockQueue.get(key) === tail) lockQueue.delete(key);
    });
    return mine;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const message = err instanceof TsrunError ? err.message : `internal error: ${(err as Error).message ?? String(err)}`;
      this.log("error", message, errorFields(err));
      throw new RuntimeError(`tsrun ${what} failed: ${message}`, 1, errorFields(err));
    }
  }
}

/** Per container (state root and id): the end of the last lock-taking library call queued (LibraryRuntime.locked). */
const lockQueue = new Map<string, Promise<void>>();

/** The fds as the library takes them: -1 for /dev/null. */
function stdioFds(stdio: [Fd, Fd, Fd]): [number, number, number] {
  return stdio.map((f) => (f === "ignore" ? -1 : f)) as [number, number, number];
}

/** The driver for a task: the library for tsrun, else the binary. */
export function runtimeFor(opts: RuntimeOptions & { bundle: string }): RuntimeDriver {
  return namesTsrun(opts.binary) ? new LibraryRuntime({ root: opts.root, log: opts.log }) : new BinaryRuntime(opts);
}

export function readPid(path: string): number {
  const text = readFileSync(path, "utf8").trim();
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`pid file ${path} holds ${JSON.stringify(text)}, not a pid`);
  return pid;
}

function logSize(path: string): number {
  try {
    return Bun.file(path).size;
  } catch {
    return 0;
  }
}

/** The msg of the last `"level":"error"` line the runtime logged since `from` (as go-runc's getLastRuntimeError). */
export function lastLoggedError(path: string, from = 0): string | undefined {
  let text: string;
  try {
    text = readFileSync(path).subarray(from).toString("utf8");
  } catch {
    return undefined;
  }
  let last: string | undefined;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === "error" && entry.msg) last = entry.msg;
    } catch {
      // Not JSON: a runtime that wrote text to its log; the stderr fallback covers it.
    }
  }
  return last;
}

/** A name without a slash is looked up beside the shim's executable first, then on PATH. */
export function resolveBinary(name: string): string {
  if (name.includes("/")) return name;
  const beside = join(dirname(process.execPath), name);
  if (existsSync(beside)) return beside;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new RuntimeError(`OCI runtime binary ${JSON.stringify(name)} not found beside ${process.execPath} or on PATH`, -1);
}
