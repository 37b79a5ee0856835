// Builds the native half of the plan boundary into packages/runtime/native/build/:
//   tsrun-exec    the static executor that runs an InitPlan (exec'd from a sealed memfd)
//   libtsrun.so   what tsrun loads through bun:ffi (spawn, fd passing)
// Idempotent: skips a target whose output is newer than its sources and this script.
// `bun scripts/build-native.ts [--force]`; tests and the compiled build call buildNative().
import { existsSync, mkdirSync, renameSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";

export const nativeDir = join(import.meta.dir, "../packages/runtime/native");
export const buildDir = join(nativeDir, "build");

const CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11"];

interface Target {
  out: string;
  sources: string[];
  args: string[];
  /** Build with musl when it is installed (musl-tools). */
  musl?: boolean;
}

/**
 * musl-gcc searches only musl's own headers; the executor also needs the kernel's (linux/,
 * asm/). A directory of links to Debian's copies, beside the build outputs.
 */
function muslKernelHeaders(): string {
  const dir = join(buildDir, "kernel-headers");
  mkdirSync(dir, { recursive: true });
  const arch = `${process.arch === "arm64" ? "aarch64" : "x86_64"}-linux-gnu`;
  for (const [name, target] of [["linux", "/usr/include/linux"], ["asm", `/usr/include/${arch}/asm`], ["asm-generic", "/usr/include/asm-generic"]] as const) {
    const link = join(dir, name);
    if (!existsSync(link)) symlinkSync(target, link);
  }
  return dir;
}

function haveMusl(): boolean {
  return Bun.spawnSync(["sh", "-c", "command -v musl-gcc"], { stdout: "ignore", stderr: "ignore" }).success;
}

const targets: Target[] = [
  {
    out: "tsrun-exec",
    sources: ["executor.c", "wire.h"],
    // static: it runs in a fresh process that may already sit in the container's mount
    // namespace, where no dynamic loader or libc of ours exists. musl and -s: every create
    // copies it into a memfd and execs it, and glibc's static binary is 14 times the size
    // (0.7 MB against 50 KB: about 0.8 ms more per create, measured).
    args: ["-static", "-s", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "executor.c"],
    musl: true,
  },
  { out: "libtsrun.so", sources: ["libtsrun.c", "wire.h"], args: ["-shared", "-fPIC", "-s", "libtsrun.c"] },
];

function mtime(p: string): number {
  return existsSync(p) ? statSync(p).mtimeMs : -1;
}

/** Builds what is out of date; returns the output paths. Throws with gcc's output on failure. */
export function buildNative(opts: { force?: boolean; quiet?: boolean } = {}): { exe: string; lib: string } {
  mkdirSync(buildDir, { recursive: true });
  const self = mtime(import.meta.path);
  for (const t of targets) {
    const out = join(buildDir, t.out);
    const newest = Math.max(self, ...t.sources.map((s) => mtime(join(nativeDir, s))));
    if (!opts.force && mtime(out) > newest) continue;
    // Build beside the output and rename: a concurrent reader never sees half a file.
    const tmp = `${out}.tmp-${process.pid}`;
    const cc = t.musl && haveMusl() ? ["musl-gcc", "-isystem", muslKernelHeaders()] : ["gcc"];
    const r = Bun.spawnSync([...cc, ...CFLAGS, ...t.args, "-o", tmp], { cwd: nativeDir, stdout: "pipe", stderr: "pipe" });
    if (!r.success) {
      throw new Error(`build-native: gcc failed for ${t.out} (is gcc with libc6-dev installed?):\n${r.stderr.toString()}${r.stdout.toString()}`);
    }
    renameSync(tmp, out);
    if (!opts.quiet) console.error(`build-native: ${out}`);
  }
  return { exe: join(buildDir, "tsrun-exec"), lib: join(buildDir, "libtsrun.so") };
}

if (import.meta.main) {
  try {
    buildNative({ force: process.argv.includes("--force") });
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
