// Shared by the benchmark scripts: run commands alternately, report medians and ratios.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultSpec } from "../../packages/ocispec/src/defaults.ts";
export interface Variant {
  name: string;
  /** Called before each run; returns the argv to run (so each run can get a fresh directory). */
  argv: (i: number) => string[];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function which(cmd: string): string | undefined {
  const r = Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]);
  const p = r.stdout.toString().trim();
  return r.success && p ? p : undefined;
}

export interface MeasureOptions {
  /** Rounds run first and not counted. */
  warmup?: number;
  /**
   * Idle time before each run. A run that moves a process between cgroups pays for the kernel's
   * global migration lock (cgroup_threadgroup_rwsem): taken after a quiet spell (50 ms or more
   * here) it first waits for an RCU grace period, about 10 ms; taken within about 20 ms of the
   * previous holder's release it is quick. Back to back, a variant's time thus depended on when
   * the variant run just before it had moved a process, not only on its own work: with a fixed
   * (or merely rotated) order, the one run after crun (which moves early and ends fast) met the
   * lock cold most often, the likely cause of the 1.3-1.4x "slot bias" seen in exec.ts. After a
   * pause longer than that window every run meets the same quiet state, the state a lone `exec`
   * or `run` meets. 0: none.
   */
  settleMs?: number;
}

/**
 * Runs every variant `rounds` times, interleaved so that machine noise hits all alike, in a new
 * random order each round (so that no variant always follows the same one).
 */
export function measure(variants: Variant[], rounds: number, opts: MeasureOptions | number = {}): Map<string, number[]> {
  const o = typeof opts === "number" ? { warmup: opts } : opts;
  const warmup = o.warmup ?? 3;
  // TSRUN_BENCH_SETTLE_MS overrides the script's pause (0 shows the effect it removes).
  const settleMs = process.env.TSRUN_BENCH_SETTLE_MS !== undefined ? Number(process.env.TSRUN_BENCH_SETTLE_MS) : (o.settleMs ?? 0);
  const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let r = -warmup; r < rounds; r++) {
    const order = [...variants];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const v of order) {
      const argv = v.argv(r + warmup);
      if (settleMs > 0) Bun.sleepSync(settleMs);
      const t0 = performance.now();
      const res = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
      const dt = performance.now() - t0;
      if (!res.success) throw new Error(`${v.name}: ${argv.join(" ")} failed: ${res.stderr.toString().trim()}`);
      if (r >= 0) times.get(v.name)!.push(dt);
    }
  }
  return times;
}

export function report(title: string, times: Map<string, number[]>, baseline: string): void {
  const base = median(times.get(baseline)!);
  console.log(`\n${title}`);
  console.log(`${"variant".padEnd(28)} ${"median ms".padStart(10)} ${"p90 ms".padStart(8)} ${"× " + baseline}`);
  for (const [name, xs] of times) {
    const s = [...xs].sort((a, b) => a - b);
    const p90 = s[Math.floor(s.length * 0.9)]!;
    console.log(`${name.padEnd(28)} ${median(xs).toFixed(2).padStart(10)} ${p90.toFixed(2).padStart(8)} ${(median(xs) / base).toFixed(2)}`);
  }
}

/**
 * Re-runs the calling script in a private mount namespace without the cgroup2 `unified` mount
 * (crun refuses hybrid hosts; every runtime then sees the same pure v1 host) and exits with its
 * status; returns in that inner run. `script` is import.meta.path of the caller.
 */
export function inPureV1Namespace(script: string, tsrun: string, args: string[]): void {
  if (process.env.TSRUN_BENCH_INNER) return;
  if (!Bun.file(tsrun).size) {
    console.error(`${script}: ${tsrun} is missing; run \`bun run build\` first`);
    process.exit(1);
  }
  const inner = `umount /sys/fs/cgroup/unified 2>/dev/null; exec ${process.execPath} ${script} ${args.join(" ")}`;
  const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", inner], { env: { ...process.env, TSRUN_BENCH_INNER: "1" }, stdout: "inherit", stderr: "inherit" });
  process.exit(r.exitCode ?? 1);
}

/** A runtime under measurement: its name, binary, and a busybox bundle and state root of its own. */
export interface BenchRuntime {
  name: string;
  bin: string;
  bundle: string;
  state: string;
}

/**
 * tsrun (and TSRUN_BENCH_BASE, an older build, as "tsrun-base"), then runc and crun where
 * installed, each with a busybox bundle in `work` whose process runs `args`; `patch` edits the
 * config further.
 */
export function benchRuntimes(work: string, tsrun: string, args: string[], patch?: (spec: any) => void): BenchRuntime[] {
  const root = join(import.meta.dir, "../..");
  const rootfs = join(work, "rootfs");
  if (!Bun.spawnSync(["bash", join(root, "scripts/make-rootfs.sh"), rootfs]).success) throw new Error("make-rootfs failed");
  const bins: [string, string][] = [["tsrun", tsrun]];
  if (process.env.TSRUN_BENCH_BASE) bins.push(["tsrun-base", process.env.TSRUN_BENCH_BASE]);
  for (const peer of ["runc", "crun"]) {
    const p = which(peer);
    if (p) bins.push([peer, p]);
  }
  return bins.map(([name, bin]) => {
    const bundle = join(work, `bundle-${name}`);
    mkdirSync(bundle);
    cpSync(rootfs, join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true });
    const spec = defaultSpec() as any;
    spec.ociVersion = "1.0.2"; // every peer reads it
    spec.process.terminal = false;
    spec.process.args = args;
    patch?.(spec);
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    return { name, bin, bundle, state: join(work, `state-${name}`) };
  });
}
