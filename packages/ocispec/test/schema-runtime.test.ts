// Schema tests for the OCI runtime-spec 1.3.0 documents (config.json, state, features).
// Fixtures live in fixtures/runtime/{good,bad}; each is {kind, doc} and bad ones add `expect`,
// the JSON pointers that must be among the reported problems.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { schemaProblems } from "../src/validators.ts";
import type { Problem } from "../src/problem.ts";

type Kind = "config" | "state" | "features";
interface Fixture {
  file: string;
  about?: string;
  kind: Kind;
  expect?: string[];
  doc: unknown;
}

const fixtureRoot = join(import.meta.dir, "fixtures/runtime");
const kinds: readonly Kind[] = ["config", "state", "features"];

function load(dir: "good" | "bad"): Fixture[] {
  const base = join(fixtureRoot, dir);
  return readdirSync(base)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => {
      const raw = JSON.parse(readFileSync(join(base, file), "utf8")) as Omit<Fixture, "file">;
      return { file, ...raw };
    });
}

const good = load("good");
const bad = load("bad");

/** Values found at `pointer` in `doc`, where a "*" token matches every array element or map entry. */
function valuesAt(doc: unknown, pointer: string): unknown[] {
  let cur: unknown[] = [doc];
  for (const token of pointer.split("/").slice(1)) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (v === null || typeof v !== "object") continue;
      if (token === "*") next.push(...Object.values(v as object));
      else if (token in (v as object)) next.push((v as Record<string, unknown>)[token]);
    }
    cur = next;
  }
  return cur;
}

function pointers(problems: Problem[]): string[] {
  return problems.map((p) => p.pointer);
}

/** Two pointers are related when one is the other or lies below it. */
function related(a: string, b: string): boolean {
  return a === b || a.startsWith(b + "/") || b.startsWith(a + "/");
}

const JSON_POINTER = /^(\/([^~/]|~[01])*)*$/;

describe("fixture files", () => {
  test("are present and well formed", () => {
    expect(good.length).toBeGreaterThanOrEqual(40);
    expect(bad.length).toBeGreaterThanOrEqual(40);
    for (const f of [...good, ...bad]) {
      expect(kinds).toContain(f.kind);
      expect(f).toHaveProperty("doc");
    }
    for (const f of bad) {
      expect(Array.isArray(f.expect) && f.expect.length > 0).toBe(true);
      for (const p of f.expect!) expect(p).toMatch(JSON_POINTER);
    }
    for (const k of kinds) {
      expect(good.some((f) => f.kind === k)).toBe(true);
      expect(bad.some((f) => f.kind === k)).toBe(true);
    }
  });
});

describe("good runtime fixtures have no schema problems", () => {
  for (const f of good) {
    test(`${f.file}`, () => {
      expect(schemaProblems(f.kind, f.doc)).toEqual([]);
    });
  }
});

describe("bad runtime fixtures report the expected pointers", () => {
  for (const f of bad) {
    test(`${f.file}`, () => {
      const problems = schemaProblems(f.kind, f.doc);
      expect(problems.length).toBeGreaterThan(0);
      const got = pointers(problems);
      for (const want of f.expect!) expect(got).toContain(want);
      // Nothing else in the document may be flagged: a problem that no expectation accounts
      // for means the fixture is wrong somewhere it was not meant to be.
      for (const p of problems) {
        expect(p.pointer).toMatch(JSON_POINTER);
        expect(p.message.length).toBeGreaterThan(0);
        const explained = f.expect!.some((want) => related(p.pointer, want));
        if (!explained) throw new Error(`${f.file}: unexpected problem ${p.pointer}: ${p.message}`);
      }
    });
  }
});

describe("every config section is covered by a good and a bad fixture", () => {
  // "*" stands for any array index or map key.
  const sections = [
    "/ociVersion",
    "/root",
    "/root/path",
    "/root/readonly",
    "/hostname",
    "/domainname",
    "/annotations",
    "/mounts",
    "/mounts/*/destination",
    "/mounts/*/source",
    "/mounts/*/type",
    "/mounts/*/options",
    "/mounts/*/uidMappings",
    "/mounts/*/gidMappings",
    "/process",
    "/process/terminal",
    "/process/consoleSize",
    "/process/cwd",
    "/process/env",
    "/process/args",
    "/process/commandLine",
    "/process/rlimits",
    "/process/apparmorProfile",
    "/process/capabilities",
    "/process/capabilities/effective",
    "/process/capabilities/bounding",
    "/process/capabilities/inheritable",
    "/process/capabilities/permitted",
    "/process/capabilities/ambient",
    "/process/noNewPrivileges",
    "/process/oomScoreAdj",
    "/process/scheduler",
    "/process/scheduler/policy",
    "/process/scheduler/nice",
    "/process/scheduler/priority",
    "/process/scheduler/flags",
    "/process/scheduler/runtime",
    "/process/scheduler/deadline",
    "/process/scheduler/period",
    "/process/selinuxLabel",
    "/process/ioPriority",
    "/process/execCPUAffinity",
    "/process/user",
    "/process/user/uid",
    "/process/user/gid",
    "/process/user/umask",
    "/process/user/additionalGids",
    "/process/user/username",
    "/hooks",
    "/hooks/prestart",
    "/hooks/createRuntime",
    "/hooks/createContainer",
    "/hooks/startContainer",
    "/hooks/poststart",
    "/hooks/poststop",
    "/linux",
    "/linux/namespaces",
    "/linux/uidMappings",
    "/linux/gidMappings",
    "/linux/timeOffsets",
    "/linux/devices",
    "/linux/netDevices",
    "/linux/cgroupsPath",
    "/linux/rootfsPropagation",
    "/linux/resources",
    "/linux/resources/devices",
    "/linux/resources/memory",
    "/linux/resources/cpu",
    "/linux/resources/blockIO",
    "/linux/resources/blockIO/weightDevice",
    "/linux/resources/blockIO/throttleReadBpsDevice",
    "/linux/resources/blockIO/throttleWriteBpsDevice",
    "/linux/resources/blockIO/throttleReadIOPSDevice",
    "/linux/resources/blockIO/throttleWriteIOPSDevice",
    "/linux/resources/hugepageLimits",
    "/linux/resources/network",
    "/linux/resources/pids",
    "/linux/resources/rdma",
    "/linux/resources/unified",
    "/linux/intelRdt",
    "/linux/sysctl",
    "/linux/seccomp",
    "/linux/seccomp/syscalls",
    "/linux/seccomp/syscalls/*/args",
    "/linux/personality",
    "/linux/maskedPaths",
    "/linux/readonlyPaths",
    "/linux/mountLabel",
    "/linux/memoryPolicy",
    "/windows",
    "/solaris",
    "/vm",
    "/zos",
    "/freebsd",
  ];
  const goodConfigs = good.filter((f) => f.kind === "config");
  const badConfigs = bad.filter((f) => f.kind === "config");
  const matches = (pattern: string, pointer: string) => {
    const a = pattern.split("/");
    const b = pointer.split("/");
    return b.length >= a.length && a.every((t, i) => t === "*" || t === b[i]);
  };
  for (const s of sections) {
    test(s, () => {
      expect(goodConfigs.some((f) => valuesAt(f.doc, s).length > 0)).toBe(true);
      expect(badConfigs.some((f) => f.expect!.some((p) => matches(s, p)))).toBe(true);
    });
  }
});

function config(patch: Record<string, unknown>): Record<string, unknown> {
  return { ociVersion: "1.3.0", ...patch };
}

describe("closed sets accept exactly the values of runtime-spec 1.3.0", () => {
  const cases: Array<[string, readonly string[], (v: string) => unknown, string]> = [
    [
      "namespace types",
      ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"],
      (v) => config({ linux: { namespaces: [{ type: v }] } }),
      "/linux/namespaces/0/type",
    ],
    [
      "seccomp actions",
      [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
      ],
      (v) => config({ linux: { seccomp: { defaultAction: v } } }),
      "/linux/seccomp/defaultAction",
    ],
    [
      "seccomp operators",
      ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
      (v) =>
        config({
          linux: { seccomp: { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, op: v }] }] } },
        }),
      "/linux/seccomp/syscalls/0/args/0/op",
    ],
    [
      "seccomp flags",
      ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
      (v) => config({ linux: { seccomp: { defaultAction: "SCMP_ACT_ALLOW", flags: [v] } } }),
      "/linux/seccomp/flags/0",
    ],
    [
      "scheduler policies",
      ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"],
      (v) => config({ process: { cwd: "/", scheduler: { policy: v } } }),
      "/process/scheduler/policy",
    ],
    [
      "I/O priority classes",
      ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"],
      (v) => config({ process: { cwd: "/", ioPriority: { class: v, priority: 0 } } }),
      "/process/ioPriority/class",
    ],
    ["device types", ["c", "b", "u", "p"], (v) => config({ linux: { devices: [{ type: v, path: "/dev/x", major: 1, minor: 1 }] } }), "/linux/devices/0/type"],
    [
      "device cgroup types",
      ["a", "c", "b"],
      (v) => config({ linux: { resources: { devices: [{ allow: true, type: v }] } } }),
      "/linux/resources/devices/0/type",
    ],
    [
      "memory policy modes",
      ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
      (v) => config({ linux: { memoryPolicy: { mode: v } } }),
      "/linux/memoryPolicy/mode",
    ],
    ["personality domains", ["LINUX", "LINUX32"], (v) => config({ linux: { personality: { domain: v } } }), "/linux/personality/domain"],
    [
      "state status",
      ["creating", "created", "running", "stopped", "paused"],
      (v) => ({ ociVersion: "1.3.0", id: "x", status: v, bundle: "/b" }),
      "/status",
    ],
  ];
  for (const [name, values, make, pointer] of cases) {
    const kind: Kind = pointer === "/status" ? "state" : "config";
    test(name, () => {
      for (const v of values) expect(schemaProblems(kind, make(v))).toEqual([]);
      for (const v of ["", "bogus", values[0]!.toLowerCase() + "_x"]) expect(pointers(schemaProblems(kind, make(v)))).toContain(pointer);
    });
  }

  test("rootfsPropagation takes the spec's four values and their recursive forms", () => {
    for (const v of ["shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"]) {
      expect(schemaProblems("config", config({ linux: { rootfsPropagation: v } }))).toEqual([]);
    }
    expect(pointers(schemaProblems("config", config({ linux: { rootfsPropagation: "" } })))).toEqual(["/linux/rootfsPropagation"]);
  });

  test("a near miss gets a suggestion", () => {
    const [p] = schemaProblems("config", config({ linux: { namespaces: [{ type: "net" }] } }));
    expect(p?.pointer).toBe("/linux/namespaces/0/type");
    expect(p?.hint ?? "").toContain("network");
  });
});

describe("integer ranges", () => {
  const at = (patch: Record<string, unknown>) => pointers(schemaProblems("config", config(patch)));
  test("uint32 (ID mappings)", () => {
    const m = (hostID: number) => ({ linux: { uidMappings: [{ containerID: 0, hostID, size: 1 }] } });
    expect(at(m(0))).toEqual([]);
    expect(at(m(4294967295))).toEqual([]);
    expect(at(m(4294967296))).toEqual(["/linux/uidMappings/0/hostID"]);
    expect(at(m(-1))).toEqual(["/linux/uidMappings/0/hostID"]);
    expect(at(m(1.5))).toEqual(["/linux/uidMappings/0/hostID"]);
  });
  test("uint16 (block I/O weight)", () => {
    const b = (weight: number) => ({ linux: { resources: { blockIO: { weight } } } });
    expect(at(b(65535))).toEqual([]);
    expect(at(b(65536))).toEqual(["/linux/resources/blockIO/weight"]);
  });
  test("int32 (scheduler nice)", () => {
    const s = (nice: number) => ({ process: { cwd: "/", scheduler: { policy: "SCHED_OTHER", nice } } });
    expect(at(s(-2147483648))).toEqual([]);
    expect(at(s(2147483647))).toEqual([]);
    expect(at(s(-2147483649))).toEqual(["/process/scheduler/nice"]);
  });
  test("uint64 (rlimits) accepts RLIM_INFINITY and rejects negatives", () => {
    const r = (soft: number) => ({ process: { cwd: "/", rlimits: [{ type: "RLIMIT_NOFILE", soft, hard: 18446744073709551615 }] } });
    expect(at(r(18446744073709551615))).toEqual([]);
    expect(at(r(-1))).toEqual(["/process/rlimits/0/soft"]);
  });
  test("int64 (memory) accepts -1 and large limits", () => {
    expect(at({ linux: { resources: { memory: { limit: -1, swap: 9223372036854775807 } } } })).toEqual([]);
  });
  test("hook timeout must be at least 1", () => {
    const h = (timeout: number) => ({ hooks: { poststart: [{ path: "/bin/true", timeout }] } });
    expect(at(h(1))).toEqual([]);
    expect(at(h(0))).toEqual(["/hooks/poststart/0/timeout"]);
  });
  test("ioPriority level is 0..7", () => {
    const i = (priority: number) => ({ process: { cwd: "/", ioPriority: { class: "IOPRIO_CLASS_BE", priority } } });
    expect(at(i(0))).toEqual([]);
    expect(at(i(7))).toEqual([]);
    expect(at(i(8))).toEqual(["/process/ioPriority/priority"]);
  });
  test("swappiness is 0..100", () => {
    const s = (swappiness: number) => ({ linux: { resources: { memory: { swappiness } } } });
    expect(at(s(100))).toEqual([]);
    expect(at(s(101))).toEqual(["/linux/resources/memory/swappiness"]);
  });
});

describe("conditional requirements", () => {
  test("device major/minor are required unless the device is a FIFO", () => {
    const d = (dev: Record<string, unknown>) => pointers(schemaProblems("config", config({ linux: { devices: [dev] } })));
    expect(d({ type: "p", path: "/run/fifo" })).toEqual([]);
    for (const type of ["c", "b", "u"]) {
      const got = d({ type, path: "/dev/x" });
      expect(got).toContain("/linux/devices/0/major");
      expect(got).toContain("/linux/devices/0/minor");
    }
  });
  test("weightDevice needs weight or leafWeight", () => {
    const w = (entry: Record<string, unknown>) =>
      pointers(schemaProblems("config", config({ linux: { resources: { blockIO: { weightDevice: [{ major: 8, minor: 0, ...entry }] } } } })));
    expect(w({ weight: 1 })).toEqual([]);
    expect(w({ leafWeight: 1 })).toEqual([]);
    expect(w({})).toContain("/linux/resources/blockIO/weightDevice/0/leafWeight");
  });
  test("rdma entries need hcaHandles or hcaObjects", () => {
    const r = (entry: Record<string, unknown>) => pointers(schemaProblems("config", config({ linux: { resources: { rdma: { mlx: entry } } } })));
    expect(r({ hcaHandles: 1 })).toEqual([]);
    expect(r({ hcaObjects: 1 })).toEqual([]);
    expect(r({})).toContain("/linux/resources/rdma/mlx/hcaObjects");
  });
  test("mount uidMappings and gidMappings go together", () => {
    const map = [{ containerID: 0, hostID: 1000, size: 1 }];
    const m = (mount: Record<string, unknown>) => pointers(schemaProblems("config", config({ mounts: [{ destination: "/a", ...mount }] })));
    expect(m({ uidMappings: map, gidMappings: map })).toEqual([]);
    expect(m({ uidMappings: map })).toEqual(["/mounts/0"]);
    expect(m({ gidMappings: map })).toEqual(["/mounts/0"]);
  });
  test("seccomp listenerMetadata needs listenerPath", () => {
    const s = (extra: Record<string, unknown>) =>
      pointers(schemaProblems("config", config({ linux: { seccomp: { defaultAction: "SCMP_ACT_ALLOW", ...extra } } })));
    expect(s({ listenerPath: "/run/agent.sock", listenerMetadata: "m" })).toEqual([]);
    expect(s({ listenerPath: "/run/agent.sock" })).toEqual([]);
    expect(s({ listenerMetadata: "m" })).toEqual(["/linux/seccomp"]);
  });
});

describe("unknown properties are ignored everywhere", () => {
  test("config, state and features accept extra keys", () => {
    expect(schemaProblems("config", config({ "x-extra": { a: [1] }, linux: { "x-extra": 1, resources: { "x-extra": true } } }))).toEqual([]);
    expect(schemaProblems("state", { ociVersion: "1.3.0", id: "c", status: "created", pid: 9, bundle: "/b", "x-extra": null })).toEqual([]);
    expect(schemaProblems("features", { ociVersionMin: "1.0.0", ociVersionMax: "1.3.0", linux: { "x-extra": {} }, "x-extra": [] })).toEqual([]);
  });
});

describe("features null handling", () => {
  test("null is allowed for every property except the versions", () => {
    const f = { ociVersionMin: "1.0.0", ociVersionMax: "1.3.0", linux: { cgroup: null, seccomp: { enabled: null, archs: null } } };
    expect(schemaProblems("features", f)).toEqual([]);
    expect(pointers(schemaProblems("features", { ...f, ociVersionMax: null }))).toEqual(["/ociVersionMax"]);
  });
  test("a wrong type below a nullable object is reported only where it is", () => {
    const got = schemaProblems("features", { ociVersionMin: "1.0.0", ociVersionMax: "1.3.0", linux: { seccomp: { enabled: "yes" } } });
    expect(pointers(got)).toEqual(["/linux/seccomp/enabled"]);
  });
});
