// update with real containers: every runc flag and -r (file and stdin), seen from the host (the
// container's cgroup files) and from inside (the container reads its own cgroup through a cgroup
// namespace and writes what it sees to a file); all-or-nothing when the host or the kernel
// refuses a value; the record remembers what is in force; bad input changes nothing.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { mergeResources, parseSize, resourcesFromFlags } from "../src/container/update.ts";

const env = testEnv();
afterEach(() => {
  for (const id of env.tsrun(["list", "-q"]).stdout.split("\n").filter(Boolean)) env.tsrun(["delete", "--force", id]);
});

const SEEN = ["memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes", "memory/memory.soft_limit_in_bytes", "cpu/cpu.shares", "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us", "cpuset/cpuset.cpus", "pids/pids.max"];
/** The container writes what its own cgroup files say, every 20 ms, to /tmp/seen. */
const OBSERVER = ["sh", "-c", `while :; do for f in ${SEEN.join(" ")}; do echo "$f=$(cat /sys/fs/cgroup/$f)"; done > /tmp/seen.new; mv /tmp/seen.new /tmp/seen; sleep 0.02; done`];

function observed(b: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(join(b, "rootfs/tmp/seen"))) return out;
  for (const line of readFileSync(join(b, "rootfs/tmp/seen"), "utf8").trim().split("\n")) {
    const at = line.indexOf("=");
    out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/** Waits until the container has seen `want` (its file is rewritten every 20 ms). */
function seenInside(b: string, want: Record<string, string>): Record<string, string> {
  let got: Record<string, string> = {};
  for (let i = 0; i < 300; i++) {
    got = observed(b);
    if (Object.entries(want).every(([k, v]) => got[k] === v)) break;
    Bun.sleepSync(10);
  }
  return got;
}

function startObserver(id: string): { b: string; dir: (ctl: string) => string } {
  const b = env.bundle(id, (s) => {
    s.process.args = OBSERVER;
    s.root.readonly = false;
    s.linux.namespaces.push({ type: "cgroup" });
    s.mounts.push({ destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "ro"] });
  });
  expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
  const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid;
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const dir = (ctl: string) => {
    const l = lines.find((x) => x.split(":")[1]!.split(",").includes(ctl))!;
    return `/sys/fs/cgroup/${ctl}${l.split(":")[2]}`;
  };
  expect(Object.keys(seenInside(b, { "pids/pids.max": "max" }))).toContain("pids/pids.max");
  return { b, dir };
}

const host = (file: string) => readFileSync(file, "utf8").trim();
const record = (id: string) => JSON.parse(readFileSync(join(env.root, id, "state.json"), "utf8")).config.linux.resources;
const MiB = 1024 * 1024;

describe("update", () => {
  test("memory, swap, reservation, cpu shares/quota/period, cpuset, pids: applied on the host, seen inside, remembered", () => {
    const { b, dir } = startObserver("upd");
    const r = env.tsrun(["update", "--memory", "64m", "--memory-swap", "128M", "--memory-reservation", "32MB", "--cpu-share", "512", "--cpu-quota", "50000", "--cpu-period", "200000", "--cpuset-cpus", "0", "--cpuset-mems", "0", "--pids-limit", "42", "upd"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const mem = dir("memory");
    expect(host(`${mem}/memory.limit_in_bytes`)).toBe(String(64 * MiB));
    expect(host(`${mem}/memory.memsw.limit_in_bytes`)).toBe(String(128 * MiB));
    expect(host(`${mem}/memory.soft_limit_in_bytes`)).toBe(String(32 * MiB));
    expect(host(`${dir("cpu")}/cpu.shares`)).toBe("512");
    expect(host(`${dir("cpu")}/cpu.cfs_quota_us`)).toBe("50000");
    expect(host(`${dir("cpu")}/cpu.cfs_period_us`)).toBe("200000");
    expect(host(`${dir("cpuset")}/cpuset.cpus`)).toBe("0");
    expect(host(`${dir("pids")}/pids.max`)).toBe("42");
    const want = {
      "memory/memory.limit_in_bytes": String(64 * MiB),
      "memory/memory.memsw.limit_in_bytes": String(128 * MiB),
      "memory/memory.soft_limit_in_bytes": String(32 * MiB),
      "cpu/cpu.shares": "512",
      "cpu/cpu.cfs_quota_us": "50000",
      "cpu/cpu.cfs_period_us": "200000",
      "cpuset/cpuset.cpus": "0",
      "pids/pids.max": "42",
    };
    expect(seenInside(b, want)).toMatchObject(want);
    expect(record("upd")).toMatchObject({ memory: { limit: 64 * MiB, swap: 128 * MiB, reservation: 32 * MiB }, cpu: { shares: 512, quota: 50000, period: 200000, cpus: "0", mems: "0" }, pids: { limit: 42 } });

    // A later update changes only what it names; -1 is unlimited.
    expect(env.tsrun(["update", "--pids-limit", "-1", "--memory-swap", "-1", "--memory", "-1", "upd"]).code).toBe(0);
    expect(host(`${dir("pids")}/pids.max`)).toBe("max");
    expect(BigInt(host(`${mem}/memory.limit_in_bytes`))).toBeGreaterThan(1n << 60n);
    expect(host(`${dir("cpu")}/cpu.shares`)).toBe("512");
    expect(record("upd")).toMatchObject({ memory: { limit: -1, swap: -1, reservation: 32 * MiB }, cpu: { shares: 512 }, pids: { limit: -1 } });
    expect(seenInside(b, { "pids/pids.max": "max" })["pids/pids.max"]).toBe("max");
    expect(env.tsrun(["delete", "--force", "upd"]).code).toBe(0);
    expect(leftovers(env, "upd", b)).toEqual([]);
  });

  test("-r FILE and -r - (stdin) take a LinuxResources; the flags are then ignored, devices are not updated", () => {
    const { b, dir } = startObserver("updr");
    const file = join(env.dir, "res.json");
    writeFileSync(file, JSON.stringify({ memory: { limit: 100 * MiB }, cpu: { quota: 30000, period: 100000 }, devices: [{ allow: true, access: "rwm" }] }));
    expect(env.tsrun(["update", "-r", file, "--pids-limit", "9", "updr"]).code).toBe(0);
    expect(host(`${dir("memory")}/memory.limit_in_bytes`)).toBe(String(100 * MiB));
    expect(host(`${dir("cpu")}/cpu.cfs_quota_us`)).toBe("30000");
    expect(host(`${dir("pids")}/pids.max`)).toBe("max");
    // The device allow-list stays the container's own.
    expect(host(`${dir("devices")}/devices.list`)).not.toContain("a *:* rwm");
    expect(record("updr").devices).toEqual([{ allow: false, access: "rwm" }]);
    const stdin = env.tsrun(["update", "-r", "-", "updr"], { stdin: JSON.stringify({ pids: { limit: 17 }, cpu: { shares: 256 } }) });
    expect(stdin.stderr).toBe("");
    expect(host(`${dir("pids")}/pids.max`)).toBe("17");
    expect(host(`${dir("cpu")}/cpu.shares`)).toBe("256");
    expect(seenInside(b, { "pids/pids.max": "17", "cpu/cpu.shares": "256" })).toMatchObject({ "pids/pids.max": "17", "cpu/cpu.shares": "256" });
    expect(record("updr")).toMatchObject({ memory: { limit: 100 * MiB }, cpu: { quota: 30000, period: 100000, shares: 256 }, pids: { limit: 17 } });
    expect(env.tsrun(["delete", "--force", "updr"]).code).toBe(0);
    expect(leftovers(env, "updr", b)).toEqual([]);
  });

  test("real-time budget, and a created or paused container can be updated; kernel memory is ignored with a warning", () => {
    const b = env.bundle("updc", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--bundle", b, "updc"]).code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", "updc"]).stdout).pid;
    const cpuLine = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.split(":")[1]!.split(",").includes("cpu"))!;
    const cpu = `/sys/fs/cgroup/cpu${cpuLine.split(":")[2]}`;
    if (existsSync(`${cpu}/cpu.rt_runtime_us`)) {
      expect(env.tsrun(["update", "--cpu-rt-period", "900000", "--cpu-rt-runtime", "10000", "updc"]).stderr).toBe("");
      expect(host(`${cpu}/cpu.rt_period_us`)).toBe("900000");
      expect(host(`${cpu}/cpu.rt_runtime_us`)).toBe("10000");
    } else {
      expect(env.tsrun(["update", "--cpu-rt-runtime", "10000", "updc"]).stderr).toContain("/linux/resources/cpu/realtimeRuntime");
    }
    expect(env.tsrun(["pause", "updc"]).code).toBe(0);
    const km = env.tsrun(["update", "--kernel-memory", "10M", "--cpu-share", "300", "updc"]);
    expect(km.code).toBe(0);
    expect(km.stderr).toContain("kernel memory settings are ignored");
    expect(host(`${cpu}/cpu.shares`)).toBe("300");
    expect(JSON.parse(env.tsrun(["state", "updc"]).stdout).status).toBe("paused");
    expect(env.tsrun(["delete", "--force", "updc"]).code).toBe(0);
    expect(leftovers(env, "updc", b)).toEqual([]);
  });

  test("all or nothing: a value the kernel or the host refuses leaves every file and the record as they were", () => {
    const { b, dir } = startObserver("upda");
    expect(env.tsrun(["update", "--memory", "80m", "--pids-limit", "50", "upda"]).code).toBe(0);
    const files = [`${dir("memory")}/memory.limit_in_bytes`, `${dir("memory")}/memory.memsw.limit_in_bytes`, `${dir("cpu")}/cpu.shares`, `${dir("cpu")}/cpu.cfs_period_us`, `${dir("pids")}/pids.max`];
    const before = files.map(host);
    const rec = record("upda");
    // memory is written before cpu: the period the kernel refuses must undo the memory limit.
    const period = env.tsrun(["update", "--memory", "60m", "--cpu-share", "700", "--cpu-period", "1", "upda"]);
    expect(period.code).toBe(1);
    expect(period.stderr).toContain("cpu.cfs_period_us: EINVAL");
    expect(files.map(host)).toEqual(before);
    // A limit below what the container uses: EBUSY from the kernel, pids.max (written later) untouched too.
    const tiny = env.tsrun(["update", "--memory", "4k", "--pids-limit", "3", "upda"]);
    expect(tiny.code).toBe(1);
    expect(tiny.stderr).toContain("memory.limit_in_bytes: EBUSY");
    expect(files.map(host)).toEqual(before);
    // Swap below the memory limit is refused before anything is written.
    const swap = env.tsrun(["update", "--memory", "64m", "--memory-swap", "32m", "upda"]);
    expect(swap.code).toBe(1);
    expect(swap.stderr).toContain("must not be below memory.limit");
    expect(files.map(host)).toEqual(before);
    if (!existsSync(`${dir("blkio")}/blkio.weight`) && !existsSync(`${dir("blkio")}/blkio.bfq.weight`)) {
      // No proportional-weight scheduler here: refused by pointer, nothing else applied.
      const w = env.tsrun(["update", "--blkio-weight", "500", "--pids-limit", "5", "upda"]);
      expect(w.code).toBe(1);
      expect(w.stderr).toContain("/linux/resources/blockIO/weight");
      expect(files.map(host)).toEqual(before);
    }
    expect(record("upda")).toEqual(rec);
    expect(env.tsrun(["delete", "--force", "upda"]).code).toBe(0);
    expect(leftovers(env, "upda", b)).toEqual([]);
  });

  test("bad input: each refused with a clear message, nothing changed", () => {
    const { b, dir } = startObserver("updbad");
    const pidsMax = `${dir("pids")}/pids.max`;
    const cases: [string[], string][] = [
      [["--memory", "abc"], "invalid value for memory: invalid size: 'abc'"],
      [["--memory", "-5"], "invalid value for memory: invalid size: '-5'"],
      [["--cpu-share", "x"], "invalid value for cpu-share"],
      [["--cpu-period", "-1"], "invalid value for cpu-period"],
      [["--blkio-weight", "5"], "invalid value for blkio-weight: 5 (the range is 10 to 1000)"],
      [["--l3-cache-schema", "L3:0=f"], "Intel RDT"],
      [["-r", join(env.dir, "nope.json")], "cannot read"],
    ];
    for (const [args, msg] of cases) {
      const r = env.tsrun(["update", ...args, "--pids-limit", "5", "updbad"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(msg);
      expect(host(pidsMax)).toBe("max");
    }
    const nothing = env.tsrun(["update", "--memory", "0", "updbad"]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain("nothing to update");
    const notJson = env.tsrun(["update", "-r", "-", "updbad"], { stdin: "{memory" });
    expect(notJson.stderr).toContain("standard input: not JSON");
    const notObject = env.tsrun(["update", "-r", "-", "updbad"], { stdin: '{"pids": 5}' });
    expect(notObject.stderr).toContain("pids must be an object");
    expect(host(pidsMax)).toBe("max");
    expect(env.tsrun(["update", "--memory", "1m", "nosuch"]).stderr).toContain("container does not exist: nosuch");
    expect(env.tsrun(["kill", "updbad", "KILL"]).code).toBe(0);
    for (let i = 0; i < 300 && JSON.parse(env.tsrun(["state", "updbad"]).stdout).status !== "stopped"; i++) Bun.sleepSync(10);
    const stopped = env.tsrun(["update", "--memory", "64m", "updbad"]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain("container not running");
    expect(env.tsrun(["delete", "updbad"]).code).toBe(0);
    expect(leftovers(env, "updbad", b)).toEqual([]);
  });
});

describe("update's pure parts", () => {
  test("sizes as runc reads them", () => {
    expect(parseSize("memory", "100")).toBe(100);
    expect(parseSize("memory", "1k")).toBe(1024);
    expect(parseSize("memory", "1.5g")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("memory", "64MiB")).toBe(64 * MiB);
    expect(parseSize("memory", "-1")).toBe(-1);
    expect(() => parseSize("memory", "1x")).toThrow("invalid size: '1x'");
  });
  test("flags: 0 and empty leave a value alone, as with runc", () => {
    expect(resourcesFromFlags({ memory: "0", cpuShare: "0", pidsLimit: "0", cpuQuota: "1000" }, () => {})).toEqual({ cpu: { quota: 1000 } });
  });
  test("merge: objects key by key, device lists by major:minor, hugepages by size", () => {
    expect(
      mergeResources(
        { memory: { limit: 1, swap: 2 }, blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 }, { major: 8, minor: 16, rate: 2 }] }, hugepageLimits: [{ pageSize: "2MB", limit: 1 }] },
        { memory: { limit: 3 }, blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 16, rate: 5 }] }, hugepageLimits: [{ pageSize: "1GB", limit: 2 }] },
      ),
    ).toEqual({ memory: { limit: 3, swap: 2 }, blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 }, { major: 8, minor: 16, rate: 5 }] }, hugepageLimits: [{ pageSize: "2MB", limit: 1 }, { pageSize: "1GB", limit: 2 }] });
  });
});
