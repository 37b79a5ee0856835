// The containerd shim: containerd-shim-tsrun-v2 against containerd's own containerd-shim-runc-v2
// (driving runc), both behind one private containerd 1.6 (own socket, root, state, fifo dir),
// in the same run:
// - latency of `ctr run --rm IMAGE ID true` (fifo IO), alternating, medians and ratios;
// - resident memory of the shim processes with 1, 10 and 50 running `sleep` containers, total
//   and per container (RSS from /proc/PID/status, and PSS, which shares the pages of a binary
//   mapped by many shims fairly among them, from /proc/PID/smaps_rollup).
// Goals (issue 10): latency ≤ 0.8× the runc shim's; ≤ 5 MB RSS per container at 10.
// The run happens in a private mount namespace (as the other benchmarks; the mounts of the
// snapshots go with it) and removes everything it made: containerd, shims, containers, cgroups,
// runtime state and files. Needs root, containerd, ctr, runc, containerd-shim-runc-v2, umoci and
// jq, and `bun run build`.
// Usage: bun scripts/bench/shim.ts [rounds] [counts]   (defaults: 20 and 1,10,50)
// TSRUN_BENCH_BASE=DIR adds an older build as "base shim": DIR holds its tsrun and its
// containerd-shim-tsrun-v2 as dist/ does (the shim finds tsrun beside itself), run by absolute path.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { inPureV1Namespace, measure, median, report, which, type Variant } from "./lib.ts";
import { PrivateContainerd } from "../../packages/shim/test/private-containerd.ts";

const root = join(import.meta.dir, "../..");
const tsrun = join(root, "dist/tsrun");
const shim = join(root, "dist/containerd-shim-tsrun-v2");
const rounds = Number(process.argv[2] ?? 20);
const counts = (process.argv[3] ?? "1,10,50").split(",").map(Number);

inPureV1Namespace(import.meta.path, tsrun, process.argv.slice(2));

for (const cmd of ["containerd", "ctr", "runc", "containerd-shim-runc-v2", "umoci", "jq"]) {
  if (!which(cmd)) {
    console.error(`shim bench: ${cmd} is missing (scripts/setup.sh installs it)`);
    process.exit(1);
  }
}
if (!existsSync(shim)) {
  console.error(`shim bench: ${shim} is missing; run \`bun run build\` first`);
  process.exit(1);
}

// Per run: the runtime state root and the cgroup parents are host-wide.
const NS = `tsrun-bench-${process.pid}`;
const IMAGE = "localhost/tsrun-bench:latest";
const SHIMS = [
  { name: "tsrun shim", runtime: "io.containerd.tsrun.v2", extra: [] as string[] },
  // runc's state under our own dir (ctr passes it to the runc shim as its Root option).
  { name: "runc shim", runtime: "io.containerd.runc.v2", extra: [] as string[] },
];
const base = process.env.TSRUN_BENCH_BASE;
if (base) {
  if (!existsSync(join(base, "containerd-shim-tsrun-v2")) || !existsSync(join(base, "tsrun"))) {
    console.error(`shim bench: TSRUN_BENCH_BASE=${base} needs tsrun and containerd-shim-tsrun-v2 in it`);
    process.exit(1);
  }
  SHIMS.push({ name: "base shim", runtime: join(base, "containerd-shim-tsrun-v2"), extra: [] });
}

const ctd = new PrivateContainerd(NS, "/tmp/tsrun-bsh-", { shim, tsrun });
const { sock, fifos } = ctd;
SHIMS[1]!.extra = ["--runc-root", join(ctd.dir, "runc")];
const ctr = (args: string[], timeoutMs?: number) => ctd.ctr(args, timeoutMs);

function mustCtr(args: string[]): string {
  const r = ctr(args);
  if (r.code !== 0) throw new Error(`ctr ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Processes other than containerd whose argv names our socket: the shim daemons (-address) and short shim commands. */
const shimPids = () => ctd.processesUsing();

/** kB of a /proc/PID file field ("VmRSS:  1234 kB"). */
function kb(file: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(file, "utf8"));
  return m ? Number(m[1]) : 0;
}

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** Kills and deletes every task and container of our namespace. */
async function clearContainers(): Promise<void> {
  const ids = ctr(["containers", "ls", "-q"]).stdout.split("\n").filter(Boolean);
  for (const id of ids) ctr(["tasks", "kill", "-s", "SIGKILL", id]);
  for (const id of ids) {
    const end = Date.now() + 10_000;
    while (Date.now() < end && /RUNNING|PAUSED|CREATED/.test(ctr(["tasks", "ls"]).stdout.split("\n").find((l) => l.startsWith(`${id} `)) ?? "")) await Bun.sleep(50);
    ctr(["tasks", "delete", "-f", id]);
    ctr(["containers", "delete", id]);
  }
  await waitFor("the shims to exit", () => shimPids().length === 0, 20_000);
}

async function tearDown(): Promise<void> {
  try {
    if (ctd.running) await clearContainers();
  } catch (err) {
    console.error(`shim bench: cleanup: ${(err as Error).message}`);
  }
  // Whatever a failure left: each runtime's state (its own delete), the shims, mounts, the dir.
  await ctd.stop([["runc", join(ctd.dir, "runc", NS)]]);
}

async function latency(): Promise<void> {
  const variants: Variant[] = SHIMS.map((s) => ({
    name: `${s.name} ctr run --rm true`,
    argv: (i: number) => ["ctr", "--address", sock, "--namespace", NS, "run", "--rm", "--fifo-dir", fifos, "--runtime", s.runtime, ...s.extra, IMAGE, `lat-${s.name.split(" ")[0]}-${i}`, "true"],
  }));
  const times = measure(variants, rounds, 3);
  report(`ctr run --rm … true through containerd 1.6, ${rounds} alternating rounds (private mount ns, cgroup v1)`, times, variants[1]!.name);
  const ratio = median(times.get(variants[0]!.name)!) / median(times.get(variants[1]!.name)!);
  console.log(`tsrun shim / runc shim latency: ${ratio.toFixed(2)}× (goal ≤ 0.80×: ${ratio <= 0.8 ? "met" : "not met"})`);
  if (variants[2]) console.log(`tsrun shim / base shim latency: ${(median(times.get(variants[0]!.name)!) / median(times.get(variants[2]!.name)!)).toFixed(2)}×`);
}

async function memory(): Promise<void> {
  console.log(`\nshim memory with N running \`sleep\` containers (all processes of the shims: daemons and any children)`);
  console.log(`${"shim".padEnd(12)} ${"N".padStart(4)} ${"procs".padStart(6)} ${"RSS MB".padStart(9)} ${"RSS/ctr".padStart(9)} ${"PSS MB".padStart(9)} ${"PSS/ctr".padStart(9)}`);
  const perContainer = new Map<string, number>();
  for (const n of counts) {
    for (const s of SHIMS) {
      const tag = s.name.split(" ")[0]!;
      for (let i = 0; i < n; i++) mustCtr(["run", "-d", "--null-io", "--runtime", s.runtime, ...s.extra, IMAGE, `mem-${tag}-${n}-${i}`, "sleep", "3600"]);
      await waitFor(`${n} running tasks`, () => ctr(["tasks", "ls"]).stdout.split("\n").filter((l) => / RUNNING$/.test(l.trim())).length === n);
      // Let the shims settle (start-up garbage, lazy pages) before reading them.
      await Bun.sleep(2000);
      let rss = 0;
      let pss = 0;
      const pids = shimPids();
      for (const pid of pids) {
        try {
          rss += kb(`/proc/${pid}/status`, "VmRSS");
          pss += kb(`/proc/${pid}/smaps_rollup`, "Pss");
        } catch {
          // Gone meanwhile.
        }
      }
      const mb = (k: number) => k / 1024;
      perContainer.set(`${s.name}@${n}`, mb(rss) / n);
      console.log(`${s.name.padEnd(12)} ${String(n).padStart(4)} ${String(pids.length).padStart(6)} ${mb(rss).toFixed(1).padStart(9)} ${(mb(rss) / n).toFixed(1).padStart(9)} ${mb(pss).toFixed(1).padStart(9)} ${(mb(pss) / n).toFixed(1).padStart(9)}`);
      await clearContainers();
    }
  }
  for (const n of counts) {
    const t = perContainer.get(`tsrun shim@${n}`)!;
    const r = perContainer.get(`runc shim@${n}`)!;
    console.log(`N=${n}: tsrun shim ${t.toFixed(1)} MB RSS per container, ${(t / r).toFixed(2)}× the runc shim's${n === 10 ? ` (goal ≤ 5 MB: ${t <= 5 ? "met" : "not met"})` : ""}`);
  }
}

let failed = false;
try {
  await ctd.start(IMAGE);
  await latency();
  await memory();
} catch (err) {
  console.error(`shim bench: ${(err as Error).message}`);
  failed = true;
} finally {
  await tearDown();
}
process.exit(failed ? 1 : 0);
