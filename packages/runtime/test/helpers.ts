import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "bun:test";

export const repo = join(import.meta.dir, "../../..");
/** The compiled binary under test (`bun run build` makes it; `bun run test` builds first). */
export const TSRUN = process.env.TSRUN ?? join(repo, "dist/tsrun");

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let seq = 0;

/**
 * Runs `argv` with stdout and stderr going to files, not pipes: a detached container inherits
 * them (as with runc), and a pipe would stay open as long as the container runs.
 */
export function capture(argv: string[], opts: { cwd?: string; stdin?: string } = {}): Run {
  // Files beside each other in the temporary directory, removed after the call (no directory of
  // their own: a test file's end is not a point a lazily made directory could be removed at).
  const base = join(tmpdir(), `tsrun-out-${process.pid}-${seq++}`);
  const out = openSync(`${base}.out`, "w+");
  const err = openSync(`${base}.err`, "w+");
  try {
    const r = Bun.spawnSync(argv, { cwd: opts.cwd, stdin: opts.stdin === undefined ? "ignore" : Buffer.from(opts.stdin), stdout: out, stderr: err });
    return { code: r.exitCode ?? -1, stdout: readFileSync(`${base}.out`, "utf8"), stderr: readFileSync(`${base}.err`, "utf8") };
  } finally {
    closeSync(out);
    closeSync(err);
    rmSync(`${base}.out`, { force: true });
    rmSync(`${base}.err`, { force: true });
  }
}

/** Runs the binary (see capture). */
export function tsrun(args: string[], opts: { cwd?: string; stdin?: string } = {}): Run {
  return capture([TSRUN, ...args], opts);
}

/** A temporary directory removed after the file's tests. */
export function tempDir(prefix = "tsrun-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export function hasCommand(cmd: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).success;
}
