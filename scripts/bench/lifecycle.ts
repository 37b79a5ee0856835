// `run` (create + start + wait + delete) of /bin/true on a busybox bundle: tsrun vs runc vs crun,
// alternating in a random order each round with a pause before each run (see lib.ts measure),
// medians and ratios. crun refuses hybrid cgroup hosts, so the whole benchmark runs
// in a private mount namespace without the cgroup2 `unified` mount: every runtime sees the same
// (pure v1) host. Usage: bun scripts/bench/lifecycle.ts [rounds]   (needs `bun run build`)
// TSRUN_BENCH_BASE=/path/to/an/older/tsrun adds that build as "tsrun-base", to measure a change.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchRuntimes, inPureV1Namespace, measure, median, report, type Variant } from "./lib.ts";

const root = join(import.meta.dir, "../..");
const tsrun = join(root, "dist/tsrun");
const rounds = Number(process.argv[2] ?? 50);
/** Idle time before each run: every run starts with the cgroup migration lock cold (lib.ts measure). */
const SETTLE_MS = 100;

inPureV1Namespace(import.meta.path, tsrun, [String(rounds)]);

const work = mkdtempSync(join(tmpdir(), "tsrun-bench-life-"));
try {
  const runtimes = benchRuntimes(work, tsrun, ["/bin/true"]);
  const variants: Variant[] = runtimes.map(({ name, bin, bundle, state }) => {
    return { name: `${name} run /bin/true`, argv: (i: number) => [bin, "--root", state, "run", "--bundle", bundle, `bench-${name}-${i}`] };
  });
  const times = measure(variants, rounds, { warmup: 3, settleMs: SETTLE_MS });
  report(`run + delete of /bin/true, ${rounds} alternating rounds (private mount ns, cgroup v1)`, times, "tsrun run /bin/true");
  const t = median(times.get("tsrun run /bin/true")!);
  for (const { name } of runtimes.slice(1)) {
    const p = median(times.get(`${name} run /bin/true`)!);
    console.log(`tsrun / ${name}: ${(t / p).toFixed(2)} (${t < p ? "tsrun faster" : "tsrun slower"})`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
