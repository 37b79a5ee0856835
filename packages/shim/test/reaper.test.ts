// The shim's Reaper collects orphaned zombies, but never a child that the runtime library (in
// the same process) waits for itself: it asks the library (ownsChild) first. A zombie is made
// here with the executor's warm-up (a child nobody waits for, which writes "0" to a file).
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnWarmup, waitpid, WNOHANG } from "@tsrun/runtime/linux";
import { Reaper } from "../src/task/reaper.ts";

/** A child of this process that has exited and not been reaped. */
async function zombie(dir: string): Promise<number> {
  const file = join(dir, `procs-${Math.random()}`);
  writeFileSync(file, "");
  const pid = spawnWarmup(file);
  const end = Date.now() + 10_000;
  for (;;) {
    let state = "";
    try {
      const stat = await Bun.file(`/proc/${pid}/stat`).text();
      state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    } catch {}
    if (state === "Z") return pid;
    if (Date.now() > end) throw new Error(`child ${pid} did not exit (state ${state})`);
    await Bun.sleep(5);
  }
}

test("a sweep leaves a child the library owns to the library, and collects an orphan nobody owns (once)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsrun-reaper-"));
  try {
    const owned = await zombie(dir);
    const reaper = new Reaper((pid) => pid === owned);
    reaper.sweep();
    // Still there for its owner's waitpid.
    expect(waitpid(owned, WNOHANG).pid).toBe(owned);

    const orphan = await zombie(dir);
    reaper.sweep();
    // Collected by the sweep: gone for anyone else, kept for a later watch, given out once.
    expect(waitpid(orphan, WNOHANG).pid).toBe(-1);
    expect((await reaper.watch(orphan)).status).toBe(0);
    const again = await Promise.race([reaper.watch(orphan).then(() => "reported twice"), Bun.sleep(200).then(() => "once")]);
    expect(again).toBe("once");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
