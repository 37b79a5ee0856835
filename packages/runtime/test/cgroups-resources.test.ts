// applyResources / unsupportedResources against the real kernel, as root, on this VM's hybrid
// layout: the v1 controllers do the work in the default (hybrid) mode, and a manager forced to
// "v2" uses the cgroup2 tree, which here offers only hugetlb. Every cgroup lives below one
// test-unique top-level directory per hierarchy, removed in afterAll by the test's own code.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { applyResources, CgroupError, cgroupManager, detect, unsupportedResourceReasons, unsupportedResources, UNIFIED, type CgroupManager, type CgroupMode } from "../src/cgroups/index.ts";

const TOP = `/tsrun-res-${process.pid}-${Date.now().toString(36)}`;
const isRoot = process.getuid?.() === 0;
const hybrid = isRoot && (() => {
  try {
    return detect().mode === "hybrid";
  } catch {
    return false;
  }
})();

afterAll(() => {
  if (!isRoot) return;
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => / - cgroup2? /.test(l)).map((l) => l.split(" ")[4]!);
  for (const m of mounts) {
    const dirs: string[] = [];
    const walk = (d: string) => {
      if (!existsSync(d)) return;
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(`${d}/${e.name}`);
    };
    walk(m + TOP);
    for (const d of dirs.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // best effort: no process is ever put in these cgroups
      }
    }
  }
});

let seq = 0;
const made: CgroupManager[] = [];
function manager(mode?: CgroupMode): CgroupManager {
  const m = cgroupManager({ id: "unused", cgroupsPath: `${TOP}/c${++seq}`, mode });
  made.push(m);
  return m;
}
function created(mode?: CgroupMode): CgroupManager {
  const m = manager(mode);
  m.create();
  return m;
}
const read = (m: CgroupManager, ctrl: string, file: string) => readFileSync(`${m.paths()[ctrl]}/${file}`, "utf8").trim();
const MiB = 1024 * 1024;
const UNLIMITED = "9223372036854771712"; // v1's "-1", page-aligned LONG_MAX

function thrown(f: () => void): CgroupError {
  try {
    f();
  } catch (err) {
    if (err instanceof CgroupError) return err;
    throw err;
  }
  throw new Error("did not throw");
}

test("these tests need root on a hybrid cgroup host", () => expect(hybrid).toBe(true));

describe("v1 controllers (hybrid host, default mode)", () => {
  test("memory: limit, swap (memsw total), reservation, swappiness, OOM killer; kernel ignored with a warning", () => {
    const m = created();
    const warnings: string[] = [];
    const r: LinuxResources = { memory: { limit: 256 * MiB, swap: 512 * MiB, reservation: 128 * MiB, swappiness: 10, disableOOMKiller: true, kernel: 64 * MiB, useHierarchy: true, checkBeforeUpdate: true } };
    expect(unsupportedResources(m, r)).toEqual([]);
    applyResources(m, r, { warn: (w) => warnings.push(w) });
    expect(read(m, "memory", "memory.limit_in_bytes")).toBe(String(256 * MiB));
    expect(read(m, "memory", "memory.memsw.limit_in_bytes")).toBe(String(512 * MiB));
    expect(read(m, "memory", "memory.soft_limit_in_bytes")).toBe(String(128 * MiB));
    expect(read(m, "memory", "memory.swappiness")).toBe("10");
    expect(read(m, "memory", "memory.oom_control")).toContain("oom_kill_disable 1");
    expect(read(m, "memory", "memory.use_hierarchy")).toBe("1");
    expect(warnings).toEqual([expect.stringContaining("/linux/resources/memory/kernel is ignored")]);
  });

  test("memory: lowering and raising both limits works in either direction (write order)", () => {
    const m = created();
    applyResources(m, { memory: { limit: 256 * MiB, swap: 512 * MiB } });
    // Lowering: memsw 96M is below the current limit 256M, so the limit must go first.
    applyResources(m, { memory: { limit: 64 * MiB, swap: 96 * MiB } });
    expect(read(m, "memory", "memory.limit_in_bytes")).toBe(String(64 * MiB));
    expect(read(m, "memory", "memory.memsw.limit_in_bytes")).toBe(String(96 * MiB));
    // Raising: a limit of 1G is above the current memsw 96M, so memsw must go first.
    applyResources(m, { memory: { limit: 1024 * MiB, swap: 2048 * MiB } });
    expect(read(m, "memory", "memory.limit_in_bytes")).toBe(String(1024 * MiB));
    expect(read(m, "memory", "memory.memsw.limit_in_bytes")).toBe(String(2048 * MiB));
    // -1 alone: both unlimited.
    applyResources(m, { memory: { limit: -1 } });
    expect(read(m, "memory", "memory.limit_in_bytes")).toBe(UNLIMITED);
    expect(read(m, "memory", "memory.memsw.limit_in_bytes")).toBe(UNLIMITED);
  });

  test("memory: swap below limit and bad swappiness are refused naming the file and value", () => {
    const m = created();
    const e = thrown(() => applyResources(m, { memory: { limit: 512 * MiB, swap: 256 * MiB } }));
    expect(e.code).toBe("EINVAL");
    expect(e.path).toEndWith("/memory.memsw.limit_in_bytes");
    expect(e.message).toContain(String(256 * MiB));
    expect(read(m, "memory", "memory.limit_in_bytes")).toBe(UNLIMITED); // nothing written
    expect(thrown(() => applyResources(m, { memory: { swappiness: 101 } })).path).toEndWith("/memory.swappiness");
  });

  test("cpu: shares, quota, period, burst; cpuset cpus and mems", () => {
    const m = created();
    const r: LinuxResources = { cpu: { shares: 512, quota: 50000, period: 200000, burst: 10000, cpus: "0", mems: "0" } };
    expect(unsupportedResources(m, r)).toEqual([]);
    applyResources(m, r);
    expect(read(m, "cpu", "cpu.shares")).toBe("512");
    expect(read(m, "cpu", "cpu.cfs_quota_us")).toBe("50000");
    expect(read(m, "cpu", "cpu.cfs_period_us")).toBe("200000");
    expect(read(m, "cpu", "cpu.cfs_burst_us")).toBe("10000");
    expect(read(m, "cpuset", "cpuset.cpus")).toBe("0");
    expect(read(m, "cpuset", "cpuset.mems")).toBe("0");
    // Lowering the quota below the current burst: burst is retried after the quota.
    applyResources(m, { cpu: { quota: 5000, burst: 2000 } });
    expect(read(m, "cpu", "cpu.cfs_quota_us")).toBe("5000");
    expect(read(m, "cpu", "cpu.cfs_burst_us")).toBe("2000");
    applyResources(m, { cpu: { quota: -1 } });
    expect(read(m, "cpu", "cpu.cfs_quota_us")).toBe("-1");
  });

  test("cpu: idle", () => {
    const m = created();
    applyResources(m, { cpu: { idle: 1 } });
    expect(read(m, "cpu", "cpu.idle")).toBe("1");
  });

  test("cpu: shares the kernel would clamp are refused, not silently changed", () => {
    const m = created();
    const e = thrown(() => applyResources(m, { cpu: { shares: 1 } }));
    expect(e.code).toBe("EINVAL");
    expect(e.path).toEndWith("/cpu.shares");
    expect(e.message).toContain("the kernel set 2");
  });

  test("pids: limit, -1 → max, 0 is a real limit", () => {
    const m = created();
    applyResources(m, { pids: { limit: 100 } });
    expect(read(m, "pids", "pids.max")).toBe("100");
    applyResources(m, { pids: { limit: -1 } });
    expect(read(m, "pids", "pids.max")).toBe("max");
    applyResources(m, { pids: { limit: 0 } });
    expect(read(m, "pids", "pids.max")).toBe("0");
  });

  test("blkio: weight (where the host has a weight file) and throttling", () => {
    const m = created();
    const dir = m.paths().blkio!;
    const r: LinuxResources = { blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1048576 }], throttleWriteIOPSDevice: [{ major: 254, minor: 0, rate: 300 }] } };
    const weightFile = ["blkio.weight", "blkio.bfq.weight"].find((f) => existsSync(`${dir}/${f}`));
    if (weightFile === undefined) {
      expect(unsupportedResources(m, r)).toEqual(["/linux/resources/blockIO/weight"]);
      return;
    }
    expect(unsupportedResources(m, r)).toEqual([]);
    applyResources(m, r);
    expect(read(m, "blkio", weightFile)).toMatch(/^(default )?500$/);
    expect(read(m, "blkio", "blkio.throttle.read_bps_device")).toBe("254:0 1048576");
    expect(read(m, "blkio", "blkio.throttle.write_iops_device")).toBe("254:0 300");
  });

  test("null and absent settings are not requested", () => {
    const m = created();
    const r = { memory: { limit: null, swap: undefined }, cpu: null, hugepageLimits: [], network: {}, unified: {}, pids: { limit: null } } as unknown as LinuxResources;
    expect(unsupportedResources(m, r)).toEqual([]);
    applyResources(m, r);
    expect(read(m, "pids", "pids.max")).toBe("max");
  });

  test("unsupportedResources: no hugetlb, net_cls, net_prio or rdma hierarchy here; no leaf weights; unified is v2-only", () => {
    const r: LinuxResources = {
      memory: { limit: 64 * MiB },
      hugepageLimits: [{ pageSize: "2MB", limit: 4 * MiB }, { pageSize: "1GB", limit: 0 }],
      network: { classID: 0x100001, priorities: [{ name: "lo", priority: 5 }] },
      rdma: { mlx5_1: { hcaHandles: 3 } },
      blockIO: { leafWeight: 300 },
      unified: { "memory.high": "1G" },
    };
    const expected = [
      "/linux/resources/blockIO/leafWeight",
      "/linux/resources/hugepageLimits/0",
      "/linux/resources/hugepageLimits/1",
      "/linux/resources/network/classID",
      "/linux/resources/network/priorities/0",
      "/linux/resources/rdma/mlx5_1",
      "/linux/resources/unified/memory.high",
    ];
    // Before create() (judged from the parents) and after it (exact).
    const m = manager();
    expect(unsupportedResources(m, r).sort()).toEqual(expected);
    m.create();
    expect(unsupportedResources(m, r).sort()).toEqual(expected);
    const reasons = unsupportedResourceReasons(m, r);
    expect(reasons.find((u) => u.pointer === "/linux/resources/hugepageLimits/0")!.reason).toContain("hugetlb controller is not mounted");
    expect(reasons.find((u) => u.pointer === "/linux/resources/unified/memory.high")!.reason).toContain("needs cgroup v2");
    // A child of a hierarchical memory cgroup cannot be made flat.
    expect(unsupportedResources(m, { memory: { useHierarchy: false } })).toEqual(["/linux/resources/memory/useHierarchy"]);
    // applyResources refuses up front and writes nothing.
    const e = thrown(() => applyResources(m, r));
    expect(e.code).toBe("EOPNOTSUPP");
    expect(e.message).toContain("/linux/resources/network/classID");
    expect(read(m, "memory", "memory.limit_in_bytes")).toBe(UNLIMITED);
  });
});

describe("v2 mode (the cgroup2 tree: only hugetlb here)", () => {
  const r: LinuxResources = {
    memory: { limit: 64 * MiB, swap: 128 * MiB, swappiness: 10 },
    cpu: { shares: 1024, quota: 10000, period: 100000, cpus: "0" },
    pids: { limit: 10 },
    blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1 }] },
    hugepageLimits: [{ pageSize: "2MB", limit: 8 * MiB }],
    network: { classID: 1 },
    unified: { "hugetlb.1GB.max": "0", "memory.high": "1G", "../escape": "1" },
  };
  const absent = [
    "/linux/resources/blockIO/throttleReadBpsDevice/0",
    "/linux/resources/blockIO/weight",
    "/linux/resources/cpu/cpus",
    "/linux/resources/cpu/period",
    "/linux/resources/cpu/quota",
    "/linux/resources/cpu/shares",
    "/linux/resources/memory/limit",
    "/linux/resources/memory/swap",
    "/linux/resources/memory/swappiness",
    "/linux/resources/network/classID",
    "/linux/resources/pids/limit",
    "/linux/resources/unified/..~1escape",
    "/linux/resources/unified/memory.high",
  ];

  test("controllers not in the cgroup2 tree, v1-only settings and bad unified keys are listed", () => {
    const m = manager("v2");
    expect(unsupportedResources(m, r).sort()).toEqual(absent);
    m.create();
    expect(Object.keys(m.paths())).toEqual([UNIFIED]);
    expect(unsupportedResources(m, r).sort()).toEqual(absent);
    const reasons = unsupportedResourceReasons(m, r);
    expect(reasons.find((u) => u.pointer === "/linux/resources/memory/limit")!.reason).toContain("cgroup2 memory controller is not available");
    expect(reasons.find((u) => u.pointer === "/linux/resources/network/classID")!.reason).toContain("no net_cls");
  });

  test("hugetlb and unified are applied", () => {
    const m = created("v2");
    const ok: LinuxResources = { hugepageLimits: [{ pageSize: "2MB", limit: 8 * MiB }], unified: { "hugetlb.1GB.max": "0" } };
    expect(unsupportedResources(m, ok)).toEqual([]);
    applyResources(m, ok);
    expect(read(m, UNIFIED, "hugetlb.2MB.max")).toBe(String(8 * MiB));
    expect(read(m, UNIFIED, "hugetlb.2MB.rsvd.max")).toBe(String(8 * MiB));
    expect(read(m, UNIFIED, "hugetlb.1GB.max")).toBe("0");
    // A value the kernel refuses: a CgroupError naming the file, the value and the errno.
    const e = thrown(() => applyResources(m, { unified: { "hugetlb.2MB.max": "lots" } }));
    expect(e.code).toBe("EINVAL");
    expect(e.path).toEndWith("/hugetlb.2MB.max");
    expect(e.message).toContain('"lots"');
  });

  test("everything else is refused up front", () => {
    const m = created("v2");
    const before = read(m, UNIFIED, "hugetlb.2MB.max");
    const e = thrown(() => applyResources(m, r));
    expect(e.code).toBe("EOPNOTSUPP");
    expect(e.message).toContain("/linux/resources/memory/limit (the cgroup2 memory controller is not available");
    expect(read(m, UNIFIED, "hugetlb.2MB.max")).toBe(before); // nothing written
    expect(before).not.toBe(String(8 * MiB));
  });
});

test("applyResources before create() is refused", () => {
  const m = manager();
  expect(thrown(() => applyResources(m, { pids: { limit: 1 } })).code).toBe("ENOENT");
});
