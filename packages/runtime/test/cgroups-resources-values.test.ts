// Pure conversions of linux.resources values (no root, no cgroupfs).
import { describe, expect, test } from "bun:test";
import { blkioToIoWeight, CgroupError, cpuMax, memswFirst, pidsMax, sharesToWeight, swapV2, v1Limit, v2Limit } from "../src/cgroups/index.ts";

describe("cpu.shares → cpu.weight", () => {
  test("ends and default map onto each other", () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(100);
    expect(sharesToWeight(262144)).toBe(10000);
  });
  test("0 is unset, out of range is clamped", () => {
    expect(sharesToWeight(0)).toBe(0);
    expect(sharesToWeight(1)).toBe(1);
    expect(sharesToWeight(1_000_000)).toBe(10000);
  });
  test("monotonic, within 1…10000", () => {
    let last = 0;
    for (let s = 2; s <= 262144; s = Math.ceil(s * 1.3)) {
      const w = sharesToWeight(s);
      expect(w).toBeGreaterThanOrEqual(last);
      expect(w).toBeGreaterThanOrEqual(1);
      expect(w).toBeLessThanOrEqual(10000);
      last = w;
    }
    expect(sharesToWeight(512)).toBe(59);
    expect(sharesToWeight(2048)).toBe(174);
  });
});

test("blkio weight → io.weight is linear over 10…1000 → 1…10000", () => {
  expect(blkioToIoWeight(10)).toBe(1);
  expect(blkioToIoWeight(1000)).toBe(10000);
  expect(blkioToIoWeight(500)).toBe(1 + Math.floor((490 * 9999) / 990));
  expect(blkioToIoWeight(0)).toBe(0);
});

test("-1 is unlimited: \"-1\" on v1, \"max\" on v2", () => {
  expect(v1Limit(-1, "f")).toBe("-1");
  expect(v1Limit(1024, "f")).toBe("1024");
  expect(v2Limit(-1, "f")).toBe("max");
  expect(v2Limit(4096, "f")).toBe("4096");
  expect(v2Limit(2 ** 60, "f")).toBe("1152921504606846976"); // never "1.15e+18"
  expect(() => v2Limit(1.5, "memory.max")).toThrow(CgroupError);
});

test("pids.max: negative is max, 0 is a real limit (runtime-spec 1.2.1)", () => {
  expect(pidsMax(-1)).toBe("max");
  expect(pidsMax(0)).toBe("0");
  expect(pidsMax(100)).toBe("100");
});

describe("memory.swap (memory+swap) → v2 memory.swap.max (swap only)", () => {
  test("swap.max = swap - limit", () => {
    expect(swapV2(256, 768)).toBe("512");
    expect(swapV2(256, 256)).toBe("0");
  });
  test("-1 means unlimited; unlimited memory without swap means unlimited swap", () => {
    expect(swapV2(256, -1)).toBe("max");
    expect(swapV2(-1, undefined)).toBe("max");
    expect(swapV2(-1, -1)).toBe("max");
  });
  test("not set stays not set (0 is runc's \"unset\")", () => {
    expect(swapV2(256, undefined)).toBeUndefined();
    expect(swapV2(undefined, undefined)).toBeUndefined();
    expect(swapV2(256, 0)).toBeUndefined();
  });
  test("impossible combinations are refused", () => {
    expect(() => swapV2(512, 256)).toThrow(/below memory.limit/);
    expect(() => swapV2(undefined, 256)).toThrow(/needs a finite memory.limit/);
    expect(() => swapV2(-1, 256)).toThrow(CgroupError);
  });
});

test("v1 memsw/limit write order: memsw first when raising or unlimited, limit first when lowering", () => {
  const cur = 256n * 1024n * 1024n;
  expect(memswFirst(cur, 1024 * 1024 * 1024)).toBe(true);
  expect(memswFirst(cur, -1)).toBe(true);
  expect(memswFirst(cur, 128 * 1024 * 1024)).toBe(false);
  expect(memswFirst(9223372036854771712n, 128 * 1024 * 1024)).toBe(false);
});

test("cpu.max from quota/period", () => {
  const cur = () => "50000 100000\n";
  expect(cpuMax(20000, 100000, cur)).toBe("20000 100000");
  expect(cpuMax(-1, 100000, cur)).toBe("max 100000");
  expect(cpuMax(20000, undefined, cur)).toBe("20000");
  expect(cpuMax(undefined, 250000, cur)).toBe("50000 250000");
  expect(cpuMax(undefined, undefined, cur)).toBeUndefined();
  expect(cpuMax(0, 0, cur)).toBeUndefined();
});
