import { describe, expect, test } from "bun:test";
import { defaultSpec } from "@tsrun/ocispec/defaults";
import { MS } from "@tsrun/ocispec/core";
import { compilePlan, inRootPath, PlanError, type PlanInput } from "../src/plan/compile.ts";
import { parseMountOptions } from "../src/plan/mounts.ts";
import { SYNC, type Op } from "../src/plan/ops.ts";

type Json = any;
const input = (patch: (s: Json) => void = () => {}, extra: Partial<PlanInput> = {}): PlanInput => {
  const spec: Json = JSON.parse(JSON.stringify(defaultSpec()));
  spec.process.terminal = false;
  patch(spec);
  return {
    spec,
    bundle: "/b",
    rootfs: "/b/rootfs",
    execFifo: "/run/tsrun/c1/exec.fifo",
    preserveFds: 0,
    noPivot: false,
    cgroups: { kind: "v1", controllers: [{ name: "memory", hostPath: "/sys/fs/cgroup/memory/c1" }, { name: "cpu,cpuacct", hostPath: "/sys/fs/cgroup/cpu,cpuacct/c1" }] },
    hostPathKind: (p) => (p.endsWith(".txt") ? "file" : p.includes("missing") ? "missing" : "dir"),
    ...extra,
  };
};
const names = (ops: Op[]) => ops.map((o) => o.op);
const find = <K extends Op["op"]>(ops: Op[], k: K) => ops.filter((o): o is Extract<Op, { op: K }> => o.op === k);

describe("compilePlan", () => {
  test("cgroup v1 only: stage 1 moves itself into each cgroup (the tasks fds after the preserved and idmap ones) before the fifo and any namespace", () => {
    const { ops } = compilePlan(input(() => {}, { preserveFds: 2, idmapFds: { 0: 5 }, cgroupTasks: ["/sys/fs/cgroup/memory/c1", "/sys/fs/cgroup/cpu,cpuacct/c1"] }));
    expect(ops[0]).toEqual({ op: "stage", name: "tsrun:[1:CHILD]" });
    const moves = ops.slice(1, 5).map((o) => (o.op === "syscall" ? [o.what, o.args[0]] : o.op));
    // 3, 4 preserved, 5 the idmap user namespace, then 6 and 7
    expect(moves).toEqual([
      ["move into the cgroup /sys/fs/cgroup/memory/c1 (write 0 to its tasks file)", 6n],
      ["close the tasks file of /sys/fs/cgroup/memory/c1", 6n],
      ["move into the cgroup /sys/fs/cgroup/cpu,cpuacct/c1 (write 0 to its tasks file)", 7n],
      ["close the tasks file of /sys/fs/cgroup/cpu,cpuacct/c1", 7n],
    ]);
    expect(ops[5]!.op).toBe("openFifo");
    // Without them, nothing moves: tsrun moves stage 1 itself.
    expect(compilePlan(input()).ops.slice(0, 2).map((o) => o.op)).toEqual(["stage", "openFifo"]);
  });

  test("the default spec: stage 1 syncs and forks into the new namespaces; stage 2 sets up and execs", () => {
    const { ops } = compilePlan(input());
    const fork = ops.findIndex((o) => o.op === "fork");
    expect(names(ops.slice(0, fork + 1))).toEqual(["stage", "openFifo", "sync", "fork"]);
    expect(find(ops, "fork")[0]!.flags).toBe(0x20000000 | 0x20000 | 0x04000000 | 0x08000000 | 0x40000000);
    expect(ops.at(-1)).toEqual({ op: "exec", file: "sh", argv: ["sh"], env: expect.any(Array), path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" });
    const order = ["openFifo", "setRoot", "pivotRoot", "closeFds", "setUser", "caps", "chdir", "resolveExec", "sync", "waitFifo", "exec"];
    const idx = order.map((k) => names(ops).lastIndexOf(k as Op["op"]));
    expect(idx).toEqual([...idx].sort((a, b) => a - b));
    const syncs = find(ops, "sync").map((s) => s.code);
    expect(syncs).toEqual([SYNC.NAMESPACES, SYNC.MOUNTS, SYNC.CREATED]);
    // The cwd: first as root (after closeFds, before the user change), then the fallback after it.
    expect(find(ops, "chdir")).toEqual([
      { op: "chdir", path: "/", beforeUser: true },
      { op: "chdir", path: "/" },
    ]);
    expect(names(ops).indexOf("closeFds")).toBeLessThan(names(ops).indexOf("chdir"));
    expect(names(ops).indexOf("chdir")).toBeLessThan(names(ops).indexOf("setUser", names(ops).indexOf("fork")));
    expect(find(ops, "maskPath").map((m) => m.path)).toContain("/proc/kcore");
    expect(find(ops, "readonlyPath").map((m) => m.path)).toContain("/proc/sys");
    expect(names(ops)).toContain("remountRootReadonly");
    expect(find(ops, "sethostname")[0]!.name).toBe("tsrun");
    expect(find(ops, "setrlimit")[0]).toEqual({ op: "setrlimit", resource: 7, soft: 1024n, hard: 1024n });
    expect(find(ops, "boundingSet")[0]).toEqual({ op: "boundingSet", keep: (1n << 29n) | (1n << 5n) | (1n << 10n) });
    // dropped before the user change, while the process has CAP_SETPCAP
    expect(names(ops).indexOf("boundingSet")).toBe(names(ops).lastIndexOf("setUser") - 1);
    expect(find(ops, "prctl")[0]).toEqual({ op: "prctl", option: 38, arg: 1n });
    expect(find(ops, "prctl")[1]).toEqual({ op: "prctl", option: 4, arg: 0n });
    expect(names(ops).indexOf("prctl", names(ops).indexOf("setUser", 6))).toBeGreaterThan(names(ops).lastIndexOf("setUser"));
  });

  test("mounts are made inside the root, in order, with flags and data", () => {
    const { ops } = compilePlan(input());
    const mounts = find(ops, "mount").filter((m) => m.inRoot);
    expect(mounts[0]).toEqual({ op: "mount", source: "proc", target: "proc", fstype: "proc", flags: 0, data: null, inRoot: true });
    const dev = mounts.find((m) => m.target === "dev")!;
    expect(dev.fstype).toBe("tmpfs");
    expect(dev.flags).toBe(MS.NOSUID | MS.STRICTATIME);
    expect(dev.data).toBe("mode=755,size=65536k");
    expect(mounts.find((m) => m.target === "sys")!.flags & MS.RDONLY).toBeTruthy();
  });

  test("a read-only tmpfs that later mounts and nodes go into is made read-only after them", () => {
    const { ops } = compilePlan(input((s) => s.mounts.find((m: { destination: string }) => m.destination === "/dev").options.push("ro")));
    const devMounts = find(ops, "mount").filter((m) => m.target === "dev");
    expect(devMounts).toHaveLength(2);
    expect(devMounts[0]!.flags & MS.RDONLY).toBe(0);
    expect(devMounts[1]!.flags).toBe(MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.STRICTATIME);
    const i = ops.indexOf(devMounts[1]!);
    expect(ops.findIndex((o) => o.op === "mount" && o.target === "dev/pts")).toBeLessThan(i);
    expect(ops.map((o) => o.op).lastIndexOf("mknod")).toBeLessThan(i);
  });

  test("/dev gets the default devices and links; cgroup v1 controllers are bound under a tmpfs", () => {
    const { ops } = compilePlan(input());
    expect(find(ops, "mknod").map((m) => m.path)).toEqual(["dev/null", "dev/zero", "dev/full", "dev/random", "dev/urandom", "dev/tty"]);
    expect(find(ops, "mknod")[0]!.mode).toBe(0o020666);
    expect(find(ops, "symlink").map((s) => `${s.path}->${s.target}`)).toEqual(expect.arrayContaining(["dev/fd->/proc/self/fd", "dev/ptmx->pts/ptmx", "sys/fs/cgroup/cpu->cpu,cpuacct"]));
    const cg = find(ops, "mount").filter((m) => m.target.startsWith("sys/fs/cgroup"));
    expect(cg.map((m) => m.target)).toEqual(["sys/fs/cgroup", "sys/fs/cgroup/memory", "sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup"]);
    expect(cg[1]!.source).toBe("/sys/fs/cgroup/memory/c1");
    expect(cg[3]!.flags & MS.REMOUNT && cg[3]!.flags & MS.RDONLY).toBeTruthy();
  });

  test("bind mounts: relative sources from the bundle, files as files, propagation and r* options", () => {
    const { ops } = compilePlan(
      input((s) =>
        s.mounts.push(
          { destination: "/data", type: "bind", source: "vol", options: ["rbind", "ro", "rprivate", "rnosuid"] },
          { destination: "/etc/x.txt", source: "/host/x.txt", options: ["bind"] },
        ),
      ),
    );
    const data = find(ops, "mount").filter((m) => m.target === "data");
    expect(data[0]).toMatchObject({ source: "/b/vol", flags: MS.BIND | MS.REC | MS.RDONLY, targetIsFile: false });
    expect(data[1]).toMatchObject({ source: null, flags: MS.PRIVATE | MS.REC });
    expect(find(ops, "mountSetattr")[0]).toMatchObject({ target: "data", attrSet: 0x2, recursive: true });
    expect(find(ops, "mount").find((m) => m.target === "etc/x.txt")).toMatchObject({ targetIsFile: true });
    expect(() => compilePlan(input((s) => s.mounts.push({ destination: "/d", type: "bind", source: "/missing" })))).toThrow(/does not exist/);
  });

  test("user namespace: unshared in stage 1, mapped by tsrun at SYNC.USERNS, devices bound from the host", () => {
    const { ops } = compilePlan(input((s) => s.linux.namespaces.push({ type: "user" })));
    expect(names(ops.slice(0, 6))).toEqual(["stage", "openFifo", "unshare", "sync", "setUser", "sync"]);
    expect(find(ops, "sync")[0]!.code).toBe(SYNC.USERNS);
    expect(find(ops, "mknod")[0]!.bindFallback).toBe("/dev/null");
  });

  test("joined namespaces are entered in stage 1, user first; time namespace offsets", () => {
    const { ops } = compilePlan(
      input((s) => {
        s.linux.namespaces = s.linux.namespaces.filter((n: Json) => n.type !== "network");
        s.linux.namespaces.push({ type: "network", path: "/var/run/netns/x" }, { type: "user", path: "/proc/9/ns/user" }, { type: "time" });
        s.linux.timeOffsets = { monotonic: { secs: 10, nanosecs: 5 } };
      }),
    );
    expect(find(ops, "setns").map((s) => s.path)).toEqual(["/proc/9/ns/user", "/var/run/netns/x"]);
    expect(find(ops, "writeFile")[0]).toEqual({ op: "writeFile", path: "/proc/self/timens_offsets", data: "monotonic 10 5\n" });
    expect(find(ops, "fork")[0]!.flags & 0x40000000).toBe(0);
  });

  test("hooks in the container are tsrun's (hooks/container.ts): the init only stops where they run", () => {
    const { ops } = compilePlan(input((s) => (s.hooks = { createContainer: [{ path: "/bin/h", timeout: 2 }], startContainer: [{ path: "/bin/s", args: ["s", "x"] }] })));
    expect(names(ops)).not.toContain("hook");
    // createContainer: at SYNC.MOUNTS, before pivot_root; startContainer: while the init waits on the fifo
    const mounts = ops.findIndex((o) => o.op === "sync" && o.code === SYNC.MOUNTS);
    expect(mounts).toBeGreaterThan(names(ops).indexOf("fork"));
    expect(mounts).toBeLessThan(names(ops).indexOf("pivotRoot"));
    expect(names(ops).slice(names(ops).indexOf("waitFifo"))).toEqual(["waitFifo", "exec"]);
    // the same plan as without hooks: the executor does nothing for them
    expect(ops).toEqual(compilePlan(input()).ops);
  });

  test("an unprivileged tsrun's hooks: the init is dumpable only while it waits for them (pidfd setns needs ptrace access)", () => {
    const rootless = (s: Json) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
      s.hooks = { createContainer: [{ path: "/bin/h" }], startContainer: [{ path: "/bin/s" }] };
    };
    const { ops } = compilePlan(input(rootless, { unprivileged: true }));
    const dumpable = (o: Op | undefined) => (o?.op === "prctl" && o.option === 4 ? Number(o.arg) : undefined);
    const mounts = ops.findIndex((o) => o.op === "sync" && o.code === SYNC.MOUNTS);
    expect([dumpable(ops[mounts - 1]), dumpable(ops[mounts + 1])]).toEqual([1, 0]);
    const created = ops.findIndex((o) => o.op === "sync" && o.code === SYNC.CREATED);
    expect([dumpable(ops[created - 1]), names(ops)[created + 1], dumpable(ops[created + 2]), names(ops)[created + 3]]).toEqual([1, "waitFifo", 0, "exec"]);
    // as root, or without hooks: never
    const root = compilePlan(input(rootless)).ops;
    expect(root.filter((o) => dumpable(o) === 1)).toEqual([]);
    const none = compilePlan(input((s) => (rootless(s), delete s.hooks), { unprivileged: true })).ops;
    expect(none.filter((o) => dumpable(o) === 1).length).toBe(1); // the id maps' window only
  });

  test("--no-pivot hides the host's proc and sysfs mounts outside the rootfs before the chroot", () => {
    const rootfs = compilePlan(input()).ops.find((o) => o.op === "setRoot")!.path;
    const { ops } = compilePlan(input(() => {}, { noPivot: true, hostProcMounts: ["/proc", "/sys", `${rootfs}/proc`] }));
    const hidden = find(ops, "hideMount").map((o) => o.path);
    expect(hidden).toEqual(["/proc", "/sys"]);
    expect(ops.findIndex((o) => o.op === "hideMount")).toBeLessThan(ops.findIndex((o) => o.op === "chrootMove"));
    expect(find(compilePlan(input(() => {}, { hostProcMounts: ["/proc"] })).ops, "hideMount")).toEqual([]);
  });

  test("terminal, preserved fds, --no-pivot, user, sysctl", () => {
    const { ops } = compilePlan(
      input(
        (s) => {
          s.process.terminal = true;
          s.process.consoleSize = { height: 24, width: 80 };
          s.process.user = { uid: 1000, gid: 100, additionalGids: [5], umask: 0o077 };
          s.linux.sysctl = { "net.ipv4.ip_forward": "1" };
        },
        { preserveFds: 2, noPivot: true },
      ),
    );
    // the terminal is chowned to the process user, as runc does
    expect(find(ops, "console")[0]).toEqual({ op: "console", rows: 24, cols: 80, devConsole: true, uid: 1000 });
    expect(names(ops)).not.toContain("setsid");
    expect(find(ops, "closeFds")[0]!.first).toBe(5);
    expect(names(ops)).toContain("chrootMove");
    expect(find(ops, "setUser").at(-1)).toEqual({ op: "setUser", uid: 1000, gid: 100, groups: [5], setgroups: true });
    expect(find(ops, "umask")[0]!.mask).toBe(0o077);
    expect(find(ops, "writeFile").find((w) => w.path === "/proc/sys/net/ipv4/ip_forward")!.data).toBe("1");
  });

  test("mounts inside /proc: procfs at /proc and lxcfs's files only; sysctl keys become paths below /proc/sys only", () => {
    const pointerOf = (patch: (s: Json) => void, extra: Partial<PlanInput> = {}) => {
      try {
        compilePlan(input(patch, extra));
        return undefined;
      } catch (e) {
        if (!(e instanceof PlanError)) throw e;
        return e.pointer;
      }
    };
    const add = (m: Json) => (s: Json) => s.mounts.push(m);
    expect(pointerOf(add({ destination: "/proc/sys/net", type: "tmpfs", source: "tmpfs" }))).toBe("/mounts/7/destination");
    expect(pointerOf(add({ destination: "/proc/./sys//kernel/../net", type: "bind", source: "/v", options: ["bind"] }))).toBe("/mounts/7/destination");
    expect(pointerOf(add({ destination: "/proc/meminfo", type: "bind", source: "/var/lib/lxcfs/proc/meminfo.txt", options: ["bind"] }))).toBeUndefined();
    expect(pointerOf(add({ destination: "/proc/sys/kernel/ns_last_pid", type: "bind", source: "/l/ns_last_pid.txt", options: ["bind"] }))).toBeUndefined();
    // a bind on /proc itself only of a procfs
    const procBind = add({ destination: "/proc", type: "bind", source: "/v", options: ["rbind"] });
    expect(pointerOf(procBind)).toBe("/mounts/7/destination");
    expect(pointerOf(procBind, { hostIsProcfs: (p) => p === "/v" })).toBeUndefined();
    expect(pointerOf(add({ destination: "/procfs-not/x", type: "tmpfs", source: "tmpfs" }))).toBeUndefined();
    // the plan is the last line: a key the validation would refuse never becomes a path
    expect(pointerOf((s) => (s.linux.sysctl = { "net/../kernel/core_pattern": "x" }))).toBe("/linux/sysctl/net/../kernel/core_pattern");
    expect(pointerOf((s) => (s.linux.sysctl = { "kernel.core_pattern": "x" }))).toBe("/linux/sysctl/kernel.core_pattern");
    const { ops } = compilePlan(input((s) => (s.linux.sysctl = { "net/ipv4/conf/eth0.100/forwarding": "1", "net.core.somaxconn": "9" })));
    expect(find(ops, "writeFile").map((w) => w.path)).toEqual(["/proc/sys/net/ipv4/conf/eth0.100/forwarding", "/proc/sys/net/core/somaxconn"]);
  });

  test("what is not implemented yet is refused by name, never ignored", () => {
    const cases: [(s: Json) => void, string][] = [
      [(s) => (s.process.apparmorProfile = "p"), "/process/apparmorProfile"],
      [(s) => (s.linux.namespaces = s.linux.namespaces.filter((n: Json) => n.type !== "mount")), "/linux/namespaces"],
      [(s) => (s.mounts[0].options = ["idmap"]), "/mounts/0"],
    ];
    for (const [patch, pointer] of cases) {
      try {
        compilePlan(input(patch));
        throw new Error("compiled");
      } catch (e) {
        expect(e).toBeInstanceOf(PlanError);
        expect((e as PlanError).pointer).toBe(pointer);
      }
    }
  });
});

test("idmapped bind mounts use the user namespace fd they were given", () => {
  const { ops } = compilePlan(
    input(
      (s) => s.mounts.push({ destination: "/data", type: "bind", source: "/vol", options: ["rbind", "ro"], uidMappings: [{ containerID: 0, hostID: 1000, size: 10 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 10 }] }),
      { idmapFds: { 7: 9 } },
    ),
  );
  expect(find(ops, "idmapMount")).toEqual([{ op: "idmapMount", source: "/vol", target: "data", usernsFd: 9, recursive: true, attrSet: 1, inRoot: true, targetIsFile: false }]);
  expect(() => compilePlan(input((s) => s.mounts.push({ destination: "/d", type: "tmpfs", source: "tmpfs", options: ["idmap"] })))).toThrow(/only bind mounts/);
});

test("seccomp: loaded before the user change without no_new_privs, just before 'created' with it", () => {
  const profile = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] };
  const withNnp = compilePlan(input((s) => (s.linux.seccomp = profile))).ops;
  const i = names(withNnp).indexOf("seccomp");
  expect(names(withNnp).slice(i - 1, i + 2)).toEqual(["resolveExec", "seccomp", "sync"]);
  expect(find(withNnp, "seccomp")[0]!.program.length % 8).toBe(0);
  const without = compilePlan(input((s) => ((s.linux.seccomp = profile), (s.process.noNewPrivileges = false)))).ops;
  expect(names(without).indexOf("seccomp")).toBeLessThan(names(without).lastIndexOf("setUser"));
  // The filter is the program's: tsrun's own cwd check (getcwd) runs before it is loaded.
  expect(names(without).indexOf("chdir")).toBeLessThan(names(without).indexOf("seccomp"));
  // A listener: the init sends its fd when the filter is loaded, in stage 2, after the fork
  // reported the init's pid (the agent is told that pid).
  const notify = compilePlan(input((s) => (s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", listenerPath: "/l", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }] }))).ops;
  expect(find(notify, "seccomp")[0]!.flags & 8).toBe(8);
  expect(names(notify).indexOf("seccomp")).toBeGreaterThan(names(notify).indexOf("fork"));
});

test("session keyring unless --no-new-keyring; AppArmor profile only where AppArmor is enabled", () => {
  expect(find(compilePlan(input(() => {}, { id: "c9" })).ops, "sessionKeyring")).toEqual([{ op: "sessionKeyring", name: "_ses.c9" }]);
  expect(find(compilePlan(input(() => {}, { noNewKeyring: true })).ops, "sessionKeyring")).toEqual([]);
  const aa = compilePlan(input((s) => (s.process.apparmorProfile = "docker-default"), { apparmor: true })).ops;
  expect(find(aa, "writeFile").at(-1)).toEqual({ op: "writeFile", path: "/proc/self/attr/apparmor/exec", data: "exec docker-default" });
  expect(() => compilePlan(input((s) => (s.process.apparmorProfile = "p")))).toThrow(/AppArmor/);
});

test("inRootPath normalises and cannot climb out", () => {
  expect(inRootPath("/a/./b//c/")).toBe("a/b/c");
  expect(inRootPath("/../../etc")).toBe("etc");
  expect(inRootPath("/")).toBe(".");
  expect(inRootPath("rel/x")).toBe("rel/x");
});

test("parseMountOptions", () => {
  const p = parseMountOptions(["nosuid", "ro", "rw", "mode=755", "rshared", "rro", "relatime", "strictatime", "tmpcopyup"]);
  expect(p.flags).toBe(MS.NOSUID | MS.STRICTATIME);
  expect(p.cleared & MS.RDONLY).toBeTruthy();
  expect(p.data).toEqual(["mode=755"]);
  expect(p.propagation).toEqual([MS.SHARED | MS.REC]);
  expect(p.attrSet).toBe(1);
  expect(p.extensions).toEqual(["tmpcopyup"]);
});
