// Waiting on the host from a test: for a condition to hold; whether a process still runs. Shared by
// the shim's end-to-end tests and the conformance tests (they wait on the same things: a daemon
// or a container's init to die, a state to be listed, a mount or a process to go).
import { readFileSync } from "node:fs";

/** Polls `cond` every 50 ms until it holds; throws "timed out waiting for <what>" after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** A process that runs (a zombie is dead, waiting for its parent; a missing one is gone). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}
