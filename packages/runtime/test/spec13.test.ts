// The runtime-spec 1.3 settings with real containers (root, busybox), observed from inside and
// from the host: process.scheduler, process.ioPriority, linux.personality, linux.memoryPolicy,
// process.execCPUAffinity (exec), linux.intelRdt (refused); bad input leaves nothing behind.
import { afterAll, describe, expect, test } from "bun:test";
import { cpus } from "node:os";
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const started: string[] = [];
// Registered before testEnv()'s own clean-up, which removes the state root: hooks run in order.
afterAll(() => {
  for (const id of started) expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
});
const env = testEnv();
let n = 0;

/** Runs `script` in a fresh container; the container must leave nothing behind. */
function inside(script: string, patch: (s: any) => void): { out: string; err: string; code: number } {
  const id = `s13-${n++}`;
  const bundle = env.bundle(id, (s) => {
    s.process.args = ["sh", "-c", script];
    patch(s);
  });
  const r = env.tsrun(["run", "--bundle", bundle, id]);
  expect(leftovers(env, id, bundle)).toEqual([]);
  return { out: r.stdout, err: r.stderr, code: r.code };
}

// /proc/<pid>/stat fields 40 (rt_priority) and 41 (policy); the comm field has no space here.
const SCHED = "cut -d' ' -f40,41 /proc/self/stat";

describe("scheduler, I/O priority, personality, memory policy", () => {
  test("all four at once, as seen by the program", () => {
    const r = inside(`${SCHED}; cut -d' ' -f19 /proc/self/stat; ionice -p $$; uname -m; grep -m1 -o 'bind:[0-9,-]*' /proc/self/numa_maps`, (s) => {
      s.process.scheduler = { policy: "SCHED_BATCH", nice: 5 };
      s.process.ioPriority = { class: "IOPRIO_CLASS_IDLE", priority: 0 };
      s.linux.personality = { domain: "LINUX32" };
      s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "0" };
    });
    expect(r.err).toBe("");
    // SCHED_BATCH is 3, nice 5 (field 19); busybox's ionice names the class; LINUX32 reports
    // i686 on x86_64; every mapping follows the process's bind policy
    expect(r.out).toBe(`0 3\n5\nidle\n${process.arch === "x64" ? "i686" : "armv8l"}\nbind:0\n`);
  });

  test("SCHED_FIFO with real-time runtime for the cgroup, and the real-time I/O class", () => {
    const r = inside(`${SCHED}; ionice -p $$`, (s) => {
      s.process.scheduler = { policy: "SCHED_FIFO", priority: 10 };
      s.process.ioPriority = { class: "IOPRIO_CLASS_RT", priority: 3 };
      s.linux.resources = { cpu: { realtimeRuntime: 10000, realtimePeriod: 1000000 } };
    });
    expect(r.err).toBe("");
    expect(r.out).toBe("10 1\nrealtime: prio 3\n");
  });

  test("without the default settings the program keeps SCHED_OTHER, best-effort I/O and its machine", () => {
    const r = inside(`${SCHED}; uname -m; grep -m1 -c 'bind:' /proc/self/numa_maps`, () => {});
    expect(r.out).toBe(`0 0\n${process.arch === "x64" ? "x86_64" : "aarch64"}\n0\n`);
  });

  test("a setting the kernel refuses fails create with what was being set, and leaves nothing", () => {
    // In a cpu cgroup without real-time runtime (cgroup v1, RT group scheduling) FIFO is EPERM;
    // node 7 does not exist here (EINVAL).
    const fifo = inside("true", (s) => (s.process.scheduler = { policy: "SCHED_FIFO", priority: 10 }));
    expect(fifo.code).not.toBe(0);
    expect(fifo.err).toContain("set the scheduler (/process/scheduler: sched_setattr SCHED_FIFO priority 10");
    expect(fifo.err).toContain("EPERM");
    const node = inside("true", (s) => (s.linux.memoryPolicy = { mode: "MPOL_BIND", nodes: "7" }));
    expect(node.code).not.toBe(0);
    expect(node.err).toContain("set the memory policy (/linux/memoryPolicy: set_mempolicy MPOL_BIND nodes 7)");
    expect(node.err).toContain("EINVAL");
  });

  test("bad values are refused by pointer before anything is made", () => {
    const cases: [string, (s: any) => void][] = [
      ["/process/scheduler/priority", (s) => (s.process.scheduler = { policy: "SCHED_RR", priority: 0 })],
      ["/process/ioPriority/priority", (s) => (s.process.ioPriority = { class: "IOPRIO_CLASS_BE", priority: 9 })],
      ["/linux/personality/flags", (s) => (s.linux.personality = { domain: "LINUX", flags: ["X"] })],
      ["/linux/memoryPolicy/nodes", (s) => (s.linux.memoryPolicy = { mode: "MPOL_INTERLEAVE" })],
      ["/linux/intelRdt", (s) => (s.linux.intelRdt = { closID: "c1", l3CacheSchema: "L3:0=ff" })],
    ];
    for (const [pointer, patch] of cases) {
      const r = inside("true", patch);
      expect(r.code).not.toBe(0);
      expect(r.err).toContain(pointer);
    }
  });
});

describe("execCPUAffinity (exec only)", () => {
  const id = "s13-aff";
  const twoCpus = cpus().length >= 2;

  // Both CPUs are used: on a one-CPU host these tests fail visibly rather than skip.
  test("these tests need two CPUs", () => expect(twoCpus).toBe(true));
  test("final: the exec'd process runs on the listed CPUs; the init is untouched", () => {
    const b = env.bundle(id, (s) => {
      s.process.args = ["sleep", "300"];
      s.process.execCPUAffinity = { final: "1" };
    });
    const r = env.tsrun(["run", "-d", "--bundle", b, id]);
    expect(r.stderr).toBe("");
    started.push(id);
    const all = `0-${cpus().length - 1}`;
    expect(env.tsrun(["exec", id, "grep", "Cpus_allowed_list", "/proc/1/status"]).stdout).toBe(`Cpus_allowed_list:\t${all}\n`);
    const file = join(env.dir, "aff.json");
    const proc = (aff: object) => writeFileSync(file, JSON.stringify({ args: ["grep", "Cpus_allowed_list", "/proc/self/status"], cwd: "/", user: { uid: 0, gid: 0 }, execCPUAffinity: aff }));
    proc({ initial: "0", final: "1" });
    expect(env.tsrun(["exec", "-p", file, id]).stdout).toBe("Cpus_allowed_list:\t1\n");
    proc({ final: "0" });
    expect(env.tsrun(["exec", "-p", file, id]).stdout).toBe("Cpus_allowed_list:\t0\n");
    // initial only: after the move into the cgroups the affinity is reset to the cpuset
    proc({ initial: "1" });
    expect(env.tsrun(["exec", "-p", file, id]).stdout).toBe(`Cpus_allowed_list:\t${all}\n`);
  });

  test("a tsrun started on fewer CPUs (taskset) does not hand its affinity on: the init and an exec get their cpuset's", () => {
    const all = `0-${cpus().length - 1}`;
    // Output to a file: a detached container keeps its stdio, a pipe would never end.
    const outFile = join(env.dir, "aff-taskset.out");
    const errFile = join(env.dir, "aff-taskset.err");
    const onCpu0 = (args: string[]) => {
      const [out, err] = [openSync(outFile, "w"), openSync(errFile, "w")];
      try {
        const r = Bun.spawnSync(["taskset", "-c", "0", TSRUN, "--root", env.root, ...args], { stdin: "ignore", stdout: out, stderr: err });
        return { code: r.exitCode, out: readFileSync(outFile, "utf8"), err: readFileSync(errFile, "utf8") };
      } finally {
        closeSync(out);
        closeSync(err);
      }
    };
    const status = ["grep", "Cpus_allowed_list", "/proc/self/status"];
    for (const [sub, cpuset, want] of [["all", undefined, all], ["cpu1", "1", "1"]] as const) {
      const one = `s13-aff-${sub}`;
      const b = env.bundle(one, (s) => {
        s.process.args = ["sleep", "300"];
        if (cpuset) s.linux.resources = { cpu: { cpus: cpuset, mems: "0" } };
      });
      const r = onCpu0(["run", "-d", "--bundle", b, one]);
      expect(r.err).toBe("");
      started.push(one);
      const pid = JSON.parse(env.tsrun(["state", one]).stdout).pid as number;
      expect(readFileSync(`/proc/${pid}/status`, "utf8").match(/^Cpus_allowed_list:\s+(\S+)$/m)?.[1]).toBe(want);
      expect(onCpu0(["exec", one, ...status]).out).toBe(`Cpus_allowed_list:\t${want}\n`);
    }
  });

  test("a CPU that does not exist fails the exec with the step named, at either stage", () => {
    const id = "s13-aff-bad";
    const r0 = env.tsrun(["run", "-d", "--bundle", env.bundle(id, (s) => (s.process.args = ["sleep", "300"])), id]);
    expect(r0.stderr).toBe("");
    started.push(id);
    const file = join(env.dir, "bad-aff.json");
    for (const which of ["initial", "final"] as const) {
      writeFileSync(file, JSON.stringify({ args: ["true"], cwd: "/", user: { uid: 0, gid: 0 }, execCPUAffinity: { [which]: "4000" } }));
      const r = env.tsrun(["exec", "-p", file, id]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`/process/execCPUAffinity/${which}: CPUs 4000`);
      expect(r.stderr).toContain("EINVAL");
    }
    // nothing of the failed execs is left in the container: its init alone
    const inCgroup = readdirSync("/proc").filter((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cgroup`, "utf8").includes(`/${id}\n`);
      } catch {
        return false;
      }
    });
    expect(inCgroup).toEqual([String(JSON.parse(env.tsrun(["state", id]).stdout).pid)]);
  });
});

describe("netDevices", () => {
  const ipLink = (...args: string[]) => Bun.spawnSync(["ip", "link", ...args], { stdout: "pipe", stderr: "pipe" });
  /** A veth pair made for the test (this kernel has no dummy driver) and removed after it. */
  function withVeth(host: string, moved: string, body: () => void): void {
    expect(ipLink("add", host, "type", "veth", "peer", "name", moved).success).toBe(true);
    try {
      expect(Bun.spawnSync(["ip", "addr", "add", "10.211.7.2/24", "dev", moved]).success).toBe(true);
      body();
    } finally {
      ipLink("del", host);
      ipLink("del", moved);
    }
  }

  test("a host device is moved in, renamed, with its address, up; deleting the container destroys a virtual one", () => {
    withVeth("ts13-h0", "ts13-c0", () => {
      const r = inside("ip addr show dev eth1; ls /sys/class/net | tr '\\n' ' '", (s) => (s.linux.netDevices = { "ts13-c0": { name: "eth1" } }));
      expect(r.err).toBe("");
      expect(r.out).toContain("inet 10.211.7.2/24");
      expect(r.out).toMatch(/eth1@\w+: <[^>]*\bUP\b/);
      expect(r.out).toContain("eth1 lo");
      // the namespace died with the container: the kernel destroyed the veth pair (the spec
      // forbids moving it out first; a physical device would have come back to the host)
      // (the kernel cleans a dead namespace up asynchronously)
      for (let i = 0; i < 100 && ipLink("show", "ts13-h0").success; i++) Bun.sleepSync(50);
      expect(ipLink("show", "ts13-c0").success).toBe(false);
      expect(ipLink("show", "ts13-h0").success).toBe(false);
    });
  });

  test("a missing host device, or a name taken in the container, fails create by pointer and leaves nothing", () => {
    const missing = inside("true", (s) => (s.linux.netDevices = { "ts13-none": {} }));
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain("/linux/netDevices/ts13-none: no network device ts13-none on the host");
    withVeth("ts13-h1", "ts13-c1", () => {
      const taken = inside("true", (s) => (s.linux.netDevices = { "ts13-c1": { name: "lo" } }));
      expect(taken.code).not.toBe(0);
      expect(taken.err).toContain("/linux/netDevices/ts13-c1/name: lo already exists in the container's network namespace");
      // not moved: still the host's
      expect(ipLink("show", "ts13-c1").success).toBe(true);
    });
  });
});
