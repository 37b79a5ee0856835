import { mkdtempSync, rmSync } from "node:fs";
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

export function tsrun(args: string[], opts: { cwd?: string; stdin?: string } = {}): Run {
  const r = Bun.spawnSync([TSRUN, ...args], { cwd: opts.cwd, stdin: opts.stdin === undefined ? "ignore" : Buffer.from(opts.stdin), stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
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
