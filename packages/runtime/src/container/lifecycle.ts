// start, kill, delete, pause, resume, state and list: each takes the container's lock when it changes it and
// reads the status from the live process.
import { closeSync, constants, openSync, readSync, unlinkSync } from "node:fs";
import { parseSignal } from "@tsrun/ocispec/core";
import { cgroupManagerFromJSON } from "../cgroups/manager.ts";
import { runHooksWarning, runHooksWarningAsync } from "../hooks/run.ts";
import { runContainerHooks, runContainerHooksAsync, type ContainerHookContext } from "../hooks/container.ts";
import { readable } from "./children.ts";
import * as linux from "../linux/index.ts";
import { destroyContainer, isLocked, lockContainer, waitGone } from "./cleanup.ts";
import { ContainerError, errnoText } from "./errors.ts";
import { apparmorEnabled } from "./host.ts";
import { setgroupsDenied } from "./rootless.ts";
import { isAlive } from "./proc.ts";
import { stateDocument, statusOf, type Status } from "./status.ts";
import { CorruptState, NotFound, type ContainerRecord, type Store } from "./store.ts";

export function status(store: Store, rec: ContainerRecord): Status {
  return statusOf(store, rec, () => isLocked(store, rec.id));
}

export function containerState(store: Store, id: string): ReturnType<typeof stateDocument> {
  const rec = store.read(id);
  return stateDocument(rec, status(store, rec));
}

export function listContainers(store: Store): ReturnType<typeof stateDocument>[] {
  const out: ReturnType<typeof stateDocument>[] = [];
  for (const id of store.ids()) {
    try {
      const rec = store.read(id);
      out.push(stateDocument(rec, status(store, rec)));
    } catch (e) {
      if (!(e instanceof NotFound) && !(e instanceof CorruptState)) throw e;
    }
  }
  return out;
}

/**
 * Lets the init run the user's program: reads the exec fifo the init is blocked on. `created`
 * is the record `run` has just made in this process: no need to read it back and look it up.
 * Nothing is written: "running" is the fifo's absence (status.ts).
 */
export function startContainer(store: Store, id: string, created?: ContainerRecord): void {
  const lock = lockContainer(store, id);
  try {
    const rec = startable(store, id, created);
    runStartHooks(rec);
    const fifo = store.fifoPath(id);
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const reader = execFifoReader(fd, rec);
      for (;;) {
        linux.pollIn(fd, 10);
        if (reader()) break;
      }
    } finally {
      closeSync(fd);
    }
    unlinkSync(fifo);
    // runtime.md: a failing poststart hook is a warning; the container keeps running.
    for (const w of runHooksWarning("poststart", rec.config.hooks?.poststart, JSON.stringify(stateDocument(rec, "running"))))
      process.stderr.write(`tsrun: warning: ${w}\n`);
  } finally {
    closeSync(lock);
  }
}

/**
 * startContainer without blocking the event loop (the hooks may take long): for a process
 * serving others meanwhile, the shim. Returns the poststart hooks' warnings.
 */
export async function startContainerAsync(store: Store, id: string): Promise<string[]> {
  const lock = lockContainer(store, id);
  try {
    const rec = startable(store, id);
    const hooks = rec.config.hooks?.startContainer;
    if (hooks?.length)
      try {
        await runContainerHooksAsync("startContainer", hooks, JSON.stringify(stateDocument(rec, "created")), startHookContext(rec));
      } catch (e) {
        // the caller reaps the init (the shim is its parent): killed only
        linux.killVerified(rec.pid, rec.pidStartTime, 9);
        throw e;
      }
    const fifo = store.fifoPath(id);
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const reader = execFifoReader(fd, rec);
      for (;;) {
        await readable(fd, 10);
        if (reader()) break;
      }
    } finally {
      closeSync(fd);
    }
    unlinkSync(fifo);
    return await runHooksWarningAsync("poststart", rec.config.hooks?.poststart, JSON.stringify(stateDocument(rec, "running")));
  } finally {
    closeSync(lock);
  }
}

function startable(store: Store, id: string, created?: ContainerRecord): ContainerRecord {
  const rec = created ?? store.read(id);
  const st = created ? "created" : status(store, rec);
  if (st === "stopped") throw new ContainerError("cannot start a container that has stopped", { id });
  if (st === "running") throw new ContainerError("cannot start an already running container", { id });
  if (st !== "created") throw new ContainerError(`cannot start a container in the ${st} state`, { id });
  return rec;
}

/**
 * The startContainer hooks, in the container as its process will run, while the init waits for
 * the fifo to be opened: the program must not run before they have. One that fails stops the
 * container (runc's init exits then too) and fails `start`.
 */
function runStartHooks(rec: ContainerRecord): void {
  const hooks = rec.config.hooks?.startContainer;
  if (!hooks?.length) return;
  try {
    runContainerHooks("startContainer", hooks, JSON.stringify(stateDocument(rec, "created")), startHookContext(rec));
  } catch (e) {
    linux.killVerified(rec.pid, rec.pidStartTime, 9);
    waitGone(rec.pid, rec.pidStartTime);
    throw e;
  }
}

function startHookContext(rec: ContainerRecord): ContainerHookContext {
  const cg = rec.cgroup === undefined ? undefined : cgroupManagerFromJSON(rec.cgroup);
  return {
    spec: rec.config,
    id: rec.id,
    initPid: rec.pid,
    joinCgroups: (p) => cg?.exists() && cg.addProcess(p),
    apparmor: rec.config.process?.apparmorProfile ? apparmorEnabled() : false,
    denySetgroups: setgroupsDenied(rec.pid),
  };
}

/**
 * Reads the exec fifo until EOF. The init writes "0" once `start` has opened it; the write end
 * is close-on-exec, so EOF means the program has been exec'd — or the init has exited: when the
 * exec failed, the executor wrote its error message (wire.h MSG_ERROR) to the fifo, `tsrun
 * create` being gone, and that is what `start` reports. The returned function reads what is
 * there once the fd is readable (or a poll timed out): true at the end.
 */
function execFifoReader(fd: number, rec: ContainerRecord): () => boolean {
  const buf = Buffer.alloc(4096);
  const chunks: Buffer[] = [];
  return () => {
    let n = -1;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    }
    if (n > 0) {
      chunks.push(Buffer.from(buf.subarray(0, n)));
      return false;
    }
    // EOF before anything was written: the init has not opened its end yet (or died first).
    const data = Buffer.concat(chunks);
    const failure = initFailure(data);
    if (failure !== undefined) throw new ContainerError(`container ${rec.id}: ${failure.text}`, { id: rec.id, errno: failure.errno });
    if (n === 0 && data.length > 0) return true;
    if (!isAlive(rec.pid, rec.pidStartTime))
      throw new ContainerError(`container ${rec.id}: the init exited before its program started (its exec failed)`, { id: rec.id });
    return false;
  };
}

/** The init's error in what it wrote to the exec fifo ("0" first), if any. */
function initFailure(data: Buffer): { text: string; errno: number } | undefined {
  const at = data[0] === 0x30 ? 1 : 0;
  if (data.length < at + 12 || data.readUInt32LE(at) !== linux.MSG.ERROR) return undefined;
  const errno = data.readInt32LE(at + 8);
  const end = data.indexOf(0, at + 12);
  const text = data.toString("utf8", at + 12, end < 0 ? data.length : end).trimEnd();
  const why = errnoText(errno, linux.strerror);
  return { text: `${text}${why ? `: ${why}` : ""}`, errno };
}

export function killContainer(store: Store, id: string, signal: string, all: boolean): void {
  const sig = parseSignal(signal);
  if (sig === undefined) throw new ContainerError(`unknown signal ${JSON.stringify(signal)}`, { id });
  const rec = store.read(id);
  const st = status(store, rec);
  // runc: --all signals whatever is left in the cgroup, which may be nothing, without an error.
  if (all && st === "stopped") {
    if (rec.cgroup !== undefined) {
      const cg = cgroupManagerFromJSON(rec.cgroup);
      if (cg.exists()) cg.killAll(sig);
    }
    return;
  }
  if (st === "stopped" || st === "creating") throw new ContainerError("container not running", { id });
  if (all && rec.cgroup !== undefined) {
    cgroupManagerFromJSON(rec.cgroup).killAll(sig);
    return;
  }
  if (!linux.killVerified(rec.pid, rec.pidStartTime, sig)) throw new ContainerError("container not running", { id });
  // As runc: a catchable signal to a paused container waits for resume, but SIGKILL thaws the
  // cgroup, since a frozen (v1) task cannot die until thawed.
  if (st === "paused" && sig === 9 && rec.cgroup !== undefined) cgroupManagerFromJSON(rec.cgroup).thaw();
}

/**
 * Freezes every process of the container (runc's `pause`). As runc, a created container can be
 * paused too (its init waits on the exec fifo either way); a stopped or paused one cannot.
 */
export function pauseContainer(store: Store, id: string): void {
  withLockedRecord(store, id, (rec) => {
    const st = status(store, rec);
    if (st === "paused") throw new ContainerError(`container ${id} is already paused`, { id });
    if (st !== "running" && st !== "created") throw new ContainerError("container not running", { id });
    containerCgroup(rec).freeze();
  });
}

/** Thaws a paused container (runc's `resume`); it is running again, or created if it was. */
export function resumeContainer(store: Store, id: string): void {
  withLockedRecord(store, id, (rec) => {
    if (status(store, rec) !== "paused") throw new ContainerError("container not paused", { id });
    containerCgroup(rec).thaw();
  });
}

/**
 * Runs `fn` on the container's record under its lock. The record is read once before locking
 * so that an unknown id says "does not exist", and again under the lock, which is the one used.
 */
export function withLockedRecord<T>(store: Store, id: string, fn: (rec: ContainerRecord) => T): T {
  store.read(id);
  const lock = lockContainer(store, id);
  try {
    return fn(store.read(id));
  } finally {
    closeSync(lock);
  }
}

/** The manager of a container's cgroups; a container made without one cannot be frozen or updated. */
export function containerCgroup(rec: ContainerRecord): ReturnType<typeof cgroupManagerFromJSON> {
  if (rec.cgroup === undefined) throw new ContainerError(`container ${rec.id} has no cgroup`, { id: rec.id });
  return cgroupManagerFromJSON(rec.cgroup);
}

/** `known`: the record `run` made in this process (not read back from disk). */
export function deleteContainer(store: Store, id: string, force: boolean, known?: ContainerRecord): void {
  const rec = removeContainer(store, id, force, known);
  if (rec) for (const w of runHooksWarning("poststop", rec.config.hooks?.poststop, JSON.stringify(stateDocument(rec, "stopped")))) process.stderr.write(`tsrun: warning: ${w}\n`);
}

/**
 * deleteContainer without blocking the event loop on the poststop hooks; returns their warnings.
 * A caller that reaps the init itself (the shim) deletes it once stopped: the wait for a killed
 * init here would reap it (waitGone), taking its exit status from the caller.
 */
export async function deleteContainerAsync(store: Store, id: string, force: boolean): Promise<string[]> {
  const rec = removeContainer(store, id, force);
  return rec ? await runHooksWarningAsync("poststop", rec.config.hooks?.poststop, JSON.stringify(stateDocument(rec, "stopped"))) : [];
}

/** Kills (with force) and removes the container; returns its record when poststop hooks are due. */
function removeContainer(store: Store, id: string, force: boolean, known?: ContainerRecord): ContainerRecord | undefined {
  let rec: ContainerRecord | undefined = known;
  if (!rec) {
    if (!store.exists(id)) {
      if (force) return undefined;
      throw new NotFound(id);
    }
    try {
      rec = store.read(id);
    } catch (e) {
      if (!(e instanceof CorruptState) || !force) throw e;
    }
  }
  const lock = lockContainer(store, id);
  try {
    if (rec) {
      const st = status(store, rec);
      // runtime.md wants an error for any container that is not stopped; runc (1.1.5, as every
      // version since 1.0) kills and deletes a created one without --force, and containerd's runc
      // shim relies on it: its createdState.Delete runs `runc delete ID` with no --force (a task
      // created and never started, e.g. a failed CRI start). So a created container is deleted,
      // as by runc; a running or paused one needs --force.
      if (st !== "stopped" && st !== "created" && !force)
        throw new ContainerError(`cannot delete container ${id} that is not stopped: ${st} (use \`delete --force\` to kill and delete it)`, { id });
      if (st !== "stopped") {
        linux.killVerified(rec.pid, rec.pidStartTime, 9);
        // A frozen init cannot die: thaw it (the cgroup stays, and destroyContainer empties it).
        if (st === "paused" && rec.cgroup !== undefined) cgroupManagerFromJSON(rec.cgroup).thaw();
        waitGone(rec.pid, rec.pidStartTime);
      }
    }
    destroyContainer(store, id, rec);
    return rec?.phase === "created" ? rec : undefined;
  } finally {
    closeSync(lock);
  }
}
