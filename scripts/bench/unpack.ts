// Image unpack: a ~200 MB Debian bookworm minbase rootfs as a one-layer gzip OCI image, unpacked
// by tsrun, `umoci unpack`, `tar -xzf` of the layer blob and containerd's `ctr images import`, in
// alternating rounds; then how fast a second container of an already unpacked image is ready.
// Goal (issue 4): at least 1.5× faster than umoci, close to `tar -xzf`, a second container in a
// few milliseconds.
//
// Usage (as root: unpacking keeps owners and device nodes, bundles mount overlayfs):
//   bun scripts/bench/unpack.ts [rounds=5] [--rebuild-image] [--work-dir=DIR]
// The image is built once (debootstrap + umoci, about a minute) and cached in .tmp/bench-image/.
// Runs unpack under .tmp/ (the repository's file system) unless --work-dir names another place,
// e.g. /dev/shm: on a disk where creating a file costs far more than writing its bytes, every
// variant is bound by inode creation, and a tmpfs shows the CPU each one spends instead.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { listSnapshots } from "../../packages/shim/src/image/snapshots.ts";
import { median, which } from "./lib.ts";

const repo = join(import.meta.dir, "../..");
const tsrun = join(repo, "dist/tsrun");
const cacheDir = join(repo, ".tmp/bench-image");
const layoutDir = join(cacheDir, "layout");
const imageTar = join(cacheDir, "image.tar");
const readyFile = join(cacheDir, "ready.json");
const TAG = "bench";
const REF = `localhost/bench-unpack:${TAG}`;

const args = process.argv.slice(2);
const rebuild = args.includes("--rebuild-image");
const rounds = Number(args.find((a) => !a.startsWith("--")) ?? 5);
const workBase = args.find((a) => a.startsWith("--work-dir="))?.slice("--work-dir=".length) ?? join(repo, ".tmp");
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`unpack: rounds must be a positive integer, got ${JSON.stringify(args[0])}`);
  process.exit(2);
}

// ---- small process helpers ----

function run(argv: string[], opts: { cwd?: string; quiet?: boolean } = {}): string {
  const r = Bun.spawnSync(argv, { cwd: opts.cwd, stdout: "pipe", stderr: "pipe" });
  if (!r.success) {
    const err = r.stderr.toString().trim().split("\n").slice(-15).join("\n");
    throw new Error(`${argv.join(" ")} failed (exit ${r.exitCode}):\n${err}`);
  }
  return r.stdout.toString();
}

function tryRun(argv: string[]): boolean {
  return Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" }).success;
}

/** Bytes of a tree as `du` counts apparent sizes (what the rootfs holds, not its blocks). */
function treeBytes(dir: string): number {
  return Number(run(["du", "-sxb", dir]).split("\t")[0]);
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

// ---- the image, built once ----

interface ImageInfo {
  /** "debootstrap <suite> <mirror>" or "host dirs: ..." when debootstrap could not be used. */
  source: string;
  layers: Array<{ digest: string; size: number; uncompressed: number }>;
  rootfsBytes: number;
  entries: number;
}

/** The Debian mirror apt on this machine uses (deb822 .sources or one-line .list files). */
function debianMirror(): string {
  const files = ["/etc/apt/sources.list"];
  try {
    for (const f of readdirSync("/etc/apt/sources.list.d")) if (f.endsWith(".list") || f.endsWith(".sources")) files.push(join("/etc/apt/sources.list.d", f));
  } catch {}
  const found: Array<{ uri: string; suites: string[] }> = [];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue;
    }
    if (f.endsWith(".sources")) {
      for (const block of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, "mi").exec(block)?.[1]?.trim().split(/\s+/) ?? [];
        if (!field("Types").includes("deb")) continue;
        for (const uri of field("URIs")) found.push({ uri, suites: field("Suites") });
      }
    } else {
      for (const line of text.split("\n")) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
        if (m) found.push({ uri: m[1]!, suites: [m[2]!] });
      }
    }
  }
  // The main archive serves the release suite itself; security and backports mirrors do not.
  const main = found.find((s) => s.suites.includes("bookworm")) ?? found.find((s) => /\/debian\/?$/.test(s.uri));
  return main?.uri ?? "http://deb.debian.org/debian";
}

/** A minbase Debian, trimmed the way container base images are (no device nodes). */
function debootstrapRootfs(dir: string, log: string): string | undefined {
  if (!which("debootstrap")) {
    console.log("image: debootstrap is not installed");
    return undefined;
  }
  const mirror = debianMirror();
  console.log(`image: debootstrap --variant=minbase bookworm from ${mirror} (about a minute)`);
  const r = Bun.spawnSync(["debootstrap", "--variant=minbase", "bookworm", dir, mirror], { stdout: Bun.file(log), stderr: "pipe" });
  if (!r.success) {
    console.log(`image: debootstrap failed (exit ${r.exitCode}, log ${log}): ${r.stderr.toString().trim().split("\n").slice(-3).join(" / ")}`);
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  // Images carry an empty /dev; the runtime makes the nodes.
  for (const e of readdirSync(join(dir, "dev"))) rmSync(join(dir, "dev", e), { recursive: true, force: true });
  return `debootstrap --variant=minbase bookworm ${mirror}`;
}

/** Fallback: whole subdirectories of the host's /usr/share and /usr/lib up to about 200 MB. */
function hostDirsRootfs(dir: string): string {
  const want = 200e6;
  const picked: string[] = [];
  let total = 0;
  for (const parent of ["usr/share", "usr/lib"]) {
    for (const name of readdirSync(`/${parent}`).sort()) {
      if (total >= want * 0.9) break;
      const rel = `${parent}/${name}`;
      let size: number;
      try {
        if (!statSync(`/${rel}`).isDirectory()) continue;
        size = treeBytes(`/${rel}`);
      } catch {
        continue;
      }
      if (total + size > want * 1.1) continue;
      picked.push(rel);
      total += size;
    }
  }
  mkdirSync(dir, { recursive: true });
  run(["sh", "-c", `tar -C / -cf - "$@" | tar -C '${dir}' -xf -`, "sh", ...picked]);
  return `host dirs (${picked.length} subdirs of /usr/share and /usr/lib)`;
}

function layerDescriptors(layout: string): Array<{ digest: string; size: number }> {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const top = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === TAG) ?? index.manifests[0];
  if (!top) throw new Error(`${layout}/index.json lists no manifest`);
  const manifest = JSON.parse(readFileSync(blobPath(layout, top.digest), "utf8")) as { layers: Array<{ digest: string; size: number }> };
  return manifest.layers;
}

function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  return join(layout, "blobs", alg!, hex!);
}

function buildImage(): ImageInfo {
  if (!which("umoci")) throw new Error("umoci is needed to build the benchmark image (apt-get install umoci)");
  const tmp = `${cacheDir}.build-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const rootfs = join(tmp, "rootfs");
    const source = debootstrapRootfs(rootfs, join(tmp, "debootstrap.log")) ?? (console.log("image: falling back to host directories"), hostDirsRootfs(rootfs));
    const rootfsBytes = treeBytes(rootfs);
    const entries = Number(run(["sh", "-c", `find '${rootfs}' -xdev | wc -l`]).trim()) - 1;
    // umoci repack diffs a bundle's rootfs against the mtree its unpack wrote: unpacking the
    // empty image and swapping the rootfs in makes every file part of one new layer.
    const layout = join(tmp, "layout");
    const bundle = join(tmp, "bundle");
    console.log(`image: packing ${mb(rootfsBytes)} with umoci (one gzip layer)`);
    run(["umoci", "init", "--layout", layout]);
    run(["umoci", "new", "--image", `${layout}:${TAG}`]);
    run(["umoci", "config", "--image", `${layout}:${TAG}`, "--config.cmd=/bin/bash"]);
    run(["umoci", "unpack", "--image", `${layout}:${TAG}`, bundle]);
    rmSync(join(bundle, "rootfs"), { recursive: true, force: true });
    renameSync(rootfs, join(bundle, "rootfs"));
    run(["umoci", "repack", "--image", `${layout}:${TAG}`, bundle]);
    run(["umoci", "gc", "--layout", layout]);
    rmSync(bundle, { recursive: true, force: true });
    // Member names without "./": what `skopeo copy oci-archive:` writes and every importer reads.
    run(["tar", "-C", layout, "-cf", join(tmp, "image.tar"), "oci-layout", "index.json", "blobs"]);
    const layers = layerDescriptors(layout).map((l) => ({
      ...l,
      uncompressed: Number(run(["sh", "-c", `gzip -dc '${blobPath(layout, l.digest)}' | wc -c`]).trim()),
    }));
    const info: ImageInfo = { source, layers, rootfsBytes, entries };
    writeFileSync(join(tmp, "ready.json"), `${JSON.stringify(info, null, 2)}\n`);
    rmSync(cacheDir, { recursive: true, force: true });
    renameSync(tmp, cacheDir);
    return info;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function cachedImage(): ImageInfo {
  if (!rebuild && existsSync(readyFile)) return JSON.parse(readFileSync(readyFile, "utf8")) as ImageInfo;
  return buildImage();
}

// ---- what the run makes, and undoing it ----

const workDir = join(workBase, `bench-unpack-${process.pid}`);
let containerd: ReturnType<typeof Bun.spawn> | undefined;
/** tsrun bundles currently mounted: [bundle dir, image root]. */
const mountedBundles = new Map<string, string>();

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo, octal escapes undone). */
function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const field = line.split(" ")[4];
    if (!field) continue;
    const p = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (p === dir || p.startsWith(`${dir}/`)) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

function removeBundle(bundle: string): void {
  const root = mountedBundles.get(bundle);
  if (root === undefined) return;
  mountedBundles.delete(bundle);
  // A bundle whose command failed before mounting has nothing for --remove to undo.
  if (!existsSync(join(bundle, "config.json")) && mountsUnder(bundle).length === 0) return;
  run([tsrun, "bundle", "--remove", bundle, "--image-root", root]);
}

/** Removes a tree this run made; anything still mounted in it is detached first, so `rm` never walks into a mount. */
function removeTree(dir: string): void {
  for (const m of mountsUnder(dir)) tryRun(["umount", "-l", m]);
  rmSync(dir, { recursive: true, force: true });
}

async function stopContainerd(): Promise<void> {
  if (!containerd) return;
  const p = containerd;
  containerd = undefined;
  p.kill("SIGTERM");
  const stopped = await Promise.race([p.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
  if (!stopped) {
    p.kill("SIGKILL");
    await p.exited;
  }
}

async function cleanup(): Promise<void> {
  for (const b of [...mountedBundles.keys()]) {
    try {
      removeBundle(b);
    } catch (e) {
      console.error(`cleanup: ${e instanceof Error ? e.message : e}`);
    }
  }
  await stopContainerd();
  removeTree(workDir);
}

// ---- the peers ----

interface Run {
  /** Commands timed one after the other; their times are reported separately and summed. */
  steps: string[][];
  /** Numbers a run reports about itself (read after it, untimed). */
  extra?: () => Record<string, number>;
  teardown: () => void;
}

interface Variant {
  name: string;
  /** Names of the steps, in order, as reported ("" = only the total). */
  stepNames: string[];
  prepare: (dir: string) => Run;
  note: string;
}

let serial = 0;
function freshDir(tag: string): string {
  const d = join(workDir, `${tag}-${serial++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

function tsrunVariant(name: string, input: string): Variant {
  return {
    name,
    stepNames: ["import", "bundle"],
    note: "tsrun image import (blobs verified into a fresh store), then tsrun bundle: unpack into a snapshot + overlay mount + config.json",
    prepare(dir) {
      const root = join(dir, "store");
      const bundle = join(dir, "bundle");
      mkdirSync(bundle);
      mountedBundles.set(bundle, root);
      return {
        steps: [
          [tsrun, "image", "import", "--name", REF, "--image-root", root, input],
          [tsrun, "bundle", "--image", REF, "--image-root", root, bundle],
        ],
        extra() {
          // The unpack's own clock, inside the bundle process: the unpack with no process start,
          // store lookup, mount or config.
          return { "unpack (in process)": listSnapshots(root).reduce((s, x) => s + x.unpackMs, 0) };
        },
        teardown: () => removeBundle(bundle),
      };
    },
  };
}

/** Not an unpack: the floor of CPU any gzip layer costs, to tell decompression from file creation. */
function gunzipVariant(layers: string[]): Variant {
  return {
    name: "gzip -dc > /dev/null",
    stepNames: [""],
    note: "reference, not a peer: decompression alone, no files made",
    prepare() {
      return { steps: [["sh", "-c", `gzip -dc "$@" > /dev/null`, "sh", ...layers]], teardown() {} };
    },
  };
}

function umociVariant(): Variant {
  return {
    name: "umoci unpack",
    stepNames: [""],
    note: "umoci unpack --image LAYOUT:TAG: also writes config.json and an mtree manifest of the rootfs (sha256 of every file) for repack",
    prepare(dir) {
      return { steps: [["umoci", "unpack", "--image", `${layoutDir}:${TAG}`, join(dir, "bundle")]], teardown() {} };
    },
  };
}

function tarVariant(layers: string[]): Variant {
  return {
    name: "tar -xzf layer",
    stepNames: [""],
    note: "GNU tar -xzf of the layer blob(s) in order (gzip in a second process); no whiteout handling, no digest check",
    prepare(dir) {
      return { steps: layers.map((l) => ["tar", "-xzf", l, "-C", dir]), teardown() {} };
    },
  };
}

function containerdVariant(bin: { containerd: string; ctr: string }): Variant {
  const base = join(workDir, "containerd");
  const sock = join(base, "containerd.sock");
  mkdirSync(base, { recursive: true });
  writeFileSync(
    join(base, "config.toml"),
    [
      "version = 2",
      `root = "${join(base, "root")}"`,
      `state = "${join(base, "state")}"`,
      // No CRI (it wants CNI and a network); opt would install into /opt/containerd.
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]',
      "[grpc]",
      `  address = "${sock}"`,
      "[ttrpc]",
      `  address = "${sock}.ttrpc"`,
      "",
    ].join("\n"),
  );
  containerd = Bun.spawn([bin.containerd, "--config", join(base, "config.toml")], { stdout: Bun.file(join(base, "containerd.log")), stderr: Bun.file(join(base, "containerd.err")) });
  const deadline = Date.now() + 15_000;
  while (!tryRun([bin.ctr, "--address", sock, "version"])) {
    if (containerd.exitCode !== null || Date.now() > deadline) throw new Error(`containerd did not come up on ${sock}; see ${base}/containerd.err`);
    Bun.sleepSync(100);
  }
  const ctr = (ns: string, ...rest: string[]) => [bin.ctr, "--address", sock, "-n", ns, ...rest];
  const contentDir = join(base, "root/io.containerd.content.v1.content/blobs/sha256");
  const snapshotDir = join(base, "root/io.containerd.snapshotter.v1.overlayfs/snapshots");
  const count = (d: string) => (existsSync(d) ? readdirSync(d).length : 0);
  return {
    name: "containerd import",
    stepNames: [""],
    note: "ctr images import IMAGE.tar: blobs into containerd's content store, then unpack into the overlayfs snapshotter (ctr's default); a fresh namespace each run",
    prepare() {
      // A new namespace each run and a synchronous garbage collection after it: nothing of an
      // earlier run's content or snapshots is there to be reused.
      const ns = `bench${serial++}`;
      return {
        steps: [ctr(ns, "images", "import", "--base-name", "localhost/bench-unpack", imageTar)],
        extra() {
          if (count(snapshotDir) === 0) throw new Error("containerd import made no snapshot: the unpack did not happen, the comparison would be wrong");
          return {};
        },
        teardown() {
          for (const img of run(ctr(ns, "images", "ls", "-q")).split("\n").filter(Boolean)) run(ctr(ns, "images", "rm", "--sync", img));
          for (const s of run(ctr(ns, "snapshots", "ls")).split("\n").slice(1)) {
            const key = s.split(/\s+/)[0];
            if (key) tryRun(ctr(ns, "snapshots", "rm", key));
          }
          for (const c of run(ctr(ns, "content", "ls", "-q")).split("\n").filter(Boolean)) tryRun(ctr(ns, "content", "rm", c));
          run([bin.ctr, "--address", sock, "namespaces", "rm", ns]);
          if (count(contentDir) + count(snapshotDir) > 0) throw new Error(`containerd kept content or snapshots after removing namespace ${ns}; later runs would reuse them`);
        },
      };
    },
  };
}

// ---- measuring ----

type Samples = Map<string, number[]>;

function record(s: Samples, key: string, v: number): void {
  const xs = s.get(key) ?? [];
  xs.push(v);
  s.set(key, xs);
}

/** One run of a variant: prepare untimed, steps timed, teardown and `sync` untimed. */
function runOnce(v: Variant, into: Samples): void {
  const dir = freshDir(v.name.replace(/[^a-z0-9]+/gi, "-"));
  const r = v.prepare(dir);
  try {
    let total = 0;
    for (const [i, argv] of r.steps.entries()) {
      const t0 = performance.now();
      const res = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
      const dt = performance.now() - t0;
      if (!res.success) throw new Error(`${v.name}: ${argv.join(" ")} failed (exit ${res.exitCode}): ${res.stderr.toString().trim()}`);
      total += dt;
      const step = v.stepNames[i] ?? v.stepNames.at(-1) ?? "";
      if (step && v.stepNames.length > 1) record(into, `${v.name}: ${step}`, dt);
    }
    const extra = r.extra?.() ?? {};
    record(into, v.name, total);
    for (const [k, x] of Object.entries(extra)) record(into, `${v.name}: ${k}`, x);
  } finally {
    r.teardown();
    removeTree(dir);
    // Leave no dirty pages behind for the next variant's run to write back on its clock.
    run(["sync"]);
  }
}

function printTable(title: string, samples: Samples, ratios: string[]): void {
  console.log(`\n${title}`);
  const w = Math.max(34, ...[...samples.keys()].map((k) => k.length + 2));
  console.log(`${"variant".padEnd(w)} ${"median ms".padStart(10)} ${"min".padStart(8)} ${"max".padStart(8)}${ratios.map((r) => ` ${("× " + r).padStart(Math.max(10, r.length + 3))}`).join("")}`);
  for (const [name, xs] of samples) {
    const m = median(xs);
    const cols = ratios.map((r) => {
      const base = samples.get(r);
      return ` ${(base ? (m / median(base)).toFixed(2) : "-").padStart(Math.max(10, r.length + 3))}`;
    });
    console.log(`${name.padEnd(w)} ${m.toFixed(1).padStart(10)} ${Math.min(...xs).toFixed(1).padStart(8)} ${Math.max(...xs).toFixed(1).padStart(8)}${cols.join("")}`);
  }
}

function newestSource(): number {
  let newest = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const pkg of readdirSync(join(repo, "packages"))) if (existsSync(join(repo, "packages", pkg, "src"))) walk(join(repo, "packages", pkg, "src"));
  return newest;
}

/**
 * The runs are synchronous, so a signal's handler only gets to run when the event loop does:
 * between runs, where nothing is half made.
 */
function betweenRuns(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: the unpacks keep file owners and device nodes, and bundles mount overlayfs");
  if (!existsSync(tsrun)) throw new Error("dist/tsrun is missing; run `bun run build` first");
  if (statSync(tsrun).mtimeMs < newestSource()) console.log("warning: dist/tsrun is older than packages/*/src; `bun run build` to measure the current code");

  const image = cachedImage();
  const compressed = image.layers.reduce((s, l) => s + l.size, 0);
  const uncompressed = image.layers.reduce((s, l) => s + l.uncompressed, 0);
  console.log(`image: ${image.source}`);
  console.log(
    `image: ${image.layers.length} gzip layer(s), ${mb(compressed)} compressed, ${mb(uncompressed)} uncompressed tar, rootfs ${mb(image.rootfsBytes)} in ${image.entries} entries`,
  );
  console.log(`image: layout ${layoutDir} (tag ${TAG}), archive ${imageTar}`);

  mkdirSync(workDir, { recursive: true });
  const layerBlobs = image.layers.map((l) => blobPath(layoutDir, l.digest));
  const variants: Variant[] = [
    gunzipVariant(layerBlobs),
    tarVariant(layerBlobs),
    tsrunVariant("tsrun (layout dir)", layoutDir),
    tsrunVariant("tsrun (image tar)", imageTar),
  ];
  if (which("umoci")) variants.push(umociVariant());
  else console.log("skipped umoci unpack: umoci is not installed");
  const cd = which("containerd");
  const ctr = which("ctr");
  if (cd && ctr) variants.push(containerdVariant({ containerd: cd, ctr }));
  else console.log(`skipped containerd import: ${cd ? "ctr" : "containerd"} is not installed`);

  console.log(`\nunpack: ${rounds} rounds, variants alternating (rotating which goes first); every run into a fresh directory under ${workDir} (${run(["findmnt", "-n", "-o", "FSTYPE", "-T", workDir]).split("\n")[0]})`);
  console.log("page cache: left warm for all alike (the image is read from memory); `sync` after every run, untimed, so no run pays for another's writeback");
  for (const v of variants) console.log(`  ${v.name}: ${v.note}`);

  // A whole warm-up round would cost as much as a measured one; what it would warm is the
  // binaries and the image in the page cache, and the first start of each program.
  run(["sh", "-c", `cat '${tsrun}' '${imageTar}' $(find '${layoutDir}' -type f) > /dev/null`]);
  run([tsrun, "--version"]);
  const samples: Samples = new Map();
  for (let r = 0; r < rounds; r++) {
    // Rotating the start spreads any drift within a round over every variant.
    const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
    for (const v of order) {
      runOnce(v, samples);
      await betweenRuns();
    }
    process.stdout.write(`round ${r + 1}/${rounds} done\n`);
  }
  // Totals first, then the tsrun steps, in a stable order.
  const ordered: Samples = new Map();
  for (const v of variants) ordered.set(v.name, samples.get(v.name)!);
  for (const [k, xs] of samples) if (!ordered.has(k)) ordered.set(k, xs);
  const peers = ["tar -xzf layer", ...(samples.has("umoci unpack") ? ["umoci unpack"] : [])];
  printTable(`unpack of the image, whole commands (${rounds} rounds)`, ordered, peers);

  // ---- a second container of an image whose layers are unpacked ----
  const root = join(freshDir("second"), "store");
  run([tsrun, "image", "import", "--name", REF, "--image-root", root, layoutDir]);
  const second: Samples = new Map();
  const secondRounds = Math.max(20, rounds * 4);
  // The first bundle unpacks; every later one only mounts an overlay and writes config.json.
  const bundleOnce = (key: string | undefined) => {
    const b = freshDir("bundle");
    mountedBundles.set(b, root);
    const t0 = performance.now();
    run([tsrun, "bundle", "--image", REF, "--image-root", root, b]);
    const dt = performance.now() - t0;
    if (key) {
      record(second, key, dt);
      const info = JSON.parse(readFileSync(join(root, "containers", b.split("/").at(-1)!, "rootfs.json"), "utf8")) as { ms: number };
      record(second, "  of which rootfs ready (in process)", info.ms);
    }
    return b;
  };
  const first = bundleOnce(undefined);
  const kept = [first];
  for (let i = -3; i < secondRounds; i++) {
    const b = bundleOnce(i >= 0 ? "tsrun bundle (layers unpacked)" : undefined);
    // Kept mounted until the end, as a second container's rootfs would be beside the first.
    kept.push(b);
    await betweenRuns();
  }
  const firstSamples = samples.get("tsrun (layout dir): bundle");
  if (firstSamples) second.set("tsrun bundle (fresh store: unpacks)", firstSamples);
  printTable(`second container from an unpacked image: tsrun bundle, ${secondRounds} runs (whole command)`, second, ["tsrun bundle (layers unpacked)"]);
  for (const b of kept) removeBundle(b);

  const m = (k: string) => (samples.has(k) ? median(samples.get(k)!) : undefined);
  const ts = m("tsrun (layout dir)");
  const um = m("umoci unpack");
  const tx = m("tar -xzf layer");
  console.log("");
  if (ts !== undefined && um !== undefined) console.log(`tsrun (import+bundle from the layout) vs umoci unpack: ${(um / ts).toFixed(2)}× as fast (goal ≥ 1.5×)`);
  if (ts !== undefined && tx !== undefined) console.log(`tsrun (import+bundle from the layout) vs tar -xzf: ${(ts / tx).toFixed(2)}× tar's time`);
  const inProc = m("tsrun (layout dir): unpack (in process)");
  if (inProc !== undefined && tx !== undefined) console.log(`tsrun unpack alone (in process) vs tar -xzf: ${(inProc / tx).toFixed(2)}× tar's time`);
  const gz = m("gzip -dc > /dev/null");
  if (gz !== undefined && tx !== undefined)
    console.log(`tar -xzf beyond decompression: ${(((tx - gz) / image.entries) * 1000).toFixed(0)} µs per entry (${image.entries} entries): file creation on ${workBase}`);
  const sec = second.get("tsrun bundle (layers unpacked)");
  if (sec) console.log(`second container ready: ${median(sec).toFixed(1)} ms median for the whole tsrun bundle command`);
}

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    console.error(`\nunpack: ${sig}, cleaning up`);
    await cleanup();
    process.exit(130);
  });
}

try {
  await main();
} catch (e) {
  console.error(`unpack: ${e instanceof Error ? e.message : e}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
