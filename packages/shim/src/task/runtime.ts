// The OCI runtime as containerd's runc shim drives runc: the `tsrun` binary with global flags
// before the command (`tsrun --root R --log L --log-format json create …`). Running the binary,
// not importing the runtime library, keeps a container's creation out of the shim's own process
// (the runtime clones namespaces and changes process state) and lets a runtime table point the
// shim at any runc-compatible binary.
import { existsSync, readFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import type { Reaper } from "./reaper.ts";

export const DEFAULT_BINARY = "tsrun";
/** Container state lives under <root>/<namespace>, as the runc shim keeps it under /run/containerd/runc. */
export const DEFAULT_ROOT = "/run/containerd/tsrun";

/** A runtime command failed; the message is the runtime's own last error when it logged one. */
export class RuntimeError extends Error {
  override name = "RuntimeError";
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

type Fd = number | "ignore";

export interface RuntimeOptions {
  /** The binary: a path, or a name looked up beside the shim's executable and then on PATH. */
  binary: string;
  /** The state root for this namespace (<root>/<ns>). */
  root: string;
  /** The runtime's JSON log (<bundle>/log.json); its last error line explains a failure. */
  log: string;
  reaper: Reaper;
}

export class OciRuntime {
  readonly binary: string;

  constructor(private opts: RuntimeOptions) {
    this.binary = resolveBinary(opts.binary);
  }

  /** `create`: the container's stdio is the runtime's own (the runtime passes it on to the init). */
  async create(id: string, bundle: string, pidFile: string, stdio: [Fd, Fd, Fd], flags: { noPivot?: boolean; noNewKeyring?: boolean } = {}): Promise<void> {
    const args = ["create", "--bundle", bundle, "--pid-file", pidFile];
    if (flags.noPivot) args.push("--no-pivot");
    if (flags.noNewKeyring) args.push("--no-new-keyring");
    args.push(id);
    await this.run(args, stdio, "create", { handsOnStdio: true });
  }

  /**
   * `exec --detach`: returns once the process runs; its stdio is the runtime's own, and with a
   * console socket the runtime sends the pty master there instead (as go-runc's Exec).
   */
  async exec(id: string, processFile: string, pidFile: string, stdio: [Fd, Fd, Fd], consoleSocket?: string): Promise<void> {
    const args = ["exec", "--detach", "--pid-file", pidFile, "--process", processFile];
    if (consoleSocket) args.push("--console-socket", consoleSocket);
    args.push(id);
    await this.run(args, stdio, "exec", { handsOnStdio: true });
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
    if (opts.input !== undefined) {
      const sink = proc.stdin as import("bun").FileSink;
      sink.write(opts.input);
      await sink.end();
    }
    const [stdout, stderr] = await Promise.all([
      stdio[1] === "pipe" ? new Response(proc.stdout as ReadableStream<Uint8Array>).text() : "",
      captured ? new Response(proc.stderr as ReadableStream<Uint8Array>).text() : "",
    ]);
    const code = await proc.exited;
    if (code === 0) return stdout;
    const message = lastLoggedError(this.opts.log, logStart) ?? (stderr.trim().split("\n").pop() || `exit status ${code}`);
    throw new RuntimeError(`${this.binary} ${what} failed: ${message}`, code);
  }
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
