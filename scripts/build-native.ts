// Builds the native half of the plan boundary into packages/runtime/native/build/:
//   tsrun-exec    the static executor that runs an InitPlan (exec'd from a sealed memfd)
//   libtsrun.so   what tsrun loads through bun:ffi (spawn, fd passing)
// Idempotent: skips a target whose output is newer than its sources and this script.
// `bun scripts/build-native.ts [--force]`; tests and the compiled build call buildNative().
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";

export const nativeDir = join(import.meta.dir, "../packages/runtime/native");
export const buildDir = join(nativeDir, "build");

const CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11"];

interface Target {
  out: string;
  sources: string[];
  args: string[];
}

const targets: Target[] = [
  {
    out: "tsrun-exec",
    sources: ["executor.c", "wire.h"],
    // static: it runs in a fresh process that may already sit in the container's mount
    // namespace, where no dynamic loader or libc of ours exists. -s: smaller memfd copy.
    args: ["-static", "-s", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "executor.c"],
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
    const r = Bun.spawnSync(["gcc", ...CFLAGS, ...t.args, "-o", tmp], { cwd: nativeDir, stdout: "pipe", stderr: "pipe" });
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
