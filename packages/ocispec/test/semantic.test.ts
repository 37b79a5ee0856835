import { describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateConfig } from "../src/config.ts";
import { defaultSpec } from "../src/defaults.ts";
import { semanticProblems } from "../src/semantic.ts";
import type { Problem } from "../src/problem.ts";

// A config is mutated freely in these tests, so work on plain JSON.
type Json = any;
const base = (): Json => JSON.parse(JSON.stringify(defaultSpec()));
const pointers = (ps: Problem[]) => ps.map((p) => p.pointer);
const problemsOf = (c: Json, opts = {}) => {
  const r = validateConfig(c, opts);
  return r.ok ? [] : r.problems;
};

describe("the default spec", () => {
  test("is valid", () => {
    expect(problemsOf(base())).toEqual([]);
    expect(problemsOf(JSON.parse(JSON.stringify(defaultSpec({ rootless: { uid: 1000, gid: 1000 } }))))).toEqual([]);
  });
});

describe("semantic checks", () => {
  const cases: [string, (c: Json) => void, string, RegExp?][] = [
    ["ociVersion not semver", (c) => (c.ociVersion = "1.0"), "/ociVersion", /SemVer/],
    ["unsupported major", (c) => (c.ociVersion = "2.0.0"), "/ociVersion", /not supported/],
    ["relative cwd", (c) => (c.process.cwd = "home"), "/process/cwd", /absolute/],
    ["empty args", (c) => (c.process.args = []), "/process/args"],
    ["env without =", (c) => c.process.env.push("JUSTNAME"), "/process/env/2", /KEY=value/],
    ["unknown capability", (c) => (c.process.capabilities.effective[0] = "CAP_FLY"), "/process/capabilities/effective/0", /unknown capability/],
    ["unknown rlimit", (c) => (c.process.rlimits[0].type = "RLIMIT_NOFLIE"), "/process/rlimits/0/type", /unknown resource limit/],
    ["duplicate rlimit", (c) => c.process.rlimits.push({ type: "RLIMIT_NOFILE", soft: 1, hard: 1 }), "/process/rlimits/1/type", /already set/],
    ["soft above hard", (c) => (c.process.rlimits[0].soft = 2048), "/process/rlimits/0/soft", /above the hard/],
    ["duplicate namespace", (c) => c.linux.namespaces.push({ type: "pid" }), "/linux/namespaces/5/type", /already listed/],
    ["relative namespace path", (c) => (c.linux.namespaces[0].path = "proc/1/ns/pid"), "/linux/namespaces/0/path", /absolute/],
    ["mappings without user ns", (c) => (c.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]), "/linux/uidMappings", /user namespace/],
    ["user ns without mappings", (c) => c.linux.namespaces.push({ type: "user" }), "/linux/uidMappings", /needs uidMappings/],
    ["hostname without uts ns", (c) => (c.linux.namespaces = c.linux.namespaces.filter((n: Json) => n.type !== "uts")), "/hostname", /UTS/],
    ["domainname without uts ns", (c) => { c.hostname = ""; c.domainname = "example"; c.linux.namespaces = c.linux.namespaces.filter((n: Json) => n.type !== "uts"); }, "/domainname", /UTS/],
    ["timeOffsets without time ns", (c) => (c.linux.timeOffsets = { monotonic: { secs: 1, nanosecs: 0 } }), "/linux/timeOffsets", /time namespace/],
    ["net sysctl without net ns", (c) => { c.linux.namespaces = c.linux.namespaces.filter((n: Json) => n.type !== "network"); c.linux.sysctl = { "net.ipv4.ip_forward": "1" }; }, "/linux/sysctl/net.ipv4.ip_forward", /network namespace/],
    ["ipc sysctl without ipc ns", (c) => { c.linux.namespaces = c.linux.namespaces.filter((n: Json) => n.type !== "ipc"); c.linux.sysctl = { "kernel.shmmax": "1" }; }, "/linux/sysctl/kernel.shmmax", /IPC/],
    ["relative device path", (c) => (c.linux.devices = [{ path: "dev/fuse", type: "c", major: 10, minor: 229 }]), "/linux/devices/0/path", /absolute/],
    ["char device without numbers", (c) => (c.linux.devices = [{ path: "/dev/fuse", type: "c" }]), "/linux/devices/0", /major and minor/],
    ["relative masked path", (c) => c.linux.maskedPaths.push("proc/kcore"), "/linux/maskedPaths/10", /absolute/],
    ["relative readonly path", (c) => c.linux.readonlyPaths.push("sys"), "/linux/readonlyPaths/5", /absolute/],
    ["relative hook path", (c) => (c.hooks = { prestart: [{ path: "bin/hook" }] }), "/hooks/prestart/0/path", /absolute/],
    ["notify without listener", (c) => (c.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mount"], action: "SCMP_ACT_NOTIFY" }] }), "/linux/seccomp/listenerPath", /SCMP_ACT_NOTIFY/],
    ["notify as default", (c) => (c.linux.seccomp = { defaultAction: "SCMP_ACT_NOTIFY", listenerPath: "/run/l.sock" }), "/linux/seccomp/defaultAction"],
    ["errnoRet on allow", (c) => (c.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mount"], action: "SCMP_ACT_ALLOW", errnoRet: 1 }] }), "/linux/seccomp/syscalls/0/errnoRet"],
    ["idmapped mount with one mapping", (c) => (c.mounts[0].uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]), "/mounts/0/uidMappings", /both/],
  ];
  for (const [name, mutate, pointer, message] of cases) {
    test(name, () => {
      const c = base();
      mutate(c);
      const ps = problemsOf(c);
      expect(pointers(ps)).toContain(pointer);
      if (message) expect(ps.find((p) => p.pointer === pointer)!.message).toMatch(message);
    });
  }

  describe("sysctls: only what a namespace of the container isolates", () => {
    // Each refused key is one a container must never write: it is the host's (issue 13, item 3).
    const refused: [string, RegExp][] = [
      ["kernel.core_pattern", /not isolated/],
      ["kernel.printk_ratelimit_burst", /not isolated/],
      ["vm.overcommit_memory", /not isolated/],
      ["kernel/core_pattern", /not isolated/],
      ["kernel.msg_next_id_", /not isolated/],
      ["kernel.shmmax.x", /not isolated/],
      ["net/../kernel/core_pattern", /not a sysctl name/],
      ["net.ipv4..ip_forward", /not a sysctl name/],
      ["net/./ipv4/ip_forward", /not a sysctl name/],
      ["", /not a sysctl name/],
    ];
    for (const [key, message] of refused)
      test(`${JSON.stringify(key)} is refused with every namespace present`, () => {
        const c = base();
        c.hostname = "";
        c.linux.sysctl = { [key]: "1" };
        const ps = problemsOf(c);
        const p = ps.find((x) => x.pointer === `/linux/sysctl/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`);
        expect(p?.message).toMatch(message);
      });
    test("the slash form is checked as the dotted one", () => {
      const c = base();
      c.linux.namespaces = c.linux.namespaces.filter((n: Json) => n.type !== "network");
      c.linux.sysctl = { "net/ipv4/ip_forward": "1" };
      expect(problemsOf(c).map((p) => p.message).join()).toMatch(/network namespace/);
    });
    test("per-namespace keys are accepted with their namespace", () => {
      const c = base();
      c.hostname = "";
      c.linux.sysctl = {
        "net.ipv4.ip_forward": "1",
        "net/ipv4/conf/eth0.100/forwarding": "1",
        "kernel.shm_rmid_forced": "1",
        "kernel.sem": "250 32000 32 128",
        "fs.mqueue.msg_max": "10",
        "kernel.domainname": "example",
        "kernel.hostname": "box",
      };
      expect(problemsOf(c)).toEqual([]);
    });
    test("kernel.hostname beside /hostname is a conflict", () => {
      const c = base();
      c.linux.sysctl = { "kernel.hostname": "box" };
      expect(problemsOf(c).map((p) => p.message).join()).toMatch(/conflicts with \/hostname/);
    });
  });

  test("a relative mount destination is accepted (deprecated, read relative to /)", () => {
    const c = base();
    c.mounts[0].destination = "proc";
    expect(problemsOf(c)).toEqual([]);
  });

  test("user ns with mappings, and joined user ns without them, are fine", () => {
    const c = base();
    c.linux.namespaces.push({ type: "user" });
    c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    expect(problemsOf(c)).toEqual([]);
    const j = base();
    j.linux.namespaces.push({ type: "user", path: "/proc/1/ns/user" });
    expect(problemsOf(j)).toEqual([]);
  });

  test("every problem is reported at once, schema and semantic alike", () => {
    const c = base();
    c.process.cwd = "rel";
    c.process.terminal = "yes";
    c.linux.namespaces.push({ type: "pid" });
    c.mounts[2].options = "nosuid";
    expect(pointers(problemsOf(c)).sort()).toEqual(["/linux/namespaces/5/type", "/mounts/2/options", "/process/cwd", "/process/terminal"]);
  });

  test("semantic checks survive documents of the wrong shape", () => {
    for (const doc of [null, 1, "x", [], { process: 1, linux: [], mounts: {}, hooks: 3 }, { linux: { namespaces: [null, 1, { type: 5 }], seccomp: [] } }]) {
      expect(() => semanticProblems(doc, { forCreate: true, bundle: "/nonexistent" })).not.toThrow();
    }
  });
});

describe("bundle checks (forCreate)", () => {
  const dir = mkdtempSync(join(tmpdir(), "ocispec-"));
  test("root must exist and be a directory; process and root are required", () => {
    const c = base();
    expect(pointers(problemsOf(c, { bundle: dir, forCreate: true }))).toEqual(["/root/path"]);
    writeFileSync(join(dir, "rootfs"), "");
    expect(problemsOf(c, { bundle: dir, forCreate: true })[0]!.message).toMatch(/not a directory/);
    rmSync(join(dir, "rootfs"));
    mkdirSync(join(dir, "rootfs"));
    expect(problemsOf(c, { bundle: dir, forCreate: true })).toEqual([]);
    c.root.path = join(dir, "rootfs");
    expect(problemsOf(c, { bundle: "/elsewhere", forCreate: true })).toEqual([]);
    delete c.process;
    delete c.root;
    expect(pointers(problemsOf(c, { bundle: dir, forCreate: true })).sort()).toEqual(["/process", "/root"]);
    expect(problemsOf(c, { bundle: dir })).toEqual([]);
    rmSync(dir, { recursive: true });
  });
});
