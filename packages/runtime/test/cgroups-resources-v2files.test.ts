// What the v2 controllers write, checked on plain files standing in for a cgroup2 directory (this
// VM's cgroup2 tree has only hugetlb, so memory, cpu, pids and io cannot be tried for real here).
// Each file starts empty and is written at most once per case, so its content is the one write.

import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { cpuV2 } from "../src/cgroups/v2/cpu.ts";
import { ioV2 } from "../src/cgroups/v2/io.ts";
import { memoryV2 } from "../src/cgroups/v2/memory.ts";
import { pidsV2 } from "../src/cgroups/v2/pids.ts";
import { cpusetV2 } from "../src/cgroups/v2/cpuset.ts";
import type { ResourceController } from "../src/cgroups/index.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Applies `r` with `c` to a fresh directory holding empty `files`; returns what each file got. */
function written(c: ResourceController, files: string[], r: LinuxResources, initial: Record<string, string> = {}): Record<string, string> {
  const dir = mkdtempSync(`${tmpdir()}/tsrun-v2files-`);
  dirs.push(dir);
  for (const f of files) writeFileSync(`${dir}/${f}`, initial[f] ?? "");
  c.apply(dir, r);
  const out: Record<string, string> = {};
  for (const f of files) {
    const text = readFileSync(`${dir}/${f}`, "utf8");
    if (text !== (initial[f] ?? "")) out[f] = text;
  }
  return out;
}

test("memory: max, low, swap.max = swap - limit", () => {
  const files = ["memory.max", "memory.low", "memory.swap.max"];
  expect(written(memoryV2, files, { memory: { limit: 1000, swap: 3000, reservation: 500 } })).toEqual({ "memory.max": "1000", "memory.low": "500", "memory.swap.max": "2000" });
  expect(written(memoryV2, files, { memory: { limit: -1 } })).toEqual({ "memory.max": "max", "memory.swap.max": "max" });
  expect(written(memoryV2, files, { memory: { limit: 1000, swap: -1 } })).toEqual({ "memory.max": "1000", "memory.swap.max": "max" });
  // Without swap accounting, an implied unlimited swap is skipped, not an error.
  expect(written(memoryV2, ["memory.max"], { memory: { limit: -1 } })).toEqual({ "memory.max": "max" });
});

test("cpu: weight from shares, cpu.max, burst, idle", () => {
  const files = ["cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle"];
  expect(written(cpuV2, files, { cpu: { shares: 1024, quota: 20000, period: 100000, burst: 1000, idle: 0 } })).toEqual({ "cpu.weight": "100", "cpu.max": "20000 100000", "cpu.max.burst": "1000", "cpu.idle": "0" });
  expect(written(cpuV2, files, { cpu: { quota: -1 } })).toEqual({ "cpu.max": "max" });
  // A period alone keeps the current quota.
  // (same length as before: a plain file is not truncated by the write, a cgroup file is replaced)
  expect(written(cpuV2, files, { cpu: { period: 250000 } }, { "cpu.max": "30000 100000" })).toEqual({ "cpu.max": "30000 250000" });
});

test("cpuset and pids", () => {
  expect(written(cpusetV2, ["cpuset.cpus", "cpuset.mems"], { cpu: { cpus: "0-1", mems: "0" } })).toEqual({ "cpuset.cpus": "0-1", "cpuset.mems": "0" });
  expect(written(pidsV2, ["pids.max"], { pids: { limit: -1 } })).toEqual({ "pids.max": "max" });
});

test("io: io.weight (converted) without BFQ, io.bfq.weight (as is) with it, io.max keys", () => {
  expect(written(ioV2, ["io.weight"], { blockIO: { weight: 1000 } })).toEqual({ "io.weight": "default 10000" });
  expect(written(ioV2, ["io.weight", "io.bfq.weight"], { blockIO: { weight: 500 } })).toEqual({ "io.bfq.weight": "500" });
  expect(written(ioV2, ["io.max"], { blockIO: { throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 300 }] } })).toEqual({ "io.max": "8:0 wiops=300" });
  expect(written(ioV2, ["io.max"], { blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 16, rate: 0 }] } })).toEqual({ "io.max": "8:16 rbps=max" });
});
