// The containerd shim: containerd-shim-tsrun-v2 against containerd's own containerd-shim-runc-v2
// (driving runc), both behind one private containerd 1.6 (own socket, root, state, fifo dir),
// in the same run:
// - latency of `ctr run --rm IMAGE ID true` (fifo IO), alternating, medians and ratios;
// - resident memory of the shim processes with 1, 10 and 50 running `sleep` containers, total
//   and per container (RSS from /proc/PID/status, and PSS, which shares the pages of a binary
//   mapped by many shims fairly among them, from /proc/PID/smaps_rollup).
// - create+start+wait+delete of one container inside the tsrun shim's daemon (its Task API over
//   ttrpc, null IO, as containerd calls it) against `crun run` and `runc run` (create, start,
//   wait and delete) of the same bundle, alternating, medians and ratios;
// - the daemon's RSS over many such lifecycles in that one daemon (a leak shows as a slope).
// Goals (issue 10): latency ≤ 0.8× the runc shim's; ≤ 5 MB RSS per container at 10; RSS flat
// over 1,000 lifecycles in one shim.
// The run happens in a private mount namespace (as the other benchmarks; the mounts of the
// snapshots go with it) and removes everything it made: containerd, shims, containers, cgroups,
// runtime state and files. Needs root, containerd, ctr, runc, containerd-shim-runc-v2, umoci and
// jq, and `bun run build`.
// Usage: bun scripts/bench/shim.ts [rounds] [counts] [lifecycles]   (defaults: 20, 1,10,50 and 1000)
// TSRUN_BENCH_BASE=DIR adds an older build as "base shim": DIR holds its tsrun and its
// containerd-shim-tsrun-v2 as dist/ does (the shim finds tsrun beside itself), run by absolute path.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inPureV1Namespace, measure, median, report, which, type Variant } from "./lib.ts";
import { PrivateContainerd } from "../../packages/shim/test/private-containerd.ts";
import { TtrpcClient } from "../../packages/shim/src/ttrpc/client.ts";
import { TASK_SERVICE_V2, taskProto } from "../../packages/shim/src/task/proto.ts";
import { defaultSpec } from "../../packages/ocispec/src/defaults.ts";
import { DEFAULT_ROOT } from "../../packages/shim/src/task/options.ts";

const root = join(import.meta.dir, "../..");
const tsrun = join(root, "dist/tsrun");
const shim = join(root, "dist/containerd-shim-tsrun-v2");
const rounds = Number(process.argv[2] ?? 20);
const counts = (process.argv[3] ?? "1,10,50").split(",").map(Number);
const lifecycles = Number(process.argv[4] ?? 1000);

inPureV1Namespace(import.meta.path, tsrun, process.argv.slice(2));

for (const cmd of ["containerd", "ctr", "runc", "crun", "containerd-shim-runc-v2", "umoci", "jq"]) {
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

/** A daemon of the tsrun shim, spawned by `start` as containerd would, driven over ttrpc. */
class Daemon {
  private constructor(
    readonly client: TtrpcClient,
    readonly pid: number,
    private readonly first: string,
  ) {}

  static async spawn(bundle: string, ns: string, first: string): Promise<Daemon> {
    const env = { ...process.env, TTRPC_ADDRESS: `${sock}.ttrpc` };
    const r = Bun.spawnSync([shim, "-namespace", ns, "-address", sock, "-id", first, "start"], { cwd: bundle, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    if (!r.success) throw new Error(`shim start: ${r.stderr.toString().trim()}`);
    const client = await TtrpcClient.connect(r.stdout.toString().trim().slice("unix://".length));
    const p = taskProto();
    const pid = p.connectResponse.decode(await client.call(TASK_SERVICE_V2, "Connect", p.connectRequest.encode({ id: first }), { timeoutMs: 10_000 })).shimPid;
    return new Daemon(client, pid, first);
  }

  /** Create, Start, Wait and Delete of container `id` from `bundle` (its rootfs in place, null IO). */
  async lifecycle(bundle: string, id: string): Promise<void> {
    const p = taskProto();
    const call = (method: string, bytes: Uint8Array) => this.client.call(TASK_SERVICE_V2, method, bytes, { timeoutMs: 30_000 });
    await call("Create", p.createRequest.encode({ id, bundle, rootfs: [], terminal: false, stdin: "", stdout: "", stderr: "" }));
    await call("Start", p.startRequest.encode({ id }));
    const status = p.waitResponse.decode(await call("Wait", p.waitRequest.encode({ id }))).exitStatus;
    if (status !== 0) throw new Error(`${id} exited ${status}`);
    await call("Delete", p.deleteRequest.encode({ id }));
  }

  async close(): Promise<void> {
    const p = taskProto();
    try {
      await this.client.call(TASK_SERVICE_V2, "Shutdown", p.shutdownRequest.encode({ id: this.first, now: true }), { timeoutMs: 10_000 });
    } catch {
      // It went already.
    }
    this.client.close();
    await waitFor("the bench daemon to exit", () => !existsSync(`/proc/${this.pid}`), 10_000);
  }
}

/** A busybox bundle running `true`, with its rootfs in place (no mounts for the shim to make). */
function trueBundle(work: string, name: string): string {
  const bundle = join(work, name);
  mkdirSync(bundle);
  if (!Bun.spawnSync(["bash", join(root, "scripts/make-rootfs.sh"), join(bundle, "rootfs")]).success) throw new Error("make-rootfs failed");
  const spec = defaultSpec() as any;
  spec.ociVersion = "1.0.2";
  spec.process.terminal = false;
  spec.process.args = ["true"];
  writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
  return bundle;
}

async function inShim(work: string): Promise<void> {
  const ns = `${NS}-in`;
  const bundle = trueBundle(work, "in-shim");
  const peers = ["crun", "runc"].map((name) => ({ name, bin: which(name)!, bundle: trueBundle(work, `in-${name}`), state: join(work, `state-${name}`) }));
  for (const p of peers) mkdirSync(p.state);
  const daemon = await Daemon.spawn(bundle, ns, "in-first");
  const times = new Map<string, number[]>([["tsrun shim Create..Delete", []], ...peers.map((p) => [`${p.name} run`, []] as [string, number[]])]);
  try {
    for (let r = -3; r < rounds * 2; r++) {
      let t0 = performance.now();
      await daemon.lifecycle(bundle, `in-${r + 3}`);
      if (r >= 0) times.get("tsrun shim Create..Delete")!.push(performance.now() - t0);
      for (const p of peers) {
        const id = `in-${p.name}-${r + 3}`;
        t0 = performance.now();
        // `run` without --detach is create, start, wait and delete.
        const run = Bun.spawnSync([p.bin, "--root", p.state, "run", "-b", p.bundle, id], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
        if (!run.success) throw new Error(`${p.name}: ${run.stderr}`);
        if (r >= 0) times.get(`${p.name} run`)!.push(performance.now() - t0);
      }
    }
    report(`one container's create+start+wait+delete: inside the tsrun shim (ttrpc, null IO) vs the runtimes' binaries, ${rounds * 2} alternating rounds`, times, "crun run");
    const t = median(times.get("tsrun shim Create..Delete")!);
    console.log(`tsrun shim in-process / crun: ${(t / median(times.get("crun run")!)).toFixed(2)}×, / runc: ${(t / median(times.get("runc run")!)).toFixed(2)}×`);

    // RSS over many lifecycles in this one daemon.
    console.log(`
the tsrun shim daemon's RSS over ${lifecycles} container lifecycles in it (VmRSS, MB)`);
    const samples: Array<[number, number]> = [];
    const step = Math.max(1, Math.floor(lifecycles / 10));
    for (let i = 0; i <= lifecycles; i++) {
      if (i % step === 0) {
        const mb = kb(`/proc/${daemon.pid}/status`, "VmRSS") / 1024;
        samples.push([i, mb]);
        console.log(`  after ${String(i).padStart(5)}: ${mb.toFixed(1)}`);
      }
      if (i < lifecycles) await daemon.lifecycle(bundle, `rss-${i}`);
    }
    // Least-squares slope over the second half (past warm-up), per 1,000 lifecycles.
    const tail = samples.slice(Math.floor(samples.length / 2));
    const mx = tail.reduce((a, [x]) => a + x, 0) / tail.length;
    const my = tail.reduce((a, [, y]) => a + y, 0) / tail.length;
    const slope = tail.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / tail.reduce((a, [x]) => a + (x - mx) ** 2, 0);
    console.log(`RSS slope over the second half: ${(slope * 1000).toFixed(2)} MB per 1,000 lifecycles (first ${samples[0]![1].toFixed(1)} MB, last ${samples.at(-1)![1].toFixed(1)} MB)`);
  } finally {
    await daemon.close();
    for (const p of peers) rmSync(p.state, { recursive: true, force: true });
    // The daemon's state root for this namespace (each Delete removed its container's own dir).
    rmSync(join(DEFAULT_ROOT, ns), { recursive: true, force: true });
  }
}

let failed = false;
const work = mkdtempSync("/tmp/tsrun-bsh-work-");
try {
  await ctd.start(IMAGE);
  await latency();
  await inShim(work);
  await memory();
} catch (err) {
  console.error(`shim bench: ${(err as Error).message}`);
  failed = true;
} finally {
  await tearDown();
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
