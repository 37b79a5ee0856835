// containerd.task.v2.Task for containers run by tsrun (the runtime library in this process, or
// a runc-compatible binary named by the task's BinaryName; see runtime.ts): Create, Start, State, Kill,
// Wait, Delete, Pids, CloseIO, Connect and Shutdown, for the init and for exec'd processes
// (Exec, and ResizePty for an exec's terminal), Pause, Resume, Update and Stats (cgroup v1
// metrics), and terminals (init and exec). Checkpoints answer UNIMPLEMENTED. Task events go to
// the injected publish hook (events/: ordering, OOM watching and the transport to containerd).
import { closeSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CallContext, Method } from "../ttrpc/server.ts";
import { timestamp } from "../ttrpc/codec.ts";
import { alreadyExists, Code, failedPrecondition, invalidArgument, notFound, TtrpcError, unimplemented } from "../ttrpc/status.ts";
import { Console } from "./console.ts";
import { TaskIo, type StdioPaths } from "./io.ts";
import { taskMethods, taskProto, PROCESS_DETAILS_TYPE, RUNC_OPTIONS_TYPE, TaskStatus, type Any, type Codec, type CreateTaskRequest, type ExecProcessRequest, type Mount, type ProcessRequest } from "./proto.ts";
import type { Exit, Reaper } from "./reaper.ts";
import { CGROUPS_V1_METRICS_TYPE, metricsFromRuncStats } from "./metrics.ts";
import { mountRootfs, unmountRootfs } from "./rootfs.ts";
import { DEFAULT_BINARY, DEFAULT_ROOT, RuntimeError, runtimeFor, type RuntimeDriver, type Started } from "./runtime.ts";
import type { SavedOptions } from "./options.ts";
import type { Publish } from "../events/proto.ts";

export const NAMESPACE_METADATA = "containerd-namespace-ttrpc";
/** The same over gRPC (containerd 1.7 and 2.x talking to a gRPC shim). */
export const GRPC_NAMESPACE_METADATA = "containerd-namespace";
export { SHIM_VERSION } from "../bin/name.ts";
import { SHIM_VERSION } from "../bin/name.ts";
/** How long Delete waits for a never-started init to die after `delete --force` killed it. */
const DELETE_EXIT_WAIT_MS = 10_000;
/** How long deleting an exited exec waits for its terminal's last output to reach the client. */
const CONSOLE_DRAIN_MS = 5_000;
/**
 * How long a Task call waits for the runtime (create, start, exec, kill, delete, pause, resume,
 * update, stats, ps) before it answers DEADLINE_EXCEEDED: a hook without a timeout that never
 * ends, a runtime binary stuck on a frozen cgroup, must not hold a call, and containerd's caller,
 * forever. Wait is not bounded: it waits for an exit by design. The environment variable
 * (inherited from containerd, as the group cap is) overrides it.
 */
export const CALL_TIMEOUT_MS = 60_000;
export const CALL_TIMEOUT_ENV = "TSRUN_SHIM_CALL_TIMEOUT_MS";

/** The bound for runtime calls: the environment's, when it is a positive number of milliseconds, else CALL_TIMEOUT_MS. */
export function callTimeoutFromEnv(env: Record<string, string | undefined> = process.env): number {
  const ms = Number(env[CALL_TIMEOUT_ENV]);
  return Number.isFinite(ms) && ms > 0 ? ms : CALL_TIMEOUT_MS;
}
/** containerd's identifier rule (identifiers.Validate); an exec id also names files in the bundle. */
const EXEC_ID = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,74}[A-Za-z0-9])?$/;

/** A process added to a task by Exec; it runs once Start names its exec id. */
interface ExecProcess {
  execId: string;
  /** runtime-spec Process, as Exec received it (with `terminal` set from the request). */
  spec: Record<string, unknown>;
  stdio: StdioPaths;
  terminal: boolean;
  pid: number;
  started: boolean;
  starting: boolean;
  io: TaskIo | undefined;
  console: Console | undefined;
  exit: Exit | undefined;
  /** Settles when the process has exited; rejects if it never started (Start failed). */
  exited: Promise<Exit>;
  settle: { resolve: (e: Exit) => void; reject: (err: Error) => void };
}

/** What the shim keeps for each container; persisted settings go to <bundle>/options.json. */
interface Task {
  id: string;
  bundle: string;
  pid: number;
  stdio: StdioPaths;
  io: TaskIo;
  /** The init's terminal, when Create asked for one. */
  console: Console | undefined;
  terminal: boolean;
  runtime: RuntimeDriver;
  rootfs: string | undefined;
  started: boolean;
  /** Frozen by Pause, thawed by Resume (State reports PAUSED meanwhile). */
  paused: boolean;
  exit: Exit | undefined;
  exited: Promise<Exit>;
  execs: Map<string, ExecProcess>;
}

export interface TaskServiceOptions {
  /** From the shim's -namespace flag; a call's own namespace metadata wins. */
  namespace: string;
  reaper: Reaper;
  /** Defaults for tasks whose Create carries no runc options. */
  binary?: string;
  root?: string;
  /** Called once the daemon may exit: a Shutdown came and no task or reserved place is left. */
  onShutdown?: () => void;
  /** Containers this daemon takes at most through Reserve (`start`); Create itself is never refused for it. */
  maxTasks?: number;
  /** How long a place reserved by `start` waits for its Create. */
  reserveMs?: number;
  /**
   * How long the daemon stays once nothing is left to serve (0: it goes at once), so that the
   * group's next container finds it running instead of paying for a new daemon.
   */
  lingerMs?: number;
  /** Task events for containerd (events/: queued, ordered and sent apart from the calls). */
  publish?: Publish;
  /** The bound on each runtime call (default: callTimeoutFromEnv()). */
  callTimeoutMs?: number;
}

/** How long a place reserved by `start` is kept for a Create that does not come. */
const RESERVE_MS = 60_000;

export class TaskService {
  private tasks = new Map<string, Task>();
  private creating = new Set<string>();
  /** Places `start` reserved for containers whose Create has not come yet (id → expiry timer). */
  private reserved = new Map<string, ReturnType<typeof setTimeout>>();
  /** containerd asked this daemon to go (it does after every task's Delete). */
  private shutdownAsked = false;
  /** Going: no new members. */
  private exiting = false;
  /** Idle, going when this fires unless a container comes first (opts.lingerMs). */
  private lingering: ReturnType<typeof setTimeout> | undefined;

  private publish: Publish;
  private readonly callTimeoutMs: number;

  constructor(private opts: TaskServiceOptions) {
    this.publish = opts.publish ?? (() => {});
    this.callTimeoutMs = opts.callTimeoutMs ?? callTimeoutFromEnv();
  }

  /** The ttrpc method table, for registration as both containerd.task.v2.Task and v3. */
  methods(): Record<string, Method> {
    const p = taskProto();
    const m: Record<string, Method> = {
      Create: unary(p.createRequest, p.createResponse, (req, ctx) => this.create(req, ctx)),
      Start: unary(p.startRequest, p.startResponse, (req) => (req.execId ? this.startExec(req) : this.start(req))),
      Exec: unary(p.execRequest, p.empty, (req) => this.exec(req)),
      ResizePty: unary(p.resizePtyRequest, p.empty, (req) => {
        const console = req.execId ? this.execProcess(req.id, req.execId).console : this.task(req.id, "").console;
        if (!console) throw failedPrecondition(`${req.execId ? `exec ${JSON.stringify(req.execId)} of ` : ""}task ${JSON.stringify(req.id)} has no terminal`);
        console.resize(req.width, req.height);
        return {};
      }),
      State: unary(p.stateRequest, p.stateResponse, (req) => this.state(req)),
      Kill: unary(p.killRequest, p.empty, (req) => this.kill(req.id, req.execId, req.signal, req.all)),
      Wait: unary(p.waitRequest, p.waitResponse, (req) => this.wait(req)),
      Delete: unary(p.deleteRequest, p.deleteResponse, (req) => this.delete(req)),
      Pause: unary(p.idRequest, p.empty, async (req) => {
        const t = this.running(req.id, "paused");
        await this.runtimeCall(() => t.runtime.pause(t.id), "OCI runtime pause failed");
        t.paused = true;
        this.publish("/tasks/paused", { containerId: t.id });
        return {};
      }),
      Resume: unary(p.idRequest, p.empty, async (req) => {
        const t = this.running(req.id, "resumed");
        await this.runtimeCall(() => t.runtime.resume(t.id), "OCI runtime resume failed");
        t.paused = false;
        this.publish("/tasks/resumed", { containerId: t.id });
        return {};
      }),
      Update: unary(p.updateRequest, p.empty, async (req) => {
        const t = this.running(req.id, "updated");
        if (!req.resources?.value.length) throw invalidArgument(`Update ${req.id}: resources are missing`);
        const resources = new TextDecoder().decode(req.resources.value);
        try {
          JSON.parse(resources);
        } catch (err) {
          throw invalidArgument(`Update ${req.id}: the resources are not JSON: ${(err as Error).message}`);
        }
        await this.runtimeCall(() => t.runtime.update(t.id, resources), "OCI runtime update failed");
        return {};
      }),
      Stats: unary(p.statsRequest, p.statsResponse, async (req) => {
        const t = this.running(req.id, "measured");
        const stats = await this.runtimeCall(() => t.runtime.stats(t.id), "OCI runtime stats failed");
        return { stats: { typeUrl: CGROUPS_V1_METRICS_TYPE, value: p.cgroupsV1Metrics.encode(metricsFromRuncStats(stats)) } };
      }),
      Pids: unary(p.pidsRequest, p.pidsResponse, (req) => this.pids(req.id)),
      CloseIO: unary(p.closeIORequest, p.empty, (req) => {
        if (req.stdin) (req.execId ? this.execProcess(req.id, req.execId).io : this.task(req.id, "").io)?.closeStdin();
        return {};
      }),
      Connect: unary(p.connectRequest, p.connectResponse, (req) => {
        const t = this.tasks.get(req.id);
        return { shimPid: process.pid, taskPid: t?.pid ?? 0, version: SHIM_VERSION };
      }),
      Shutdown: unary(p.shutdownRequest, p.empty, (req) => {
        // containerd sends Shutdown after each task's Delete. A shared shim stays up while any
        // task is left (whatever `now` says: the others still need it) or a place is reserved.
        this.shutdownAsked = true;
        // containerd is done with this container here, whether or not its Create ever came.
        this.release(req.id);
        if (req.now && this.tasks.size === 0 && this.creating.size === 0) this.exit(true);
        else this.maybeExit();
        return {};
      }),
    };
    const unsupported: Record<string, string> = {
      Checkpoint: "checkpoint is not supported by containerd-shim-tsrun-v2",
    };
    for (const [name, why] of Object.entries(unsupported)) {
      m[name] = () => {
        throw unimplemented(why);
      };
    }
    for (const name of taskMethods()) if (!m[name]) throw new Error(`Task method ${name} has no handler`);
    return m;
  }

  get size(): number {
    return this.tasks.size;
  }

  /** The containers this daemon serves or has a place reserved for. */
  members(): Set<string> {
    return new Set([...this.tasks.keys(), ...this.creating, ...this.reserved.keys()]);
  }

  /** The bundles of the live tasks (the daemon moves its log to one of them). */
  bundles(): string[] {
    return [...this.tasks.values()].map((t) => t.bundle);
  }

  /**
   * `start` asks for a place for container `id` before handing out this daemon's address: it
   * counts against the cap at once, and keeps the daemon from exiting until its Create comes
   * (or RESERVE_MS passes). Full: RESOURCE_EXHAUSTED; going away: UNAVAILABLE.
   */
  reserve(id: string): void {
    if (!id) throw invalidArgument("Reserve: id is empty");
    if (this.exiting) throw new TtrpcError(Code.UNAVAILABLE, "this shim is shutting down");
    const members = this.members();
    if (members.has(id)) {
      // containerd retried start: the place is already there; renew it if it is a reservation.
      if (this.reserved.has(id)) this.hold(id);
      return;
    }
    if (members.size >= (this.opts.maxTasks ?? Infinity)) throw new TtrpcError(Code.RESOURCE_EXHAUSTED, `this shim serves ${members.size} containers, its maximum`);
    this.hold(id);
  }

  private hold(id: string): void {
    this.stayAwake();
    clearTimeout(this.reserved.get(id));
    const timer = setTimeout(() => {
      this.reserved.delete(id);
      // A start whose Create never came: the daemon need not wait for a Shutdown that was
      // never going to be sent, if nothing else is here.
      if (this.idle()) this.exit();
    }, this.opts.reserveMs ?? RESERVE_MS);
    timer.unref?.();
    this.reserved.set(id, timer);
  }

  private release(id: string): void {
    clearTimeout(this.reserved.get(id));
    this.reserved.delete(id);
  }

  /** After a Shutdown, the daemon goes once no task, Create or reservation is left. */
  private maybeExit(): void {
    if (this.shutdownAsked && this.idle()) this.exit();
  }

  private idle(): boolean {
    return this.tasks.size === 0 && this.creating.size === 0 && this.reserved.size === 0;
  }

  /** A container came: an idle daemon's lingering ends. */
  private stayAwake(): void {
    clearTimeout(this.lingering);
    this.lingering = undefined;
  }

  /** Nothing is left to serve: go, at once when `now` or without a linger time, else once it has passed idle. */
  private exit(now = false): void {
    if (this.exiting) return;
    const linger = now ? 0 : (this.opts.lingerMs ?? 0);
    if (linger > 0) {
      if (this.lingering) return;
      this.lingering = setTimeout(() => {
        this.lingering = undefined;
        if (this.idle()) this.exit(true);
      }, linger);
      return;
    }
    this.stayAwake();
    this.exiting = true;
    for (const timer of this.reserved.values()) clearTimeout(timer);
    this.reserved.clear();
    this.opts.onShutdown?.();
  }

  private namespace(ctx: CallContext): string {
    const ns = ctx.metadata.get(NAMESPACE_METADATA)?.[0] || ctx.metadata.get(GRPC_NAMESPACE_METADATA)?.[0] || this.opts.namespace;
    // It becomes a directory name under the state root.
    if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(ns)) throw invalidArgument(`invalid namespace ${JSON.stringify(ns)}`);
    return ns;
  }

  /** The task; with an exec id, the caller meant an exec and must use execProcess instead. */
  private task(id: string, execId: string): Task {
    const t = this.tasks.get(id);
    if (!t) throw notFound(`task ${JSON.stringify(id)} not found`);
    if (execId) throw notFound(`exec ${JSON.stringify(execId)} of task ${JSON.stringify(id)} not found`);
    return t;
  }

  /** A task whose init still lives (pause, resume, update and stats act on its cgroup). */
  private running(id: string, what: string): Task {
    const t = this.task(id, "");
    if (t.exit) throw failedPrecondition(`task ${JSON.stringify(id)} has exited and cannot be ${what}`);
    return t;
  }

  /** A runtime call bounded by callTimeoutMs; its failure prefixed with `what` (the runc shim's words). */
  private async runtimeCall<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await this.bounded(fn(), what);
    } catch (err) {
      throw runtimeFailure(err, what);
    }
  }

  /**
   * The runtime's promise, or DEADLINE_EXCEEDED after callTimeoutMs. The work itself goes on
   * (the library cannot be interrupted; a binary is killed by BinaryRuntime at the same bound):
   * `late`, if given, gets its outcome to undo what the caller no longer expects.
   */
  private async bounded<T>(work: Promise<T>, what: string, late?: (work: Promise<T>) => void): Promise<T> {
    const done = await within(work.then((value) => ({ value })), this.callTimeoutMs);
    if (done) return done.value;
    work.catch(() => {});
    late?.(work);
    throw new TtrpcError(Code.DEADLINE_EXCEEDED, `${what}: the runtime did not answer within ${this.callTimeoutMs} ms`);
  }

  private execProcess(id: string, execId: string): ExecProcess {
    const t = this.task(id, "");
    const e = t.execs.get(execId);
    if (!e) throw notFound(`exec ${JSON.stringify(execId)} of task ${JSON.stringify(id)} not found`);
    return e;
  }

  private async create(req: CreateTaskRequest, ctx: CallContext) {
    // The place `start` reserved is now this Create's (and, if it fails, nobody's).
    // A failed Create is followed by containerd's Delete and Shutdown, which let the daemon go.
    this.release(req.id);
    return this.createTask(req, ctx);
  }

  private async createTask(req: CreateTaskRequest, ctx: CallContext) {
    if (!req.id) throw invalidArgument("Create: id is empty");
    if (!req.bundle) throw invalidArgument(`Create ${req.id}: bundle is empty`);
    if (this.tasks.has(req.id) || this.creating.has(req.id)) throw alreadyExists(`task ${JSON.stringify(req.id)} already exists`);
    if (this.exiting) throw new TtrpcError(Code.UNAVAILABLE, `Create ${req.id}: this shim is shutting down`);
    if (req.checkpoint || req.parentCheckpoint) throw unimplemented("restoring from a checkpoint is not supported by containerd-shim-tsrun-v2");
    const ns = this.namespace(ctx);
    const runc = runcOptions(req.options);
    const saved: SavedOptions = {
      binary_name: runc?.binaryName || this.opts.binary || DEFAULT_BINARY,
      root: runc?.root || this.opts.root || DEFAULT_ROOT,
    };
    this.stayAwake();
    this.creating.add(req.id);
    /** The runtime's create outlived the call's bound: its late outcome is undone, then the id is free. */
    let abandoned = false;
    try {
      const runtime = newRuntime(saved, ns, req.bundle, this.opts.reaper, this.callTimeoutMs);
      writeFileSync(join(req.bundle, "options.json"), JSON.stringify(saved));
      const rootfs = req.rootfs.length > 0 ? join(req.bundle, "rootfs") : undefined;
      if (rootfs) mountRootfs(rootfs, req.rootfs as Mount[]);
      let io: TaskIo | undefined;
      let console: Console | undefined;
      try {
        const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr };
        // With a terminal the init's stdio is the pty; the fifos are the shim's to copy.
        io = TaskIo.open(req.terminal ? { ...stdio, stderr: "" } : stdio);
        const pidFile = join(req.bundle, "init.pid");
        const opened = io;
        const started = await this.bounded(
          runtime.create(req.id, req.bundle, pidFile, io.fds, { noPivot: runc?.noPivotRoot, noNewKeyring: runc?.noNewKeyring, terminal: req.terminal }),
          "OCI runtime create failed",
          (late) => {
            abandoned = true;
            void this.undoLateCreate(req.id, runtime, late, opened, rootfs);
          },
        );
        const { pid } = started;
        if (started.console !== undefined) console = newConsole(started.console, io);
        else io.release();
        const task: Task = { id: req.id, bundle: req.bundle, pid, stdio, io, console, terminal: req.terminal, runtime, rootfs, started: false, paused: false, exit: undefined, exited: this.opts.reaper.watch(pid), execs: new Map() };
        void task.exited.then((exit) => {
          task.exit = exit;
          task.io.closeStdin();
          this.publish("/tasks/exit", { containerId: task.id, id: task.id, pid, exitStatus: exit.status, exitedAt: timestamp(exit.at) });
        });
        this.tasks.set(req.id, task);
        this.publish("/tasks/create", { containerId: req.id, bundle: req.bundle, rootfs: req.rootfs, io: { ...stdio, terminal: req.terminal }, checkpoint: req.checkpoint, pid });
        return { pid };
      } catch (err) {
        // An abandoned create still uses its IO and rootfs: undoLateCreate releases them.
        if (!abandoned) {
          console?.close();
          io?.close();
          if (rootfs) unmountRootfs(rootfs);
        }
        throw runtimeFailure(err, "OCI runtime create failed");
      }
    } finally {
      if (!abandoned) this.creating.delete(req.id);
    }
  }

  /** Kills a process the runtime started after its call was answered as failed; resolves once it is reaped. */
  private killLate(started: Started): Promise<unknown> {
    if (started.console !== undefined) closeFd(started.console);
    const exited = this.opts.reaper.watch(started.pid);
    try {
      process.kill(started.pid, "SIGKILL");
    } catch {
      // Gone already.
    }
    return exited;
  }

  /**
   * After a Create that answered DEADLINE_EXCEEDED: once the runtime's create ends, a container it
   * made after all is killed and deleted (containerd was told there is none), and the IO and
   * rootfs go. The id stays taken until then, so a second Create cannot race the first.
   */
  private async undoLateCreate(id: string, runtime: RuntimeDriver, late: Promise<Started>, io: TaskIo, rootfs: string | undefined): Promise<void> {
    try {
      await this.killLate(await late);
      await runtime.delete(id, true);
    } catch {
      // The create failed late (the runtime removed what it made), or the delete did: the
      // runtime state is then `shim delete`'s to remove, as after a crash.
    } finally {
      io.close();
      if (rootfs) unmountRootfs(rootfs);
      this.creating.delete(id);
      this.maybeExit();
    }
  }

  private async start(req: ProcessRequest) {
    const t = this.task(req.id, req.execId);
    if (t.started) throw failedPrecondition(`task ${JSON.stringify(t.id)} has already been started`);
    if (t.exit) throw failedPrecondition(`task ${JSON.stringify(t.id)} has exited and cannot be started`);
    try {
      await this.bounded(t.runtime.start(t.id), "OCI runtime start failed", () => {
        // containerd was told Start failed: the init must not start late, so it dies now (its
        // exit is reaped and reported as any) and the task is left for containerd's Delete.
        try {
          process.kill(t.pid, "SIGKILL");
        } catch {
          // Gone already.
        }
      });
    } catch (err) {
      throw runtimeFailure(err, "OCI runtime start failed");
    }
    t.started = true;
    this.publish("/tasks/start", { containerId: t.id, pid: t.pid });
    return { pid: t.pid };
  }

  private exec(req: ExecProcessRequest) {
    const t = this.task(req.id, "");
    if (!EXEC_ID.test(req.execId)) throw invalidArgument(`Exec: exec id ${JSON.stringify(req.execId)} is not a valid identifier`);
    if (t.execs.has(req.execId)) throw alreadyExists(`exec ${JSON.stringify(req.execId)} of task ${JSON.stringify(req.id)} already exists`);
    if (t.exit) throw failedPrecondition(`task ${JSON.stringify(req.id)} has exited: nothing to exec in`);
    if (!req.spec?.value.length) throw invalidArgument(`Exec ${req.execId}: the process spec is missing`);
    let spec: Record<string, unknown>;
    try {
      spec = JSON.parse(new TextDecoder().decode(req.spec.value)) as Record<string, unknown>;
    } catch (err) {
      throw invalidArgument(`Exec ${req.execId}: the process spec is not JSON: ${(err as Error).message}`);
    }
    if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw invalidArgument(`Exec ${req.execId}: the process spec is not a JSON object`);
    // The request's flag decides whether the shim makes a terminal; the runtime must agree.
    spec.terminal = req.terminal;
    let settle!: ExecProcess["settle"];
    const exited = new Promise<Exit>((resolve, reject) => (settle = { resolve, reject }));
    // A Start that fails rejects it; a Wait may not be listening.
    exited.catch(() => {});
    const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr };
    t.execs.set(req.execId, { execId: req.execId, spec, stdio, terminal: req.terminal, pid: 0, started: false, starting: false, io: undefined, console: undefined, exit: undefined, exited, settle });
    this.publish("/tasks/exec-added", { containerId: t.id, execId: req.execId });
    return {};
  }

  private async startExec(req: ProcessRequest) {
    const t = this.task(req.id, "");
    const e = this.execProcess(req.id, req.execId);
    if (e.started || e.starting) throw failedPrecondition(`exec ${JSON.stringify(e.execId)} of task ${JSON.stringify(t.id)} has already been started`);
    if (t.exit) throw failedPrecondition(`task ${JSON.stringify(t.id)} has exited: exec ${JSON.stringify(e.execId)} cannot start`);
    e.starting = true;
    try {
      // With a terminal the process's stdio is the pty; the fifos are the shim's to copy.
      e.io = TaskIo.open(e.terminal ? { ...e.stdio, stderr: "" } : e.stdio);
      const opened = e.io;
      const started = await this.bounded(t.runtime.exec(t.id, e.execId, e.spec, e.io.fds, e.terminal), "OCI runtime exec failed", (late) => {
        // The exec was reported failed: a process that starts late is killed, and its IO kept
        // open until then (the runtime still has the fds).
        e.io = undefined;
        void late.then((s) => this.killLate(s), () => undefined).finally(() => opened.close());
      });
      if (started.console !== undefined) e.console = newConsole(started.console, e.io);
      else e.io.release();
      e.pid = started.pid;
    } catch (err) {
      e.console?.close();
      e.console = undefined;
      e.io?.close();
      e.io = undefined;
      const failure = runtimeFailure(err, "OCI runtime exec failed");
      e.settle.reject(failure);
      throw failure;
    } finally {
      e.starting = false;
    }
    e.started = true;
    this.publish("/tasks/exec-started", { containerId: t.id, execId: e.execId, pid: e.pid });
    void this.opts.reaper.watch(e.pid).then((exit) => {
      e.exit = exit;
      e.settle.resolve(exit);
      this.publish("/tasks/exit", { containerId: t.id, id: e.execId, pid: e.pid, exitStatus: exit.status, exitedAt: timestamp(exit.at) });
    });
    return { pid: e.pid };
  }

  private async pids(id: string) {
    const t = this.task(id, "");
    let pids: number[];
    try {
      pids = await this.bounded(t.runtime.ps(t.id), "OCI runtime ps failed");
    } catch (err) {
      // A stopped container has no cgroup processes left to list.
      if (t.exit) return { processes: [] };
      throw runtimeFailure(err, "OCI runtime ps failed");
    }
    const byPid = new Map<number, string>();
    for (const e of t.execs.values()) if (e.started && !e.exit) byPid.set(e.pid, e.execId);
    const p = taskProto();
    return {
      processes: pids.map((pid) => {
        const execId = byPid.get(pid);
        // `ctr task ps` shows the exec id from the runc shim's ProcessDetails.
        return { pid, info: execId ? { typeUrl: PROCESS_DETAILS_TYPE, value: p.processDetails.encode({ execId }) } : null };
      }),
    };
  }

  private state(req: ProcessRequest) {
    if (req.execId) {
      const t = this.task(req.id, "");
      const e = this.execProcess(req.id, req.execId);
      return {
        id: t.id,
        bundle: t.bundle,
        pid: e.pid,
        status: e.exit ? TaskStatus.STOPPED : e.started ? TaskStatus.RUNNING : TaskStatus.CREATED,
        ...e.stdio,
        terminal: e.terminal,
        exitStatus: e.exit?.status ?? 0,
        exitedAt: e.exit ? timestamp(e.exit.at) : null,
        execId: e.execId,
      };
    }
    const t = this.task(req.id, req.execId);
    const status = t.exit ? TaskStatus.STOPPED : t.paused ? TaskStatus.PAUSED : t.started ? TaskStatus.RUNNING : TaskStatus.CREATED;
    return {
      id: t.id,
      bundle: t.bundle,
      pid: t.pid,
      status,
      ...t.stdio,
      terminal: t.terminal,
      exitStatus: t.exit?.status ?? 0,
      exitedAt: t.exit ? timestamp(t.exit.at) : null,
      execId: "",
    };
  }

  private async kill(id: string, execId: string, signal: number, all: boolean) {
    if (execId) {
      // As the runc shim: an exec'd process is signalled directly; its pid stays ours until reaped.
      const e = this.execProcess(id, execId);
      if (e.exit) throw notFound(`exec ${JSON.stringify(execId)} of task ${JSON.stringify(id)}: process already finished`);
      if (!e.started) throw failedPrecondition(`exec ${JSON.stringify(execId)} of task ${JSON.stringify(id)} has not been started`);
      try {
        process.kill(e.pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ESRCH") throw notFound(`exec ${JSON.stringify(execId)} of task ${JSON.stringify(id)}: process already finished`);
        throw new TtrpcError(Code.UNKNOWN, `kill exec ${execId} (pid ${e.pid}) with signal ${signal}: ${(err as Error).message}`);
      }
      return {};
    }
    const t = this.task(id, execId);
    if (t.exit && !all) throw notFound(`task ${JSON.stringify(id)}: process already finished`);
    try {
      await this.bounded(t.runtime.kill(t.id, signal, all), "OCI runtime kill failed");
    } catch (err) {
      if (err instanceof TtrpcError) throw err;
      // The init may have died after the check above; containerd treats NOT_FOUND as done.
      if (t.exit || /not running|does not exist|not found|ESRCH|stopped/i.test((err as Error).message)) throw notFound(`task ${JSON.stringify(id)}: process already finished`);
      throw runtimeFailure(err, "OCI runtime kill failed");
    }
    return {};
  }

  private async wait(req: ProcessRequest) {
    const exit = await (req.execId ? this.execProcess(req.id, req.execId).exited : this.task(req.id, "").exited);
    return { exitStatus: exit.status, exitedAt: timestamp(exit.at) };
  }

  private async deleteExec(req: ProcessRequest) {
    const t = this.task(req.id, "");
    const e = this.execProcess(req.id, req.execId);
    if (e.starting || (e.started && !e.exit)) throw failedPrecondition(`exec ${JSON.stringify(e.execId)} of task ${JSON.stringify(t.id)} is running: kill it before deleting it`);
    // The terminal's last output must reach the client before containerd closes its side.
    if (e.console) await within(e.console.drained, CONSOLE_DRAIN_MS);
    closeExecIo(e);
    t.execs.delete(e.execId);
    return { pid: e.pid, exitStatus: e.exit?.status ?? 0, exitedAt: e.exit ? timestamp(e.exit.at) : null };
  }

  private async delete(req: ProcessRequest) {
    if (req.execId) return this.deleteExec(req);
    const t = this.task(req.id, req.execId);
    if (t.started && !t.exit) throw failedPrecondition(`task ${JSON.stringify(t.id)} is running: kill it before deleting it`);
    // A created task's init is killed first, and its exit (reaped here, by the shim) is what
    // Delete reports; the runtime then deletes a stopped container and waits for nobody.
    if (!t.exit) {
      try {
        await this.bounded(t.runtime.kill(t.id, 9, false), "OCI runtime kill failed");
      } catch {
        // Gone already: the exit is on its way to the reaper (or the wait below says why not).
      }
    }
    const exit = t.exit ?? (await within(t.exited, DELETE_EXIT_WAIT_MS));
    if (!exit) throw new TtrpcError(Code.DEADLINE_EXCEEDED, `task ${JSON.stringify(t.id)}: init ${t.pid} did not exit within ${DELETE_EXIT_WAIT_MS} ms of being killed`);
    try {
      await this.bounded(t.runtime.delete(t.id, true), "OCI runtime delete failed");
    } catch (err) {
      if (err instanceof TtrpcError || !/does not exist|not found/i.test((err as Error).message)) throw runtimeFailure(err, "OCI runtime delete failed");
    }
    if (t.console) await within(t.console.drained, CONSOLE_DRAIN_MS);
    t.console?.close();
    t.io.close();
    for (const e of t.execs.values()) closeExecIo(e);
    if (t.rootfs) unmountRootfs(t.rootfs);
    this.tasks.delete(t.id);
    this.publish("/tasks/delete", { containerId: t.id, pid: t.pid, exitStatus: exit.status, exitedAt: timestamp(exit.at), id: t.id });
    return { pid: t.pid, exitStatus: exit.status, exitedAt: timestamp(exit.at) };
  }
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}

function closeExecIo(e: ExecProcess): void {
  e.console?.close();
  e.console = undefined;
  e.io?.close();
  e.io = undefined;
}

/** The promise's value, or undefined when it takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A ttrpc method from a handler on decoded messages. */
function unary<Req, Res>(req: Codec<Req>, res: Codec<Res>, fn: (r: Req, ctx: CallContext) => Partial<Res> | Promise<Partial<Res>>): Method {
  return async (payload, ctx) => {
    let decoded: Req;
    try {
      decoded = req.decode(payload);
    } catch (err) {
      throw invalidArgument(`${ctx.method}: malformed request: ${(err as Error).message}`);
    }
    return res.encode(await fn(decoded, ctx));
  };
}

/** The runc shim's options, when Create carries them (a CRI runtime table's `options`, ctr --runc-*). */
function runcOptions(any: Any | null) {
  if (!any || !any.typeUrl) return undefined;
  // containerd writes bare names; accept the type.googleapis.com/ form too.
  if (any.typeUrl.replace(/^.*\//, "") !== RUNC_OPTIONS_TYPE) return undefined;
  try {
    return taskProto().runcOptions.decode(any.value);
  } catch (err) {
    throw invalidArgument(`Create: options of type ${any.typeUrl} do not decode: ${(err as Error).message}`);
  }
}

export function newRuntime(saved: SavedOptions, ns: string, bundle: string, reaper: Reaper, timeoutMs?: number): RuntimeDriver {
  try {
    return runtimeFor({ binary: saved.binary_name, root: join(saved.root, ns), log: join(bundle, "log.json"), reaper, bundle, timeoutMs });
  } catch (err) {
    throw new TtrpcError(Code.FAILED_PRECONDITION, (err as Error).message);
  }
}

/** The terminal of a process whose pty master the runtime handed over: stdin's fifo in, the master out to stdout's. */
function newConsole(master: number, io: TaskIo): Console {
  const [stdin, stdout] = io.fds;
  return new Console(master, typeof stdin === "number" ? stdin : undefined, typeof stdout === "number" ? stdout : undefined);
}

/** Errors from the runtime keep their text, prefixed as containerd's runc shim does. */
function runtimeFailure(err: unknown, what: string): Error {
  if (err instanceof TtrpcError) return err;
  const message = err instanceof RuntimeError ? err.message : (err as Error).message ?? String(err);
  return new TtrpcError(Code.UNKNOWN, `${what}: ${message}`);
}
