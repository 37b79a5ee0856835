// TaskOOM for a container the shim's runtime keeps no tsrun record of (BinaryName of another
// runtime): the OOM watch falls back to the memory cgroup /proc names for the init. A process in
// a memory cgroup of this test's own, limited to 16 MiB, fills a 64 MiB buffer; the monitor must
// publish /tasks/oom before the init's /tasks/exit. Root; the cgroup is removed afterwards.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OomMonitor, processCgroup } from "../src/events/oom.ts";
import type { Topic } from "../src/events/proto.ts";

const dir = mkdtempSync(join(tmpdir(), "tsrun-oom-"));
const v1 = existsSync("/sys/fs/cgroup/memory/memory.limit_in_bytes");
const cgroup = v1 ? `/sys/fs/cgroup/memory/tsrun-oomtest-${process.pid}` : `/sys/fs/cgroup/tsrun-oomtest-${process.pid}`;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  if (existsSync(cgroup)) rmdirSync(cgroup);
});

describe("processCgroup: the memory cgroup of a process from /proc/PID/cgroup", () => {
  test("v1 (and hybrid): the memory hierarchy's line, wherever memory is co-mounted", () => {
    const text = "12:pids:/a\n7:cpuset:/a\n4:memory:/k8s.io/abc\n0::/unified/x\n";
    const cg = processCgroup(1, text, "/sys/fs/cgroup");
    expect([cg.mode, cg.paths()]).toEqual(["v1", { memory: "/sys/fs/cgroup/memory/k8s.io/abc" }]);
  });

  test("pure v2: the unified line, when the root has cgroup.controllers", () => {
    const root = join(dir, "v2root");
    mkdirSync(root);
    writeFileSync(join(root, "cgroup.controllers"), "cpu memory pids\n");
    const cg = processCgroup(1, "0::/system.slice/x.scope\n", root);
    expect([cg.mode, cg.paths()]).toEqual(["v2", { "": join(root, "system.slice/x.scope") }]);
  });

  test("no memory cgroup is an error naming the process", () => {
    expect(() => processCgroup(77, "0::/x\n", join(dir, "nothing"))).toThrow("process 77 has no memory cgroup in /proc/77/cgroup");
  });
});

test("a process killed by the OOM killer in its memory cgroup: TaskOOM before its TaskExit, through the /proc fallback (root)", async () => {
  expect(process.getuid?.()).toBe(0);
  mkdirSync(cgroup);
  writeFileSync(join(cgroup, v1 ? "memory.limit_in_bytes" : "memory.max"), String(16 << 20));
  if (v1) writeFileSync(join(cgroup, "memory.swappiness"), "0");
  // It joins the cgroup, then waits for a line before filling 64 MiB.
  const proc = Bun.spawn(["sh", "-c", `echo $$ > ${cgroup}/cgroup.procs && read go && exec dd if=/dev/zero of=/dev/null bs=64M count=1`], { stdin: "pipe", stdout: "ignore", stderr: "ignore" });
  const end = Date.now() + 5000;
  while (!readFileSync(`/proc/${proc.pid}/cgroup`, "utf8").includes("tsrun-oomtest-") && Date.now() < end) await Bun.sleep(10);

  const seen: string[] = [];
  const logs: string[] = [];
  // A state root without records: the runtime is "another one".
  const monitor = new OomMonitor((topic: Topic, event) => seen.push(`${topic} ${(event as { containerId: string }).containerId}`), { stateRoot: () => join(dir, "no-state"), log: (l) => logs.push(l), intervalMs: 50 });
  monitor.publish("/tasks/create", { containerId: "c", bundle: dir, rootfs: [], io: { stdin: "", stdout: "", stderr: "", terminal: false }, checkpoint: "", pid: proc.pid });
  expect(logs).toEqual([]);
  proc.stdin.write("go\n");
  await proc.stdin.end();
  const code = await proc.exited;
  expect(proc.signalCode).toBe("SIGKILL");
  monitor.publish("/tasks/exit", { containerId: "c", id: "c", pid: proc.pid, exitStatus: 137, exitedAt: null });
  monitor.publish("/tasks/delete", { containerId: "c", pid: proc.pid, exitStatus: 137, exitedAt: null, id: "c" });
  monitor.close();
  expect(code).not.toBe(0);
  const ooms = seen.filter((s) => s === "/tasks/oom c").length;
  expect(ooms).toBeGreaterThanOrEqual(1);
  expect(seen.filter((s) => s !== "/tasks/oom c")).toEqual(["/tasks/create c", "/tasks/exit c", "/tasks/delete c"]);
  expect(seen.indexOf("/tasks/exit c")).toBeGreaterThan(seen.indexOf("/tasks/oom c"));
}, 30_000);
