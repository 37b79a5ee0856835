// Freezing: the v1 freezer controller (freezer.state) or cgroup2's cgroup.freeze. Both are
// asynchronous in the kernel: the write starts freezing, and the cgroup is frozen only once every
// task has stopped, which we wait for, bounded.

import { CgroupError } from "./errors.ts";
import { readText, sleepMs, writeText } from "./fs.ts";

/** How long freeze() waits for the last task to stop before thawing back and failing. */
export const FREEZE_TIMEOUT_MS = 5000;

export function freezeV1(dir: string, timeoutMs = FREEZE_TIMEOUT_MS): void {
  const file = `${dir}/freezer.state`;
  const deadline = performance.now() + timeoutMs;
  let delay = 0.1;
  try {
    for (let attempt = 1; ; attempt++) {
      // Writing FROZEN again on each round makes the kernel walk the cgroup's tasks again, which
      // catches tasks forked or moved in since the previous walk.
      writeText(file, "FROZEN");
      const state = readText(file).trim();
      if (state === "FROZEN") return;
      if (state !== "FREEZING") throw new CgroupError("freeze", file, "EINVAL", `unexpected freezer state ${JSON.stringify(state)}`);
      if (performance.now() > deadline) throw new CgroupError("freeze", file, "ETIMEDOUT", `still FREEZING after ${timeoutMs} ms (a task in uninterruptible sleep, or tasks joining without end)`);
      // v1 can stay stuck in FREEZING while tasks keep appearing (runc saw it on 5.x kernels; only
      // cgroup2 fixed it). Thawing now and then and starting over gets it unstuck.
      if (attempt % 50 === 0) {
        writeText(file, "THAWED");
        sleepMs(10);
      } else {
        sleepMs(delay);
        delay = Math.min(delay * 2, 10);
      }
    }
  } catch (err) {
    // Never leave a cgroup half-frozen behind a failure.
    try {
      writeText(file, "THAWED");
    } catch {
      // The first error is the one worth reporting.
    }
    throw err;
  }
}

export function thawV1(dir: string): void {
  writeText(`${dir}/freezer.state`, "THAWED");
}

export function freezeV2(dir: string, timeoutMs = FREEZE_TIMEOUT_MS): void {
  writeText(`${dir}/cgroup.freeze`, "1");
  const events = `${dir}/cgroup.events`;
  const deadline = performance.now() + timeoutMs;
  let delay = 0.1;
  try {
    for (;;) {
      if (/^frozen 1$/m.test(readText(events))) return;
      if (performance.now() > deadline) throw new CgroupError("freeze", events, "ETIMEDOUT", `no "frozen 1" after ${timeoutMs} ms`);
      sleepMs(delay);
      delay = Math.min(delay * 2, 10);
    }
  } catch (err) {
    try {
      writeText(`${dir}/cgroup.freeze`, "0");
    } catch {
      // The first error is the one worth reporting.
    }
    throw err;
  }
}

export function thawV2(dir: string): void {
  writeText(`${dir}/cgroup.freeze`, "0");
}
