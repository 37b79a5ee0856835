// An exec'd process's plan: join every namespace of the container's init, then set the process
// up as the init was (user, capabilities, rlimits, no_new_privs, AppArmor, seccomp) and exec.
// Pure, like compile.ts: the same inputs always give the same plan.
import type { Process, Spec } from "@tsrun/ocispec/core";
import { CLONE_FLAGS, NS_PROC_NAMES, type NamespaceType } from "@tsrun/ocispec/core";
import { execOp, PlanError, processOps, seccompOf } from "./compile.ts";
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

  const types = new Set((spec.linux?.namespaces ?? []).map((n) => n.type));
  const ops: Op[] = [{ op: "stage", name: "tsrun:[1:EXEC]" }];
  // execCPUAffinity.initial: where the set-up runs until tsrun moves it into the container's
  // cgroups (at the sync below); stage 2 inherits it unless the cpuset there changes it.
  if (proc.execCPUAffinity?.initial?.trim()) {
    const k = require("./kernel.ts") as typeof import("./kernel.ts");
    ops.push(k.affinityOp(proc.execCPUAffinity, "initial")!);
  }
  for (const t of JOIN_ORDER)
    if (types.has(t)) ops.push({ op: "setns", path: `/proc/${input.initPid}/ns/${NS_PROC_NAMES[t]}`, nstype: CLONE_FLAGS[t] });
  // tsrun moves stage 1 into the container's cgroups here, so that stage 2 is born in them.
  ops.push({ op: "sync", code: SYNC.NAMESPACES });
  // A joined pid (and time) namespace holds only the children of the process that joined it.
  ops.push({ op: "fork", flags: 0 }, { op: "stage", name: "tsrun:[2:EXEC]" });

  ops.push(...processOps(proc, { preserveFds: input.preserveFds, seccomp: seccompOp, devConsole: false, linux: spec.linux, exec: true, denySetgroups: input.denySetgroups ?? false }));
  ops.push(execOp(proc, args));
  return { ops };
}
