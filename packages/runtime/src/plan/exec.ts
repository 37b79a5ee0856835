// An exec'd process's plan: join every namespace of the container's init, then set the process
// up as the init was (user, capabilities, rlimits, no_new_privs, AppArmor, seccomp) and exec.
// Pure, like compile.ts: the same inputs always give the same plan.
import type { Process, Spec } from "@tsrun/ocispec/src/index.ts";
import { CAPABILITIES, CLONE_FLAGS, NS_PROC_NAMES, RLIMITS, type NamespaceType } from "@tsrun/ocispec/src/linux-names.ts";
import { DEFAULT_PATH, PlanError } from "./compile.ts";
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
}

const PR_SET_NO_NEW_PRIVS = 38;
const PR_SET_DUMPABLE = 4;

/**
 * The order namespaces are joined in. The user namespace first: it grants what joining the others
 * takes. The mount namespace last: once in it, /proc/<pid>/ns/… would be the container's /proc,
 * where the init has another pid.
 */
const JOIN_ORDER: readonly NamespaceType[] = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"];

function capMask(names: readonly string[] | undefined): bigint {
  let m = 0n;
  for (const n of names ?? []) {
    const bit = (CAPABILITIES as readonly string[]).indexOf(n);
    if (bit >= 0) m |= 1n << BigInt(bit);
  }
  return m;
}

export function compileExecPlan(input: ExecPlanInput): InitPlan {
  const { spec, process: proc } = input;
  const args = proc.args ?? [];
  if (args.length === 0) throw new PlanError("/args", "must name the program to run");
  if (proc.apparmorProfile && !input.apparmor) throw new PlanError("/apparmorProfile", "AppArmor is not enabled on this host");
  if (proc.selinuxLabel) throw new PlanError("/selinuxLabel", "SELinux is not enabled on this host");
  const seccomp = spec.linux?.seccomp ? (require("../seccomp/index.ts") as typeof import("../seccomp/index.ts")).compileSeccomp(spec.linux.seccomp) : undefined;
  const seccompOp: Op | undefined = seccomp && { op: "seccomp", flags: seccomp.flags, program: seccomp.program };

  const types = new Set((spec.linux?.namespaces ?? []).map((n) => n.type));
  const ops: Op[] = [{ op: "stage", name: "tsrun:[1:EXEC]" }];
  for (const t of JOIN_ORDER)
    if (types.has(t)) ops.push({ op: "setns", path: `/proc/${input.initPid}/ns/${NS_PROC_NAMES[t]}`, nstype: CLONE_FLAGS[t] });
  // tsrun moves stage 1 into the container's cgroups here, so that stage 2 is born in them.
  ops.push({ op: "sync", code: SYNC.NAMESPACES });
  // A joined pid (and time) namespace holds only the children of the process that joined it.
  ops.push({ op: "fork", flags: 0 }, { op: "stage", name: "tsrun:[2:EXEC]" });

  const user = proc.user ?? { uid: 0, gid: 0 };
  if (proc.terminal) ops.push({ op: "console", rows: proc.consoleSize?.height ?? 0, cols: proc.consoleSize?.width ?? 0, devConsole: false, uid: user.uid ?? 0 });
  else ops.push({ op: "setsid" });
  if (proc.oomScoreAdj !== undefined) ops.push({ op: "writeFile", path: "/proc/self/oom_score_adj", data: String(proc.oomScoreAdj) });
  for (const r of proc.rlimits ?? []) {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw new PlanError("/rlimits", `unknown resource limit ${r.type}`);
    ops.push({ op: "setrlimit", resource, soft: BigInt(r.soft), hard: BigInt(r.hard) });
  }
  if (proc.noNewPrivileges) ops.push({ op: "prctl", option: PR_SET_NO_NEW_PRIVS, arg: 1n });
  ops.push({ op: "closeFds", first: 3 + input.preserveFds });
  if (seccompOp && !proc.noNewPrivileges) ops.push(seccompOp);
  ops.push({ op: "setUser", uid: user.uid ?? 0, gid: user.gid ?? 0, groups: user.additionalGids ?? [], setgroups: true });
  const caps = proc.capabilities ?? {};
  const permitted = capMask(caps.permitted);
  const inheritable = capMask(caps.inheritable);
  ops.push({ op: "caps", bounding: capMask(caps.bounding), effective: capMask(caps.effective), permitted, inheritable, ambient: capMask(caps.ambient) & permitted & inheritable });
  // As for the init: closed to ptrace and /proc until the program's own exec.
  ops.push({ op: "prctl", option: PR_SET_DUMPABLE, arg: 0n });
  ops.push({ op: "umask", mask: user.umask ?? 0o022 });
  ops.push({ op: "chdir", path: proc.cwd || "/" });
  if (proc.apparmorProfile) ops.push({ op: "writeFile", path: "/proc/self/attr/apparmor/exec", data: `exec ${proc.apparmorProfile}` });
  ops.push({ op: "resolveExec" });
  if (seccompOp && proc.noNewPrivileges) ops.push(seccompOp);
  const env = proc.env ?? [];
  const pathVar = env.findLast((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
  ops.push({ op: "exec", file: args[0]!, argv: args, env, path: pathVar });
  return { ops };
}
