// An exec'd process's plan: join every namespace of the container's init, then set the process
// up as the init was (user, capabilities, rlimits, no_new_privs, AppArmor, seccomp) and exec.
// Pure, like compile.ts: the same inputs always give the same plan.
import type { Hook, Process, Spec } from "@tsrun/ocispec/core";
import { CLONE_FLAGS, NS_PROC_NAMES, type NamespaceType } from "@tsrun/ocispec/core";
import { DEFAULT_PATH, execOp, PlanError, processOps, seccompOf } from "./compile.ts";
import { moveSelfToCgroupsOps, setnsPidfdOp } from "./fold.ts";
import { SYNC, type InitPlan, type Op } from "./ops.ts";

export interface ExecPlanInput {
  /** The container's config: which namespaces it has, its seccomp profile. */
  spec: Spec;
  /** What to run, and as whom. */
  process: Process;
  /** The container's init, in tsrun's pid namespace: its namespaces are joined. */
  initPid: number;
  /** Extra fds passed at 3…3+n-1 (--preserve-fds). */
  preserveFds: number;
  /** AppArmor is enabled on this host. */
  apparmor?: boolean;
  /** setgroups(2) is denied in the container's user namespace (rootless). */
  denySetgroups?: boolean;
  /**
   * A pidfd of the init is the fd after the preserved ones (3 + preserveFds): its namespaces are
   * joined through it, all at once. Needed while the init is still the executor, not dumpable
   * (a created container; hooks): its /proc/<pid>/ns files are closed to a rootless tsrun, and to
   * any tsrun once in the init's user namespace. Default: one setns of /proc/<initPid>/ns/… each.
   * The set-up closes it with every other fd above the preserved ones before exec.
   */
  pidfd?: boolean;
  /**
   * cgroup v1 directories stage 1 moves itself into (moveSelfToCgroupOps), before it joins any
   * namespace: their `tasks` files, opened by tsrun, are the fds after the pidfd (after the
   * preserved ones without it), in this order. Other cgroups (cgroup2) tsrun joins at the sync.
   */
  cgroupTasks?: readonly string[];
}

/**
 * The order namespaces are joined in. The user namespace first: it grants what joining the others
 * takes. The mount namespace last: once in it, /proc/<pid>/ns/… would be the container's /proc,
 * where the init has another pid.
 */
const JOIN_ORDER: readonly NamespaceType[] = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"];

export function compileExecPlan(input: ExecPlanInput): InitPlan {
  const { spec, process: proc } = input;
  const args = proc.args ?? [];
  if (args.length === 0) throw new PlanError("/process/args", "must name the program to run");
  if (proc.apparmorProfile && !input.apparmor) throw new PlanError("/process/apparmorProfile", "AppArmor is not enabled on this host");
  if (proc.selinuxLabel) throw new PlanError("/process/selinuxLabel", "SELinux is not enabled on this host");
  const seccompOp = seccompOf(spec);

  const ops: Op[] = [{ op: "stage", name: "tsrun:[1:EXEC]" }];
  // execCPUAffinity.initial: where the set-up runs until tsrun moves it into the container's
  // cgroups (at the sync below); stage 2 inherits it unless the cpuset there changes it.
  if (proc.execCPUAffinity?.initial?.trim()) {
    const k = require("./kernel.ts") as typeof import("./kernel.ts");
    ops.push(k.affinityOp(proc.execCPUAffinity, "initial")!);
  }
  ops.push(...moveSelfToCgroupsOps(3 + input.preserveFds + (input.pidfd ? 1 : 0), input.cgroupTasks));
  ops.push(...joinOps(spec, input.initPid, input.pidfd ? 3 + input.preserveFds : undefined), { op: "stage", name: "tsrun:[2:EXEC]" });
  ops.push(...processOps(proc, { preserveFds: input.preserveFds, seccomp: seccompOp, devConsole: false, linux: spec.linux, exec: true, denySetgroups: input.denySetgroups ?? false }));
  ops.push(execOp(proc, args));
  return { ops };
}

/** The container's namespaces in the order they are joined. */
export function joinedNamespaces(spec: Spec): NamespaceType[] {
  const types = new Set((spec.linux?.namespaces ?? []).map((n) => n.type));
  return JOIN_ORDER.filter((t) => types.has(t));
}

/** Into every namespace of the init, then the sync point for the cgroups, then the fork. */
function joinOps(spec: Spec, initPid: number, pidfd: number | undefined): Op[] {
  const types = joinedNamespaces(spec);
  const ops: Op[] = pidfd !== undefined
    ? [setnsPidfdOp(pidfd, types.reduce((m, t) => m | CLONE_FLAGS[t], 0))]
    : types.map((t) => ({ op: "setns", path: `/proc/${initPid}/ns/${NS_PROC_NAMES[t]}`, nstype: CLONE_FLAGS[t] }));
  // tsrun moves stage 1 into the container's cgroups here, so that stage 2 is born in them.
  ops.push({ op: "sync", code: SYNC.NAMESPACES });
  // A joined pid (and time) namespace holds only the children of the process that joined it.
  ops.push({ op: "fork", flags: 0 });
  return ops;
}

export interface HookPlanInput {
  spec: Spec;
  hook: Hook;
  /** The container's init, in tsrun's pid namespace. */
  initPid: number;
  /**
   * createContainer: the rootfs's host path, the hook's cwd (the init has not pivoted yet).
   * Absent for startContainer: the hook runs in the container's root, in process.cwd.
   */
  rootfs?: string;
  apparmor?: boolean;
  denySetgroups?: boolean;
}

/**
 * A createContainer or startContainer hook, run where runc runs it (in its init, which tsrun's
 * init leaves to tsrun): in every namespace of the container's init (tsrun passes a pidfd of it
 * as fd 3), born in its cgroups, with the hook's args and env and, on
 * stdin, the state tsrun passes as fd 0. createContainer: as the
 * init is at that point, root with every capability (of its user namespace), before pivot_root,
 * in the rootfs. startContainer: as the container's process is set up (user, capabilities,
 * rlimits, no_new_privs, seccomp, cwd), in the container's root.
 */
export function compileHookPlan(input: HookPlanInput): InitPlan {
  const { spec, hook } = input;
  const argv = hook.args?.length ? hook.args : [hook.path];
  const env = hook.env ?? [];
  const exec: Op = { op: "exec", file: hook.path, argv, env, path: DEFAULT_PATH };
  if (input.rootfs === undefined) {
    const { terminal: _t, consoleSize: _c, execCPUAffinity: _a, ...proc } = spec.process ?? { cwd: "/" };
    const { ops } = compileExecPlan({ ...input, process: { ...proc, args: argv, env }, preserveFds: 0, pidfd: true });
    // the hook's path, not its argv[0], is the program (found before the set-up is over)
    return { ops: ops.map((o) => (o.op === "exec" ? exec : o.op === "resolveExec" ? { op: "resolveExec", file: hook.path, path: DEFAULT_PATH } : o)) };
  }
  const ops: Op[] = [{ op: "stage", name: "tsrun:[1:HOOK]" }, ...joinOps(spec, input.initPid, 3), { op: "stage", name: "tsrun:[2:HOOK]" }];
  // the init's credentials at this point: root of its user namespace (stage 1 took them)
  if (spec.linux?.namespaces?.some((n) => n.type === "user")) ops.push({ op: "setUser", uid: 0, gid: 0, groups: [], setgroups: false });
  ops.push({ op: "closeFds", first: 3 }, { op: "chdir", path: input.rootfs }, exec);
  return { ops };
}
