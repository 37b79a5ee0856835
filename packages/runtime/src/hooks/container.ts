// Hooks that run in the container's namespaces (createContainer, startContainer). tsrun starts
// each through the executor as it starts an exec'd process (plan/exec.ts compileHookPlan): the
// executor joins the init's namespaces (user first, mount last), is moved into the container's
// cgroups, forks into its pid namespace and execs the hook, with the state JSON on stdin and its
// stdout and stderr in a pipe that tsrun reads for the error message. The init itself waits at
// its sync point (createContainer) or on the exec fifo (startContainer) meanwhile, so the hook
// sees what runc's hooks see: the mounts before pivot_root, or the container as it will run.
// The steps are a generator of waits (an fd to become readable), so that the CLI waits by
// blocking and a process serving others meanwhile (the shim) by awaiting; the processes are
// the library's own children (container/children.ts) until their exit is read.
import type { Hook, Spec } from "@tsrun/ocispec/core";
import { openSync, readSync } from "node:fs";
import { ownProcsFile } from "../cgroups/detect.ts";
import { killOwnChild, ownChild, readable, reapOwnChild, releaseChild } from "../container/children.ts";
import { executorFailure } from "../container/errors.ts";
import * as linux from "../linux/index.ts";
import { compileHookPlan } from "../plan/exec.ts";
import { PlanError } from "../plan/compile.ts";
import { encodePlan } from "../plan/wire.ts";
import { trace } from "../trace.ts";
import { HookError, signalText } from "./run.ts";

export interface ContainerHookContext {
  spec: Spec;
  /** The container's id: errors read "container ID: error running hook #N (createContainer PATH): …". */
  id: string;
  /** The init, in tsrun's pid namespace. */
  initPid: number;
  /** createContainer: the rootfs's host path (the hook's cwd, before pivot_root). */
  rootfs?: string;
  /** Moves the hook's executor into the container's cgroups, before it forks the hook. */
  joinCgroups?: (pid: number) => void;
  apparmor?: boolean;
  denySetgroups?: boolean;
}

/** How long tsrun waits for the executor's set-up before the hook (the hook's own timeout is separate). */
const STEP_TIMEOUT_MS = 60_000;
/** How much of the hook's output an error message quotes. */
const OUTPUT_MAX = 4096;

/** A wait: until `fd` is readable (or hung up); resumed with false after `timeoutMs` (Infinity: none). */
export interface HookWait {
  kind: "wait";
  fd: number;
  timeoutMs: number;
}

export function runContainerHooks(kind: "createContainer" | "startContainer", hooks: Hook[] | undefined, state: string, ctx: ContainerHookContext): void {
  const gen = containerHookSteps(kind, hooks, state, ctx);
  for (let r = gen.next(); !r.done; ) r = gen.next(linux.pollIn(r.value.fd, r.value.timeoutMs === Infinity ? -1 : Math.max(0, r.value.timeoutMs)));
}

/** runContainerHooks without blocking the event loop for more than a short poll at a time. */
export async function runContainerHooksAsync(kind: "createContainer" | "startContainer", hooks: Hook[] | undefined, state: string, ctx: ContainerHookContext): Promise<void> {
  const gen = containerHookSteps(kind, hooks, state, ctx);
  for (let r = gen.next(); !r.done; ) r = gen.next(await readable(r.value.fd, Math.max(0, r.value.timeoutMs)));
}

/** The hooks of one kind, in order, as a generator of waits (see runContainerHooks). */
export function* containerHookSteps(kind: string, hooks: Hook[] | undefined, state: string, ctx: ContainerHookContext): Generator<HookWait, void, boolean> {
  if (!hooks?.length) return;
  // The first cgroup migration after a quiet spell waits for an RCU grace period (see
  // container/warmup.ts): a throwaway executor starts that wait now, while the hook's executor
  // is spawned and joins the namespaces.
  const warm = ctx.joinCgroups ? warmUp() : 0;
  try {
    for (const [index, hook] of hooks.entries()) yield* hookSteps(kind, index, hook, state, ctx);
  } finally {
    if (warm > 0) {
      reapOwnChild(warm); // done by now: the hooks' own migrations waited for it
    }
  }
}

/** The warm-up's pid (a child to reap), or 0. */
function warmUp(): number {
  try {
    const procs = ownProcsFile();
    const pid = procs ? linux.spawnWarmup(procs) : 0;
    ownChild(pid);
    return pid;
  } catch {
    return 0; // only an optimisation
  }
}

function* hookSteps(kind: string, index: number, hook: Hook, state: string, ctx: ContainerHookContext): Generator<HookWait, void, boolean> {
  // "error running hook #N": runc's words, which scripts and suites written for runc look for.
  const what = `container ${ctx.id}: error running hook #${index} (${kind} ${hook.path})`;
  const fail = (message: string, errno = 0, cause?: unknown): HookError =>
    new HookError(message, { id: ctx.id, op: "hook", path: hook.path, ...(errno ? { errno } : {}), ...(cause ? { cause } : {}) });
  let ops;
  try {
    ops = compileHookPlan({ spec: ctx.spec, hook, initPid: ctx.initPid, ...(ctx.rootfs !== undefined ? { rootfs: ctx.rootfs } : {}), apparmor: ctx.apparmor ?? false, denySetgroups: ctx.denySetgroups ?? false }).ops;
  } catch (e) {
    if (e instanceof PlanError) throw fail(`${what}: ${e.message}`, 0, e);
    throw e;
  }
  const deadline = hook.timeout ? Date.now() + hook.timeout * 1000 : Infinity;
  // A memfd: the state may exceed a pipe's buffer. Opened again for reading from its start
  // (the writes left the first file's offset at the end).
  const memfd = linux.sealedMemfd("hook-state", Buffer.from(state));
  let stdin: number;
  try {
    stdin = openSync(`/proc/self/fd/${memfd}`, "r");
  } finally {
    linux.close(memfd);
  }
  const [out, outW] = linux.pipe(linux.O_CLOEXEC);
  let pidfd = -1;
  let spawned;
  try {
    try {
      pidfd = linux.pidfdOpen(ctx.initPid);
    } catch (e) {
      throw fail(`${what}: cannot open the init ${ctx.initPid}: ${(e as Error).message} (it is gone?)`, 0, e);
    }
    spawned = linux.spawnExecutor(encodePlan(ops), { stdio: [stdin, outW, outW], preserveFds: [pidfd] });
  } finally {
    linux.close(stdin);
    linux.close(outW);
    if (pidfd >= 0) linux.close(pidfd);
  }
  const { pid: stage1, sync } = spawned;
  ownChild(stage1);
  trace(`${kind} hook: executor spawned`);
  let stage1Left = true;
  let pid = 0;
  try {
    let execd = false;
    for (;;) {
      if (!(yield { kind: "wait", fd: sync.fd, timeoutMs: STEP_TIMEOUT_MS })) throw fail(`${what}: no word from the hook's executor within ${STEP_TIMEOUT_MS} ms`, linux.ERRNO.ETIMEDOUT);
      const msg = sync.recv(0);
      if (msg.type === "sync") {
        ctx.joinCgroups?.(stage1);
        trace(`${kind} hook: in the cgroups`);
        sync.answer(true);
      } else if (msg.type === "pid") {
        pid = msg.pid;
        ownChild(pid);
        reapOwnChild(stage1);
        stage1Left = false;
      } else if (msg.type === "fd") linux.close(msg.fd); // a seccomp listener: the container's agent has the init's
      else if (msg.type === "exec") execd = true;
      else if (msg.type === "error") {
        const text = executorFailure(ctx.id, ops, msg, what);
        throw fail(text, msg.errno);
      } else if (msg.type === "eof") {
        if (!execd) throw fail(`${what}: the hook's executor exited during set-up`);
        break;
      }
    }
    // The hook runs: read its output until it closes it (or the timeout), then wait for it.
    trace(`${kind} hook: exec'd`);
    const output = yield* drain(out, deadline);
    const st = output.timedOut ? null : yield* exited(pid, deadline);
    if (st === null) throw fail(`${what}: killed after ${hook.timeout} s (its timeout)`, linux.ERRNO.ETIMEDOUT);
    releaseChild(pid);
    pid = 0;
    trace(`${kind} hook: exited`);
    const said = output.text.trimEnd();
    if (st.signaled) throw fail(`${what}: killed by ${signalText(st.signal)}${said ? `: ${said}` : ""}`);
    if (st.code !== 0) throw fail(`${what}: exit status ${st.code}${said ? `: ${said}` : ""}`);
  } finally {
    sync.close();
    linux.close(out);
    if (stage1Left) killOwnChild(stage1);
    if (pid) killOwnChild(pid);
  }
}

/** The hook's output up to OUTPUT_MAX bytes (the rest is read and dropped), until EOF or the deadline. */
function* drain(fd: number, deadline: number): Generator<HookWait, { text: string; timedOut: boolean }, boolean> {
  const buf = Buffer.alloc(OUTPUT_MAX);
  const sink = Buffer.alloc(16 * 1024);
  let len = 0;
  for (;;) {
    if (!(yield { kind: "wait", fd, timeoutMs: deadline - Date.now() })) return { text: buf.toString("utf8", 0, len), timedOut: true };
    const n = len < OUTPUT_MAX ? readSync(fd, buf, len, OUTPUT_MAX - len, null) : readSync(fd, sink, 0, sink.length, null);
    if (n <= 0) return { text: buf.toString("utf8", 0, len), timedOut: false };
    if (len < OUTPUT_MAX) len += n;
  }
}

/** The hook's exit status (reaped), or null when the deadline comes first. */
function* exited(pid: number, deadline: number): Generator<HookWait, linux.WaitStatus | null, boolean> {
  const done = linux.waitpid(pid, linux.WNOHANG);
  if (done.pid !== 0) return done;
  const pidfd = linux.pidfdOpen(pid);
  try {
    if (!(yield { kind: "wait", fd: pidfd, timeoutMs: deadline - Date.now() })) return null;
  } finally {
    linux.close(pidfd);
  }
  return linux.waitpid(pid, linux.WNOHANG);
}
