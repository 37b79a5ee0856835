import { describe, expect, test } from "bun:test";
import { defaultSpec } from "@tsrun/ocispec/defaults";
import { compileExecPlan, compileHookPlan } from "../src/plan/exec.ts";
import { DEFAULT_PATH, PlanError } from "../src/plan/compile.ts";
import { FOLD_SYSCALLS } from "../src/plan/fold.ts";
import { CLONE_FLAGS } from "@tsrun/ocispec/core";
import { SYNC, type Op } from "../src/plan/ops.ts";

type Json = any;
const spec = (patch: (s: Json) => void = () => {}): Json => {
  const s: Json = JSON.parse(JSON.stringify(defaultSpec()));
  patch(s);
  return s;
};
const names = (ops: Op[]) => ops.map((o) => o.op);

describe("compileExecPlan", () => {
  test("joins the user namespace first and the mount namespace last, syncs for the cgroups, then forks", () => {
    const s = spec((x) => x.linux.namespaces.push({ type: "user" }, { type: "cgroup" }));
    const { ops } = compileExecPlan({ spec: s, process: { ...s.process, args: ["ps"] }, initPid: 42, preserveFds: 0 });
    const joins = ops.filter((o): o is Extract<Op, { op: "setns" }> => o.op === "setns").map((o) => o.path);
    expect(joins).toEqual(["user", "ipc", "uts", "net", "pid", "cgroup", "mnt"].map((n) => `/proc/42/ns/${n}`));
    const i = names(ops);
    expect(i.indexOf("sync")).toBeGreaterThan(i.lastIndexOf("setns"));
    expect(ops[i.indexOf("sync")]).toEqual({ op: "sync", code: SYNC.NAMESPACES });
    expect(i.indexOf("fork")).toBe(i.indexOf("sync") + 1);
    // the init's guarantees: only 0-2, not dumpable until exec, found before the exec
    const order = ["fork", "closeFds", "setUser", "caps", "prctl", "chdir", "resolveExec", "exec"];
    const at = order.map((k) => i.lastIndexOf(k as Op["op"]));
    expect(at).toEqual([...at].sort((a, b) => a - b));
    expect(ops.find((o) => o.op === "prctl" && o.option === 4)).toEqual({ op: "prctl", option: 4, arg: 0n });
    expect(ops.at(-1)).toMatchObject({ op: "exec", file: "ps", argv: ["ps"] });
    expect(i).not.toContain("openFifo");
    expect(i).not.toContain("waitFifo");
  });

  test("cgroup v1: stage 1 moves itself (write 0 to each tasks file tsrun passes after the pidfd, then close it) before it joins any namespace", () => {
    const s = spec();
    const { ops } = compileExecPlan({ spec: s, process: { ...s.process, args: ["true"] }, initPid: 42, preserveFds: 2, pidfd: true, cgroupTasks: ["/sys/fs/cgroup/cpu/c", "/sys/fs/cgroup/pids/c"] });
    const nr = FOLD_SYSCALLS[process.arch as "x64" | "arm64"];
    const moves = ops.filter((o): o is Extract<Op, { op: "syscall" }> => o.op === "syscall" && (o.nr === nr.write || o.nr === nr.close));
    // the fds: 3, 4 preserved, 5 the pidfd, then 6 and 7
    expect(moves.map((o) => [o.what, o.args])).toEqual([
      ["move into the cgroup /sys/fs/cgroup/cpu/c (write 0 to its tasks file)", [6n, 0n, 1n]],
      ["close the tasks file of /sys/fs/cgroup/cpu/c", [6n]],
      ["move into the cgroup /sys/fs/cgroup/pids/c (write 0 to its tasks file)", [7n, 0n, 1n]],
      ["close the tasks file of /sys/fs/cgroup/pids/c", [7n]],
    ]);
    expect([moves[0]!.bufArgs, Array.from(moves[0]!.buf)]).toEqual([0b10, [0x30]]);
    const firstJoin = ops.findIndex((o) => o.op === "syscall" && o.nr === nr.setns);
    expect(ops.indexOf(moves.at(-1)!)).toBeLessThan(firstJoin);
    // and the fds are gone before the program runs, as every fd above the preserved ones
    expect(ops.find((o) => o.op === "closeFds")).toEqual({ op: "closeFds", first: 5 });
  });

  test("the process's own settings: terminal, seccomp before the uid change without no_new_privs, preserved fds", () => {
    const s = spec((x) => (x.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] }));
    const p = { ...s.process, args: ["sh"], terminal: true, noNewPrivileges: false, user: { uid: 5, gid: 6, additionalGids: [7] } };
    const { ops } = compileExecPlan({ spec: s, process: p, initPid: 1, preserveFds: 2 });
    const i = names(ops);
    expect(ops.find((o) => o.op === "console")).toEqual({ op: "console", rows: 0, cols: 0, devConsole: false, uid: 5 });
    expect(i).not.toContain("setsid");
    expect(i.indexOf("seccomp")).toBeLessThan(i.lastIndexOf("setUser"));
    expect(ops.find((o) => o.op === "closeFds")).toEqual({ op: "closeFds", first: 5 });
    expect(ops.filter((o) => o.op === "setUser").at(-1)).toEqual({ op: "setUser", uid: 5, gid: 6, groups: [7], setgroups: true });
    const nnp = compileExecPlan({ spec: s, process: { ...p, noNewPrivileges: true }, initPid: 1, preserveFds: 0 }).ops;
    expect(names(nnp).indexOf("seccomp")).toBeGreaterThan(names(nnp).indexOf("resolveExec"));
  });

  test("refused by pointer: no command, an AppArmor profile without AppArmor, an SELinux label", () => {
    const s = spec();
    const pointer = (p: Json) => {
      try {
        compileExecPlan({ spec: s, process: p, initPid: 1, preserveFds: 0 });
      } catch (e) {
        return (e as PlanError).pointer;
      }
    };
    expect(pointer({ ...s.process, args: [] })).toBe("/process/args");
    expect(pointer({ ...s.process, apparmorProfile: "x" })).toBe("/process/apparmorProfile");
    expect(pointer({ ...s.process, selinuxLabel: "x" })).toBe("/process/selinuxLabel");
  });
});

describe("compileHookPlan", () => {
  const hook = { path: "/usr/libexec/h", args: ["h", "-x"], env: ["A=1"] };
  const setns = (ops: Op[]) => ops.filter((o): o is Extract<Op, { op: "setns" }> => o.op === "setns").map((o) => o.path);

  test("createContainer: the init's namespaces from the fds tsrun passes, root of the user namespace, in the rootfs, nothing of the process", () => {
    const s = spec((x) => x.linux.namespaces.push({ type: "user" }));
    const { ops } = compileHookPlan({ spec: s, hook, initPid: 42, rootfs: "/b/rootfs" });
    // all at once through the init's pidfd, fd 3 (the init is not dumpable yet: no /proc/<pid>/ns)
    expect(setns(ops)).toEqual([]);
    const join = ops.find((o) => o.op === "syscall") as Extract<Op, { op: "syscall" }>;
    const { user, ipc, uts, network, pid, mount } = CLONE_FLAGS;
    expect([join.nr, join.args]).toEqual([FOLD_SYSCALLS.x64.setns, [3n, BigInt(user | ipc | uts | network | pid | mount)]]);
    const i = names(ops);
    expect(i.slice(i.indexOf("sync"))).toEqual(["sync", "fork", "stage", "setUser", "closeFds", "chdir", "exec"]);
    expect(ops.find((o) => o.op === "setUser")).toEqual({ op: "setUser", uid: 0, gid: 0, groups: [], setgroups: false });
    expect(ops.find((o) => o.op === "closeFds")).toEqual({ op: "closeFds", first: 3 });
    expect(ops.find((o) => o.op === "chdir")).toEqual({ op: "chdir", path: "/b/rootfs" });
    expect(ops.at(-1)).toEqual({ op: "exec", file: "/usr/libexec/h", argv: ["h", "-x"], env: ["A=1"], path: DEFAULT_PATH });
    // without a user namespace: tsrun's own credentials, as the init's
    expect(names(compileHookPlan({ spec: spec(), hook, initPid: 42, rootfs: "/r" }).ops)).not.toContain("setUser");
  });

  test("startContainer: set up as the container's process (user, caps, cwd), the hook's program, args and env", () => {
    const s = spec((x) => (x.process.user = { uid: 5, gid: 6 }) && (x.process.terminal = true) && (x.process.env = ["PATH=/x"]));
    const { ops } = compileHookPlan({ spec: s, hook: { path: "/bin/h" }, initPid: 42 });
    expect(setns(ops)).toEqual([]);
    expect(ops.find((o) => o.op === "syscall")).toMatchObject({ nr: FOLD_SYSCALLS.x64.setns, args: [3n, expect.any(BigInt)] });
    const i = names(ops);
    expect(i).not.toContain("console"); // its stdio is tsrun's pipe
    expect(ops.filter((o) => o.op === "setUser").at(-1)).toMatchObject({ uid: 5, gid: 6 });
    expect(i).toContain("caps");
    expect(ops.filter((o) => o.op === "chdir").at(-1)).toEqual({ op: "chdir", path: s.process.cwd });
    expect(ops.find((o) => o.op === "resolveExec")).toEqual({ op: "resolveExec", file: "/bin/h", path: DEFAULT_PATH });
    expect(ops.at(-1)).toEqual({ op: "exec", file: "/bin/h", argv: ["/bin/h"], env: [], path: DEFAULT_PATH });
  });
});
