// The library's own children, while it waits for them itself: the executor's stage 1 (create,
// exec) and hooks run without blocking. A caller that reaps orphans in the same process (the
// shim is a subreaper) must leave these alone, or the library's waitpid finds nothing and a
// hook's exit is lost: it asks ownsChild(pid) before collecting a zombie it does not know.
import { kill, pollIn, type Message, SyncChannel, SyncTimeout, waitpid } from "../linux/index.ts";

const owned = new Set<number>();

export function ownChild(pid: number): void {
  if (pid > 0) owned.add(pid);
}

export function releaseChild(pid: number): void {
  owned.delete(pid);
}

/** Reaps one of the library's children that has exited or is about to (stage 1 after its fork), and forgets it. */
export function reapOwnChild(pid: number): void {
  waitpid(pid, 0);
  releaseChild(pid);
}

/** SIGKILL, reap and forget one of the library's children (a set-up that failed halfway). */
export function killOwnChild(pid: number): void {
  kill(pid, 9);
  reapOwnChild(pid);
}

/** True while the library will wait for this child itself. */
export function ownsChild(pid: number): boolean {
  return owned.has(pid);
}

/**
 * How long one poll may hold the thread in the async waits below. A message is seen at once
 * (the poll returns when the fd is readable); between polls the event loop runs, so one waiting
 * create delays another caller's work by at most this much.
 */
const POLL_SLICE_MS = 1;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Resolves when fd is readable (or hung up); false after timeoutMs. Yields to the event loop between short polls. */
export async function readable(fd: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (pollIn(fd, Math.max(0, Math.min(POLL_SLICE_MS, left)))) return true;
    if (left <= 0) return false;
    await turn();
  }
}

/** SyncChannel.recv without blocking the event loop for more than a slice at a time. */
export async function recvAsync(sync: SyncChannel, timeoutMs: number): Promise<Message> {
  if (!(await readable(sync.fd, timeoutMs))) throw new SyncTimeout(timeoutMs);
  return sync.recv(0);
}
