// exec: a new process in a running container, through the same executor as the init. It joins
// the init's namespaces and cgroups and gets the init's set-up (or what process.json says);
// only fds 0-2 and the preserved ones reach it, it is not dumpable until its program runs, and
// /proc/<pid>/exe is never the tsrun binary.
import type { Process } from "@tsrun/ocispec/core";
import { validateConfig } from "@tsrun/ocispec/config";
import { formatProblem, OCI_VERSION } from "@tsrun/ocispec/core";
import { cgroupManagerFromJSON } from "../cgroups/manager.ts";
import { UNIFIED } from "../cgroups/paths.ts";
import * as linux from "../linux/index.ts";
import { PlanError } from "../plan/compile.ts";
import { compileExecPlan } from "../plan/exec.ts";
import type { Op } from "../plan/ops.ts";
import { SYNC } from "../plan/ops.ts";
import { encodePlan } from "../plan/wire.ts";
import { setgroupsDenied } from "./rootless.ts";
import { writeFileAtomic } from "../io.ts";
import { ContainerError, executorErrorFields, executorFailure } from "./errors.ts";
import { errorFields } from "../errors.ts";
import { status } from "./lifecycle.ts";
import { sendSeccompListener } from "./seccomp-agent.ts";
import { stateDocument } from "./status.ts";
import { apparmorEnabled, hostTerminal } from "./host.ts";
import { waitExit, forwardSignals } from "./foreground.ts";
import { moveOfOp, openTasks } from "./cgroup-move.ts";
import { killOwnChild, ownChild, reapOwnChild, recvAsync, releaseChild } from "./children.ts";
import type { Store } from "./store.ts";
import { trace } from "../trace.ts";
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

export interface ExecOptions {
  id: string;
  /** The whole process: the container's own, changed by the command line, or process.json. */
  process: Process;
  consoleSocket?: string;
  detach?: boolean;
  pidFile?: string;
  preserveFds?: number;
  /** Exec into a paused container (the process then waits, frozen, until resume). */
  ignorePaused?: boolean;
  /** runc's --cgroup: existing sub-cgroups of the container's, `[controller[,controller]:]path`. */
  subCgroups?: string[];
  /** The process's fds 0, 1, 2 (-1: /dev/null). Default: the caller's own 0, 1, 2. */
  stdio?: [number, number, number];
  /** The caller serves the terminal itself (the shim): startExec hands back the pty master. */
  takeConsole?: boolean;
}

/** A process startExec left running: the caller's child, to wait for; its terminal's master when it has one. */
export interface Executed {
  pid: number;
  console?: number;
}

/**
 * The directories of --cgroup, as runc reads it: `path` alone (given once) for every controller,
 * or `ctl[,ctl]:path` per controller; each an existing directory below the container's own
 * cgroup for that controller. Returns [controller, directory] pairs.
 */
export function subCgroupDirs(paths: Record<string, string>, args: readonly string[]): [string, string][] {
  if (args.length === 0) return [];
  const wanted = new Map<string, string>();
  for (const a of args) {
    const parts = a.split(":");
    if (parts.length > 2) throw new ContainerError(`invalid --cgroup argument: ${a}`);
    if (parts.length === 1) {
      if (args.length !== 1) throw new ContainerError(`invalid --cgroup argument: ${a} (missing <controller>: prefix)`);
      for (const ctl of Object.keys(paths)) wanted.set(ctl, a);
    } else
      for (const ctl of parts[0]!.split(",")) {
        if (!(ctl in paths)) throw new ContainerError(`invalid --cgroup argument: ${a}: unknown controller ${ctl}: the container has no ${ctl} cgroup (it has ${Object.keys(paths).filter(Boolean).join(", ")})`, { op: "exec --cgroup" });
        wanted.set(ctl, parts[1]!);
      }
  }
  return [...wanted].map(([ctl, sub]) => {
    const base = paths[ctl]!;
    const dir = resolve(base, sub.replace(/^\/+/, ""));
    if (dir !== base && !dir.startsWith(`${base}/`)) throw new ContainerError(`invalid --cgroup argument: ${sub} is not a sub cgroup path (it leads out of the container's cgroup)`, { op: "exec --cgroup", path: dir });
    if (!existsSync(join(dir, "cgroup.procs"))) throw new ContainerError(`--cgroup ${sub}: adding pid to ${join(dir, "cgroup.procs")}: no such file or directory (the sub-cgroup must exist)`, { op: "exec --cgroup", path: dir, code: "ENOENT" });
    return [ctl, dir];
  });
}

/** A cgroup the process joins: the container's, or one of its sub-cgroups named by --cgroup. */
interface CgroupJoin {
  dir: string;
  sub: boolean;
}

/**
 * Where the process goes: for each hierarchy the container's cgroup (when it still exists) or the
 * --cgroup one, split into cgroup v1 directories (stage 1 moves itself, through `tasks`) and
 * cgroup2 ones (tsrun writes stage 1's pid to cgroup.procs at the sync).
 */
function cgroupJoins(id: string, state: unknown, subCgroups: readonly string[]): { v1: CgroupJoin[]; procs: CgroupJoin[] } {
  if (state === undefined) {
    if (subCgroups.length) throw new ContainerError(`--cgroup: container ${id} has no cgroup`, { id });
    return { v1: [], procs: [] };
  }
  const cg = cgroupManagerFromJSON(state);
  const paths = cg.paths();
  const target = new Map<string, CgroupJoin>();
  if (cg.exists()) for (const [ctl, dir] of Object.entries(paths)) target.set(ctl, { dir, sub: false });
  for (const [ctl, dir] of subCgroupDirs(paths, subCgroups)) target.set(ctl, { dir, sub: true });
  // co-mounted v1 controllers (cpu,cpuacct) share a directory: one move
  const v1 = new Map<string, CgroupJoin>();
  const procs = new Map<string, CgroupJoin>();
  for (const [ctl, j] of target) (ctl === UNIFIED ? procs : v1).set(j.dir, j);
  return { v1: [...v1.values()], procs: [...procs.values()] };
}

function cgroupMoveError(id: string, j: CgroupJoin, code: string, file: string, cause?: unknown): ContainerError {
  const hint = code === "ENOSPC" ? " (a cpuset cgroup takes processes once its cpuset.cpus and cpuset.mems are set)" : "";
  const fields = { id, op: j.sub ? "exec --cgroup" : "exec", path: join(j.dir, file), code, ...(cause ? { cause } : {}) };
  if (j.sub) return new ContainerError(`--cgroup: cannot move the process into ${j.dir}: ${code}${hint}`, fields);
  return new ContainerError(`exec in ${id}: cannot move the process into the container's cgroup ${j.dir}: ${code}${hint}`, fields);
}

/** Moves stage 1 (all its threads: it has one) into a cgroup2 cgroup. */
function moveToCgroup(id: string, j: CgroupJoin, pid: number): void {
  try {
    writeFileSync(join(j.dir, "cgroup.procs"), String(pid));
  } catch (e) {
    throw cgroupMoveError(id, j, (e as NodeJS.ErrnoException).code ?? "EIO", "cgroup.procs", e);
  }
}

/** How long tsrun waits for any one step of the executor. */
const STEP_TIMEOUT_MS = 60_000;

/** Checks a process as `create` checks the config's: every problem at once, by pointer. */
export function validateProcess(p: unknown, source: string): Process {
  const v = validateConfig({ ociVersion: OCI_VERSION, process: p });
  if (!v.ok) {
    const n = v.problems.length;
    throw new ContainerError(`invalid ${source} (${n} problem${n === 1 ? "" : "s"}): ${v.problems.map(formatProblem).join("; ")}`);
  }
  return v.value.process!;
}

/**
 * Runs the process in the container. Detached: returns 0 once its program runs. In the
 * foreground: forwards signals, relays its terminal, and returns its exit status (128+n for a
 * signal).
 */
export async function execProcess(store: Store, opts: ExecOptions): Promise<number> {
  const { pid, console: pty } = await startExec(store, opts);
  if (opts.detach) return 0;
  // The process is tsrun's child (not reaped before waitExit): its pid cannot be reused meanwhile.
  const stop = forwardSignals((sig) => linux.kill(pid, sig));
  try {
    return await waitExit(pid, pty);
  } finally {
    stop();
    if (pty !== undefined) linux.close(pty);
  }
}

/**
 * Starts the process and returns once its program runs (or throws, leaving nothing running).
 * The executor's messages are awaited without blocking the event loop for long.
 */
export async function startExec(store: Store, opts: ExecOptions): Promise<Executed> {
  trace("exec: start");
  const rec = store.read(opts.id);
  const st = status(store, rec);
  const id = { id: opts.id };
  if (st === "stopped") throw new ContainerError(`cannot exec in a stopped container: ${opts.id}`, id);
  if (st === "creating") throw new ContainerError(`cannot exec in container ${opts.id}: it is still being created`, id);
  if (st === "paused" && !opts.ignorePaused) throw new ContainerError(`cannot exec in a paused container ${opts.id} (use --ignore-paused to override)`, id);
  const proc = opts.process;
  if (proc.terminal && opts.detach && !opts.consoleSocket && !opts.takeConsole) throw new ContainerError("cannot allocate tty if tsrun will detach without setting console socket");
  if (!proc.terminal && opts.consoleSocket) throw new ContainerError("cannot use console socket if tsrun will not detach or allocate tty");
  if (proc.terminal && !opts.detach && !opts.consoleSocket && !opts.takeConsole && !hostTerminal())
    throw new ContainerError(
      "cannot relay the process's terminal: none of stdin, stdout and stderr is a terminal, and there is no controlling terminal (/dev/tty); run tsrun from a terminal, or drop --tty, or use --detach with --console-socket",
    );
  const preserveFds = opts.preserveFds ?? 0;
  // The cgroups, checked before anything starts: v1 ones stage 1 enters itself, through their
  // `tasks` files opened here (no global migration lock, see fold.ts moveSelfToCgroupOps);
  // cgroup2 ones tsrun moves it into at the sync.
  const joins = cgroupJoins(opts.id, rec.cgroup, opts.subCgroups ?? []);
  const tasksFds: number[] = [];
  let plan;
  let initFd = -1;
  let spawned: ReturnType<typeof linux.spawnExecutor>;
  try {
    for (const j of joins.v1) tasksFds.push(openTasks(j.dir, (code, cause) => cgroupMoveError(opts.id, j, code, "tasks", cause)));
    try {
      // A rootless container's user namespace denies setgroups: the process skips it, as the init did.
      // The namespaces are joined through a pidfd of the init: a created container's init is not
      // dumpable yet, and once in its user namespace its /proc/<pid>/ns files could not be opened.
      plan = compileExecPlan({
        spec: rec.config,
        process: proc,
        initPid: rec.pid,
        preserveFds,
        apparmor: proc.apparmorProfile ? apparmorEnabled() : false,
        denySetgroups: setgroupsDenied(rec.pid),
        pidfd: true,
        cgroupTasks: joins.v1.map((j) => j.dir),
      });
    } catch (e) {
      if (e instanceof PlanError) throw new ContainerError(`exec in ${opts.id}: ${e.message}`, { id: opts.id, pointer: e.pointer, cause: e });
      throw e;
    }
    trace("exec: plan compiled");
    try {
      initFd = linux.pidfdOpen(rec.pid);
    } catch (e) {
      throw new ContainerError(`exec in ${opts.id}: the container's init (pid ${rec.pid}) is gone`, { ...errorFields(e), id: opts.id, op: "pidfd_open", cause: e });
    }
    const enc = encodePlan(plan.ops);
    trace("exec: encoded");
    spawned = linux.spawnExecutor(enc, {
      stdio: opts.stdio ?? [0, 1, 2],
      // The pidfd comes right after the preserved fds, where the plan's join looks for it, then
      // the cgroups' tasks files.
      preserveFds: [...Array.from({ length: preserveFds }, (_, i) => 3 + i), initFd, ...tasksFds],
    });
  } finally {
    if (initFd >= 0) linux.close(initFd);
    for (const fd of tasksFds) linux.close(fd);
  }
  trace("exec: executor spawned");
  const { pid: stage1, sync } = spawned;
  ownChild(stage1);
  let stage1Left = true;
  let pid = 0;
  let pty: number | undefined;
  let execd = false;
  try {
    // Stage 1 waits at its first sync: it joins the cgroup2 cgroups now, and the process it
    // forks is born in them.
    for (const j of joins.procs) moveToCgroup(opts.id, j, stage1);
    trace("exec: in the cgroups");
    // In a paused container the process starts frozen and goes on at resume, whenever that is.
    const stepTimeout = st === "paused" ? 24 * 3600_000 : STEP_TIMEOUT_MS;
    for (;;) {
      const msg = await recvAsync(sync, stepTimeout);
      trace(`exec: message ${msg.type}`);
      if (msg.type === "sync") {
        sync.answer(msg.code === SYNC.NAMESPACES);
      } else if (msg.type === "pid") {
        pid = msg.pid;
        // Until it is handed back: the library kills and reaps it itself if set-up fails.
        ownChild(pid);
        reapOwnChild(stage1);
        stage1Left = false;
      } else if (msg.type === "fd" && msg.kind === "seccomp") {
        try {
          sendSeccompListener(opts.id, rec.config, msg.fd, stateDocument(rec, "running"), pid);
        } finally {
          linux.close(msg.fd);
        }
      } else if (msg.type === "fd") {
        if (opts.consoleSocket) {
          linux.sendFd(opts.consoleSocket, msg.fd, "/dev/ptmx");
          linux.close(msg.fd);
        } else pty = msg.fd;
      } else if (msg.type === "exec") {
        execd = true;
      } else if (msg.type === "error") {
        const join = moveOfOp(plan.ops, msg.op, joins.v1);
        if (join) throw cgroupMoveError(opts.id, join, linux.errnoName(msg.errno), "tasks");
        throw new ContainerError(executorFailure(opts.id, plan.ops, msg, `exec in ${opts.id}`), { ...executorErrorFields(plan.ops[msg.op], msg.errno), id: opts.id });
      } else if (msg.type === "eof") {
        if (!execd) throw new ContainerError(`exec in ${opts.id}: the process exited during set-up`, id);
        break;
      }
    }
  } catch (e) {
    if (stage1Left) killOwnChild(stage1);
    if (pid) killOwnChild(pid);
    if (pty !== undefined) linux.close(pty);
    throw e;
  } finally {
    sync.close();
    releaseChild(pid);
  }
  if (opts.pidFile)
    try {
      writeFileAtomic(resolve(opts.pidFile), String(pid), 0o644);
    } catch (e) {
      // The process runs; a pid file nobody can read would leave it unaccounted for: stop it.
      linux.kill(pid, 9);
      linux.waitpid(pid, 0);
      if (pty !== undefined) linux.close(pty);
      const code = (e as NodeJS.ErrnoException).code;
      throw new ContainerError(`exec in ${opts.id}: cannot write the pid file ${resolve(opts.pidFile)}: ${code ?? (e as Error).message}`, { id: opts.id, path: resolve(opts.pidFile), op: "write", ...(code ? { code } : {}) });
    }
  return pty === undefined ? { pid } : { pid, console: pty };
}
