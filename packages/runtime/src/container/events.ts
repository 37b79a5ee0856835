// `events`: runc's JSON lines about a container — its resource usage ("stats"), once with
// --stats or every interval otherwise, and "oom" when the kernel's OOM killer acts in it. The
// stream ends when the container stops (runc 1.1.5 instead goes on printing the stats of a
// stopped container until its cgroup is deleted).
import { containerStats, encodeJSON, type Json } from "../cgroups/stats.ts";
import { watchOom, type OomWatch } from "../cgroups/oom.ts";
import { UNIFIED } from "../cgroups/paths.ts";
import * as linux from "../linux/index.ts";
import { ContainerError } from "./errors.ts";
import { containerCgroup, status } from "./lifecycle.ts";
import type { Store } from "./store.ts";

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("5s", "100ms", "1m30s", "1.5h") in milliseconds. */
export function parseDuration(text: string): number {
  if (text === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    at = re.lastIndex;
  }
  if (at !== text.length || text === "") throw new ContainerError(`invalid value ${JSON.stringify(text)} for flag -interval: parse error (a duration such as 5s, 500ms or 1m)`);
  return total;
}

function statsEvent(id: string, data: Json): string {
  return `${encodeJSON({ type: "stats", id, data })}\n`;
}

export function containerEvents(store: Store, id: string, options: { stats: boolean; intervalMs: number }, out: (line: string) => void): void {
  if (options.intervalMs <= 0) throw new ContainerError("duration interval must be greater than 0");
  const rec = store.read(id);
  if (status(store, rec) === "stopped") throw new ContainerError(`container with id ${id} is not running`);
  const cg = containerCgroup(rec);
  const stats = () => containerStats(cg.paths(), cg.mode);
  if (options.stats) {
    out(statsEvent(id, stats()));
    return;
  }
  const paths = cg.paths();
  const memDir = cg.mode === "v2" ? paths[UNIFIED] : paths.memory;
  let oom: OomWatch | undefined;
  try {
    oom = memDir === undefined ? undefined : watchOom(memDir, cg.mode === "v2");
  } catch {
    // Without OOM notification the stats still stream.
  }
  try {
    let next = Date.now() + options.intervalMs;
    for (;;) {
      // Wake at least every 100 ms to see the container stop (and, on v2, an OOM kill).
      const wait = Math.max(0, Math.min(next - Date.now(), 100));
      if (oom?.fd !== undefined) linux.pollIn(oom.fd, wait);
      else Bun.sleepSync(wait);
      const ooms = oom?.take() ?? 0;
      for (let i = 0; i < ooms; i++) out(`${encodeJSON({ type: "oom", id })}\n`);
      if (status(store, rec) === "stopped") return;
      if (Date.now() >= next) {
        out(statsEvent(id, stats()));
        next += options.intervalMs;
        if (next < Date.now()) next = Date.now() + options.intervalMs;
      }
    }
  } finally {
    oom?.close();
  }
}
