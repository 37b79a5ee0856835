// `exec` of /bin/true into a running container: tsrun vs runc vs crun, each into its own
// container (same bundle contents, a `sleep` init), alternating in a random order each round
// with a pause before each run (see lib.ts measure), medians and ratios. Like
// lifecycle.ts, in a private mount namespace without the cgroup2 `unified` mount, where crun
// runs. Usage: bun scripts/bench/exec.ts [rounds]   (needs `bun run build`)
// TSRUN_BENCH_BASE=/path/to/an/older/tsrun adds that build as "tsrun-base".
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

const work = mkdtempSync(join(tmpdir(), "tsrun-bench-exec-"));
const containers: [string, string, string][] = [];
try {
  const runtimes = benchRuntimes(work, tsrun, ["sleep", "3600"]);
  const variants: Variant[] = runtimes.map(({ name, bin, bundle, state }) => {
    const id = `bench-exec-${name}`;
    // No pipe: the detached container would inherit it and spawnSync wait for its EOF for ever.
    const r = Bun.spawnSync([bin, "--root", state, "run", "-d", "--bundle", bundle, id], { stdout: "ignore", stderr: "ignore" });
    if (!r.success) throw new Error(`${name}: run -d failed (exit ${r.exitCode})`);
    containers.push([bin, state, id]);
    return { name: `${name} exec /bin/true`, argv: () => [bin, "--root", state, "exec", id, "/bin/true"] };
  });
  const times = measure(variants, rounds, { warmup: 3, settleMs: SETTLE_MS });
  report(`exec of /bin/true into a running container, ${rounds} alternating rounds (private mount ns, cgroup v1)`, times, "tsrun exec /bin/true");
  const t = median(times.get("tsrun exec /bin/true")!);
  for (const { name } of runtimes.slice(1)) {
    const p = median(times.get(`${name} exec /bin/true`)!);
    console.log(`tsrun / ${name}: ${(t / p).toFixed(2)} (${t < p ? "tsrun faster" : "tsrun slower"})`);
  }
} finally {
  for (const [bin, state, id] of containers) Bun.spawnSync([bin, "--root", state, "delete", "--force", id]);
  rmSync(work, { recursive: true, force: true });
}
