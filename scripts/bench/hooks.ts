// `run` of /bin/true with a createContainer and a startContainer hook (each a shell reading the
// state: crun fails a hook that leaves it unread with EPIPE now and then), the
// hooks that run in the container's namespaces: tsrun vs runc vs crun, alternating, medians and
// ratios, as lifecycle.ts (same private mount namespace, pure cgroup v1).
// Usage: bun scripts/bench/hooks.ts [rounds]   (needs `bun run build`)
// TSRUN_BENCH_BASE=/path/to/an/older/tsrun adds that build as "tsrun-base", to measure a change.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchRuntimes, inPureV1Namespace, measure, median, report, type Variant } from "./lib.ts";

const root = join(import.meta.dir, "../..");
const tsrun = join(root, "dist/tsrun");
const rounds = Number(process.argv[2] ?? 50);

inPureV1Namespace(import.meta.path, tsrun, [String(rounds)]);

const work = mkdtempSync(join(tmpdir(), "tsrun-bench-hooks-"));
try {
  // /bin/sh is both the host's (createContainer runs before pivot_root) and busybox's
  const hook = { path: "/bin/sh", args: ["sh", "-c", "cat >/dev/null"] };
  const hooks = (s: any) => (s.hooks = { createContainer: [hook], startContainer: [hook] });
  const runtimes = benchRuntimes(work, tsrun, ["/bin/true"], hooks);
  const variants: Variant[] = runtimes.map(({ name, bin, bundle, state }) => {
    return { name: `${name} run with hooks`, argv: (i: number) => [bin, "--root", state, "run", "--bundle", bundle, `bench-${name}-${i}`] };
  });
  const times = measure(variants, rounds, 3);
  report(`run + delete of /bin/true with a createContainer and a startContainer hook, ${rounds} alternating rounds (private mount ns, cgroup v1)`, times, "tsrun run with hooks");
  const t = median(times.get("tsrun run with hooks")!);
  for (const { name } of runtimes.slice(1)) {
    const p = median(times.get(`${name} run with hooks`)!);
    console.log(`tsrun / ${name}: ${(t / p).toFixed(2)} (${t < p ? "tsrun faster" : "tsrun slower"})`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
