// The native layer inside a `bun build --compile` binary: libtsrun.so and the executor come
// from /$bunfs (the on-disk build directory is hidden while it runs), spawns work, and the
// spawn cost is measured (printed; it is a measurement, not a pass/fail threshold).
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildDir, buildNative } from "../../../scripts/build-native.ts";
import { repo, tempDir } from "./helpers.ts";

const isRoot = process.getuid?.() === 0;

// Spawns plans N times (spawn -> exec /bin/true -> waitpid) and prints medians as JSON.
const ENTRY = (src: string) => `
import { readlinkSync } from "node:fs";
import { encodePlan } from ${JSON.stringify(join(src, "plan/wire.ts"))};
import * as linux from ${JSON.stringify(join(src, "linux/index.ts"))};
import type { Op } from ${JSON.stringify(join(src, "plan/ops.ts"))};

function once(ops: Op[], onSync?: (pid: number) => void): number {
  const t0 = performance.now();
  const { pid, sync } = linux.spawnExecutor(encodePlan(ops), { stdio: [-1, -1, -1] });
  let init = pid;
  for (;;) {
    const m = sync.recv(5000);
    if (m.type === "eof") break;
    if (m.type === "error") throw new Error(JSON.stringify(m));
    if (m.type === "pid") { init = m.pid; linux.waitpid(pid); }
    if (m.type === "sync") { onSync?.(init); sync.answer(true); }
  }
  sync.close();
  const st = linux.waitpidTimeout(init, 5000);
  if (st?.code !== 0) throw new Error("init failed: " + JSON.stringify(st));
  return performance.now() - t0;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const n = Number(process.argv[2] ?? 100);
const t = { op: "exec", file: "/bin/true", argv: ["true"], env: [], path: "" } as const;
let exe = "";
once([{ op: "sync", code: 1 }, t], (pid) => { exe = readlinkSync("/proc/" + pid + "/exe"); });
const plain = Array.from({ length: n }, () => once([t]));
const ns = Array.from({ length: n }, () => once([{ op: "fork", flags: 0x20000000 | 0x00020000 | 0x04000000 | 0x08000000 }, { op: "sethostname", name: "c" }, t]));
console.log(JSON.stringify({ exe, plainMs: median(plain), nsMs: median(ns) }));
`;

describe("compiled binary", () => {
  test("these tests need root", () => expect(isRoot).toBe(true));
  test(
    "embeds libtsrun.so and the executor, spawns from /$bunfs, and what a spawn costs",
    () => {
      buildNative({ quiet: true });
      const dir = tempDir("tsrun-compiled-");
      const entry = join(dir, "entry.ts");
      writeFileSync(entry, ENTRY(join(repo, "packages/runtime/src")));
      const bin = join(dir, "spawn-bench");
      const b = Bun.spawnSync([process.execPath, "build", "--compile", entry, "--outfile", bin], { stdout: "pipe", stderr: "pipe" });
      expect(b.stderr.toString()).not.toContain("error");
      expect(b.success).toBe(true);

      // Run with the build directory hidden under an empty tmpfs (a private mount namespace):
      // whatever works now came from inside the binary.
      const r = Bun.spawnSync(["unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs none ${buildDir} && ls -A ${buildDir} | wc -l && exec ${bin} 100`], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const [empty, json] = r.stdout.toString().trim().split("\n");
      expect(r.stderr.toString()).toBe("");
      expect(empty).toBe("0");
      const compiled = JSON.parse(json!);
      expect(compiled.exe).toBe("/memfd:tsrun-exec (deleted)");

      const s = Bun.spawnSync([process.execPath, entry, "100"], { stdout: "pipe", stderr: "pipe" });
      const source = JSON.parse(s.stdout.toString());

      // whole process: start the compiled binary, dlopen, memfd, one spawn with namespaces, exit
      const whole: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        expect(Bun.spawnSync([bin, "1"]).success).toBe(true);
        whole.push(performance.now() - t0);
      }
      whole.sort((a, b) => a - b);
      console.log(
        `spawn -> exec /bin/true -> waitpid, median of 100: compiled ${compiled.plainMs.toFixed(2)} ms (with pid/mnt/uts/ipc namespaces ${compiled.nsMs.toFixed(2)} ms); ` +
          `from source ${source.plainMs.toFixed(2)} ms (${source.nsMs.toFixed(2)} ms); whole compiled process doing 1+1+1 spawns, median of 20: ${whole[10]!.toFixed(1)} ms`,
      );
    },
    120_000,
  );
});
