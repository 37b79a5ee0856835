// config.json → InitPlan. Pure: everything it needs from the host comes in `PlanInput`, so it is
// unit-tested without root and the same config always gives the same plan.
import { TsrunError } from "../errors.ts";
import type { LinuxDevice, Mount, Process, Spec } from "@tsrun/ocispec/core";
import { CAPABILITIES, CLONE_FLAGS, MS, RLIMITS, sysctlNamespace, sysctlPath, type NamespaceType } from "@tsrun/ocispec/core";
import { isBind, parseMountOptions } from "./mounts.ts";
import { SYNC, type InitPlan, type Op } from "./ops.ts";
import { moveSelfToCgroupsOps, resetAffinityOp } from "./fold.ts";

/** Where the host's cgroups for this container are, for `type: cgroup` mounts. */
export type CgroupMountSource =
  | { kind: "v1"; controllers: { name: string; hostPath: string }[] }
  | { kind: "v2"; hostPath: string };

export interface PlanInput {
  spec: Spec;
  /** Absolute bundle directory: relative bind sources are resolved against it, as runc does. */
  bundle: string;
  /** Absolute host path of the root filesystem. */
  rootfs: string;
  /** Host path of the exec fifo that `start` opens. */
  execFifo: string;
  /** Extra fds passed at 3…3+n-1 (--preserve-fds). */
  preserveFds: number;
  noPivot: boolean;
  /** For --no-pivot: the host's full proc and sysfs mount points (mountinfo), to hide. */
  hostProcMounts?: string[];
  cgroups?: CgroupMountSource;
  /** The container id: names its session keyring. */
  id?: string;
  /** --no-new-keyring: keep the caller's session keyring. */
  noNewKeyring?: boolean;
  /** AppArmor is enabled on this host (/sys/module/apparmor/parameters/enabled). */
  apparmor?: boolean;
  /** The mount point the rootfs lives on (host mountinfo): made private when "/" is shared, or pivot_root refuses. */
  rootfsParentMount?: string;
  /** For each idmapped mount (by index in `mounts`): the fd, in the executor, of a user namespace with its mapping. */
  idmapFds?: Record<number, number>;
  /** What a host path is, for bind mounts (a file target must be a file). Injected to keep this pure. */
  hostPathKind: (path: string) => "file" | "dir" | "missing" | "other";
  /** Whether a host path is on a procfs (statfs), for a bind mount onto /proc. Without it, such binds are refused. */
  hostIsProcfs?: (path: string) => boolean;
  /** tsrun is not root (rootless): what only privilege can do is done the unprivileged way, as runc does it for a rootless euid. */
  unprivileged?: boolean;
  /**
   * cgroup v1 directories stage 1 moves itself into first (fold.ts moveSelfToCgroupOps): their
   * `tasks` files, opened by tsrun, are the fds after the preserved and idmap ones, in order.
   */
  cgroupTasks?: readonly string[];
}

/** A config the plan cannot carry out: the field's pointer leads the message and is a field of its own. */
export class PlanError extends TsrunError {
  override name = "PlanError";
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(`${pointer}: ${message}`, { pointer });
  }
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PR_SET_NO_NEW_PRIVS = 38;
const PR_SET_DUMPABLE = 4;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFREG = 0o100000;

/** The devices every container gets when /dev is a fresh tmpfs (as runc). */
const DEFAULT_DEVICES: LinuxDevice[] = [
  { path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666 },
  { path: "/dev/zero", type: "c", major: 1, minor: 5, fileMode: 0o666 },
  { path: "/dev/full", type: "c", major: 1, minor: 7, fileMode: 0o666 },
  { path: "/dev/random", type: "c", major: 1, minor: 8, fileMode: 0o666 },
  { path: "/dev/urandom", type: "c", major: 1, minor: 9, fileMode: 0o666 },
  { path: "/dev/tty", type: "c", major: 5, minor: 0, fileMode: 0o666 },
];
const DEV_SYMLINKS: [string, string][] = [
  ["/proc/self/fd", "/dev/fd"],
  ["/proc/self/fd/0", "/dev/stdin"],
  ["/proc/self/fd/1", "/dev/stdout"],
  ["/proc/self/fd/2", "/dev/stderr"],
];

/** A container path as the executor's `inRoot` resolution wants it: relative, normalised. */
export function inRootPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return parts.length ? parts.join("/") : ".";
}

function capMask(names: readonly string[] | undefined): bigint {
  let m = 0n;
  for (const n of names ?? []) {
    const bit = (CAPABILITIES as readonly string[]).indexOf(n);
    if (bit >= 0) m |= 1n << BigInt(bit);
  }
  return m;
}

function namespaces(spec: Spec): { fresh: Set<NamespaceType>; joined: { type: NamespaceType; path: string }[] } {
  const fresh = new Set<NamespaceType>();
  const joined: { type: NamespaceType; path: string }[] = [];
  for (const ns of spec.linux?.namespaces ?? []) {
    if (ns.path) joined.push({ type: ns.type, path: ns.path });
    else fresh.add(ns.type);
  }
  // Join the user namespace first: it decides what the others may do.
  joined.sort((a, b) => (a.type === "user" ? -1 : b.type === "user" ? 1 : 0));
  return { fresh, joined };
}

export function compilePlan(input: PlanInput): InitPlan {
  const { spec } = input;
  const proc = spec.process;
  if (!proc) throw new PlanError("/process", "is required to create a container");
  const args = proc.args ?? [];
  if (args.length === 0) throw new PlanError("/process/args", "must name the program to run");
  const seccompOp = seccompOf(spec);
  if (proc.apparmorProfile && !input.apparmor) throw new PlanError("/process/apparmorProfile", "AppArmor is not enabled on this host");
  if (proc.selinuxLabel) throw new PlanError("/process/selinuxLabel", "SELinux is not enabled on this host");
  // tsrun has no resctrl support, and this host (like most VMs) has no resctrl mounted: the spec
  // wants an error then, never a container without the asked-for cache allocation.
  if (spec.linux?.intelRdt) throw new PlanError("/linux/intelRdt", "tsrun does not implement Intel RDT (no resctrl file system is used): remove linux.intelRdt");

  const { fresh, joined } = namespaces(spec);
  checkNetDevices(spec, fresh.has("network"));
  // Without a mount namespace of its own (new, or joined by path) the container's mounts would
  // land in tsrun's: refused (runc goes ahead and leaves mounts behind on the host).
  if (!fresh.has("mount") && !joined.some((j) => j.type === "mount"))
    throw new PlanError("/linux/namespaces", "tsrun needs a mount namespace (new, or joined by path) to set up the root filesystem");
  // The exec fifo is opened before any namespace is entered: it lives in tsrun's state
  // directory, which a user namespace's root may not be allowed to reach.
  const ops: Op[] = [{ op: "stage", name: "tsrun:[1:CHILD]" }];
  // Into the container's cgroups before anything else (a namespace joined, the cgroup namespace
  // made at the fork, whose root is the cgroup the process is in then).
  ops.push(...moveSelfToCgroupsOps(3 + input.preserveFds + Object.keys(input.idmapFds ?? {}).length, input.cgroupTasks));
  ops.push({ op: "openFifo", path: input.execFifo });
  // With a new user namespace, bind sources are cloned now (open_tree), with tsrun's
  // credentials: the container's root may not be allowed to search their directories, and a
  // mount of the old namespace cannot be bound in the new one (runc does the same).
  const bindFds = new Map<number, number>();
  // Unprivileged, tsrun cannot clone a mount tree in its own mount namespace (OPEN_TREE_CLONE
  // needs CAP_SYS_ADMIN over it): binds are then made in the container's new mount namespace, as
  // runc makes them rootless (see mountOps).
  if (fresh.has("user") && !input.unprivileged) {
    // High fixed numbers, above the preserved and idmap fds, so that the mounts can name them.
    let fd = 64 + input.preserveFds + Object.keys(input.idmapFds ?? {}).length;
    (spec.mounts ?? []).forEach((m, i) => {
      const parsed = parseMountOptions(m.options);
      const idmapped = m.uidMappings !== undefined || m.gidMappings !== undefined || parsed.extensions.includes("idmap") || parsed.extensions.includes("ridmap");
      if (!isBind(m.type, parsed) || idmapped) return;
      ops.push({ op: "openTree", path: sourcePath(input, m, i), fd, recursive: (parsed.flags & MS.REC) !== 0 });
      bindFds.set(i, fd++);
    });
  }

  // Stage 1: join, create the user and time namespaces (their set-up needs tsrun or must precede
  // the first process in them), then fork stage 2 into the rest.
  for (const j of joined) ops.push({ op: "setns", path: j.path, nstype: CLONE_FLAGS[j.type] });
  if (fresh.has("user")) {
    ops.push({ op: "unshare", flags: CLONE_FLAGS.user });
    // The executor is not dumpable, so its /proc files are root's: an unprivileged tsrun could
    // not open uid_map, setgroups and gid_map. As runc's nsexec does, stage 1 is dumpable only
    // while it waits for the maps (no other namespace joined yet), and not dumpable right after.
    if (input.unprivileged) ops.push({ op: "prctl", option: PR_SET_DUMPABLE, arg: 1n }, { op: "sync", code: SYNC.USERNS }, { op: "prctl", option: PR_SET_DUMPABLE, arg: 0n });
    else ops.push({ op: "sync", code: SYNC.USERNS });
    ops.push({ op: "setUser", uid: 0, gid: 0, groups: [], setgroups: false });
  }
  if (fresh.has("time")) {
    ops.push({ op: "unshare", flags: CLONE_FLAGS.time });
    const offsets = spec.linux?.timeOffsets ?? {};
    const lines = Object.entries(offsets)
      .filter(([clock]) => clock === "monotonic" || clock === "boottime")
      .map(([clock, o]) => `${clock} ${o?.secs ?? 0} ${o?.nanosecs ?? 0}\n`);
    if (lines.length) ops.push({ op: "writeFile", path: "/proc/self/timens_offsets", data: lines.join("") });
  }
  ops.push({ op: "sync", code: SYNC.NAMESPACES });
  let forkFlags = 0;
  for (const t of ["pid", "mount", "uts", "ipc", "network", "cgroup"] as const) if (fresh.has(t)) forkFlags |= CLONE_FLAGS[t];
  ops.push({ op: "fork", flags: forkFlags });

  // Stage 2: the container's init.
  ops.push({ op: "stage", name: "tsrun:[2:INIT]" });
  ops.push(...rootfsOps(input, fresh.has("user"), bindFds));
  // tsrun runs the createContainer hooks here (hooks/container.ts), in the init's namespaces.
  // Joining them takes ptrace access to the init, which only privilege has while it is not
  // dumpable: an unprivileged tsrun gets it the way it gets its id maps written (as runc's
  // nsexec), the init dumpable only while it waits for the hooks (no other process is in the
  // container then).
  ops.push(...aroundHooks(!!input.unprivileged && !!spec.hooks?.createContainer?.length, { op: "sync", code: SYNC.MOUNTS }));
  // --no-pivot keeps the host's mounts under the new root: its full proc and sysfs mounts
  // (outside the rootfs) are taken away first, as runc does.
  if (input.noPivot)
    for (const m of input.hostProcMounts ?? []) if (m !== input.rootfs && !m.startsWith(`${input.rootfs}/`)) ops.push({ op: "hideMount", path: m });
  ops.push(input.noPivot ? { op: "chrootMove", path: input.rootfs } : { op: "pivotRoot", path: input.rootfs });
  const propagation = spec.linux?.rootfsPropagation;
  if (propagation) ops.push({ op: "mount", source: null, target: "/", fstype: null, flags: propagationFlag(propagation), data: null });

  for (const [key, value] of Object.entries(spec.linux?.sysctl ?? {})) {
    // The config was validated, but the plan is the last line: never a path out of /proc/sys.
    const parts = sysctlPath(key);
    if (!parts || !sysctlNamespace(parts)) throw new PlanError(`/linux/sysctl/${key}`, "is not a per-namespace sysctl");
    ops.push({ op: "writeFile", path: `/proc/sys/${parts.join("/")}`, data: value });
  }
  for (const p of spec.linux?.readonlyPaths ?? []) ops.push({ op: "readonlyPath", path: p });
  for (const p of spec.linux?.maskedPaths ?? []) ops.push({ op: "maskPath", path: p });
  if (spec.root?.readonly) ops.push({ op: "remountRootReadonly" });
  if (spec.hostname !== undefined && fresh.has("uts")) ops.push({ op: "sethostname", name: spec.hostname });
  if (spec.domainname !== undefined && fresh.has("uts")) ops.push({ op: "setdomainname", name: spec.domainname });

  if (!input.noNewKeyring) ops.push({ op: "sessionKeyring", name: `_ses.${input.id ?? "tsrun"}` });
  // An unprivileged tsrun writes "deny" to a new user namespace's setgroups (the kernel requires it).
  ops.push(...processOps(proc, { preserveFds: input.preserveFds, seccomp: seccompOp, devConsole: true, linux: spec.linux, denySetgroups: !!input.unprivileged && fresh.has("user") }));
  // `start` runs the startContainer hooks (hooks/container.ts) before it opens the fifo; an
  // unprivileged one needs the init dumpable for them, as above, until `start` opens the fifo.
  ops.push(...aroundHooks(!!input.unprivileged && !!spec.hooks?.startContainer?.length, { op: "sync", code: SYNC.CREATED }, { op: "waitFifo" }));
  ops.push(execOp(proc, args));
  return { ops };
}

/** `steps`, with the process dumpable during them when `dumpable` (and not dumpable after). */
function aroundHooks(dumpable: boolean, ...steps: Op[]): Op[] {
  if (!dumpable) return steps;
  return [{ op: "prctl", option: PR_SET_DUMPABLE, arg: 1n }, ...steps, { op: "prctl", option: PR_SET_DUMPABLE, arg: 0n }];
}

/**
 * linux.netDevices, judged before anything is made (tsrun moves the devices once the init
 * exists): a new network namespace to move them into, names the kernel takes, no two devices
 * given the same name inside (a "%d" template is the kernel's to number).
 */
function checkNetDevices(spec: Spec, newNetns: boolean): void {
  const devices = Object.entries(spec.linux?.netDevices ?? {});
  if (!devices.length) return;
  if (!newNetns) throw new PlanError("/linux/netDevices", "moving network devices needs a new network namespace (linux.namespaces has no network entry without a path)");
  const bad = (n: string) =>
    n === "" || n === "." || n === ".." ? "is not an interface name" : Buffer.byteLength(n) > 15 ? "is longer than 15 bytes (IFNAMSIZ)" : /[/:\s]/.test(n) ? "contains '/', ':' or white space" : undefined;
  const inside = new Map<string, string>();
  for (const [host, dev] of devices) {
    const pointer = `/linux/netDevices/${host.replace(/~/g, "~0").replace(/\//g, "~1")}`;
    const problem = bad(host);
    if (problem) throw new PlanError(pointer, `host device name ${JSON.stringify(host)} ${problem}`);
    const name = dev.name || host;
    const nameProblem = bad(name);
    if (nameProblem) throw new PlanError(`${pointer}/name`, `${JSON.stringify(name)} ${nameProblem}`);
    if (inside.has(name) && !name.includes("%d")) throw new PlanError(`${pointer}/name`, `${name} is also the name given to ${inside.get(name)} in the container`);
    inside.set(name, host);
  }
}

/**
 * The process's own set-up, the same for a container's init and an exec'd process: terminal or
 * session, rlimits, no_new_privs, fds, cwd, seccomp, user, capabilities, not dumpable, umask,
 * AppArmor, and the program found. `devConsole`: the init's terminal is also /dev/console.
 */
export function processOps(
  proc: Process,
  opts: {
    preserveFds: number;
    seccomp: Op | undefined;
    devConsole: boolean;
    /** The container's linux section: its personality and memory policy apply to every process. */
    linux?: Spec["linux"];
    /** An exec'd process: execCPUAffinity applies (the spec excludes the init). */
    exec?: boolean;
    /** setgroups(2) is denied in the process's user namespace (rootless). */
    denySetgroups?: boolean;
  },
): Op[] {
  const ops: Op[] = [];
  const seccompOp = opts.seccomp;
  const user = proc.user ?? { uid: 0, gid: 0 };
  if (proc.terminal) ops.push({ op: "console", rows: proc.consoleSize?.height ?? 0, cols: proc.consoleSize?.width ?? 0, devConsole: opts.devConsole, uid: user.uid ?? 0 });
  else ops.push({ op: "setsid" });
  if (proc.oomScoreAdj !== undefined) ops.push({ op: "writeFile", path: "/proc/self/oom_score_adj", data: String(proc.oomScoreAdj) });
  for (const r of proc.rlimits ?? []) {
    const resource = RLIMITS[r.type];
    if (resource === undefined) throw new PlanError("/process/rlimits", `unknown resource limit ${r.type}`);
    ops.push({ op: "setrlimit", resource, soft: BigInt(r.soft), hard: BigInt(r.hard) });
  }
  if (proc.noNewPrivileges) ops.push({ op: "prctl", option: PR_SET_NO_NEW_PRIVS, arg: 1n });
  // As runc: after no_new_privs, while the process is still root with every capability (a
  // real-time policy or class takes CAP_SYS_NICE/CAP_SYS_ADMIN) and before any seccomp filter
  // (the profile is the program's and may deny these calls).
  ops.push(...kernelSettingOps(proc, opts.linux, opts.exec ?? false));
  ops.push({ op: "closeFds", first: 3 + opts.preserveFds });
  // The cwd is entered as root first, as runc's finalizeNamespace does: a directory only root may
  // enter is still the container's cwd (runc's "create can chdir if runc has access"); a refusal
  // leaves it to the chdir after setUser. Before any seccomp filter too: the profile is the
  // program's, and must not block tsrun's getcwd check (a profile denying getcwd failed create).
  ops.push({ op: "chdir", path: proc.cwd, beforeUser: true });
  // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN: load it while the init still
  // has it, before the user and capabilities change (as runc does).
  if (seccompOp && !proc.noNewPrivileges) ops.push(seccompOp);
  // With setgroups denied in the user namespace (a rootless container), setgroups(2) would fail:
  // the groups stay as the namespace has them, as runc's setupUser leaves them, and additional
  // groups, which could not be set, are refused in runc's words.
  if (opts.denySetgroups && user.additionalGids?.length)
    throw new PlanError("/process/user/additionalGids", "cannot set any additional groups in a rootless container (tsrun is not root, so setgroups is denied in its user namespace)");
  const caps = proc.capabilities ?? {};
  // The bounding set while the process is still root with CAP_SETPCAP, as runc's finalizeNamespace does.
  ops.push({ op: "boundingSet", keep: capMask(caps.bounding) });
  ops.push({ op: "setUser", uid: user.uid ?? 0, gid: user.gid ?? 0, groups: user.additionalGids ?? [], setgroups: !opts.denySetgroups });
  const permitted = capMask(caps.permitted);
  const inheritable = capMask(caps.inheritable);
  ops.push({
    op: "caps",
    effective: capMask(caps.effective),
    permitted,
    inheritable,
    // The kernel raises an ambient capability only when it is permitted and inheritable; runc
    // treats the rest as best effort (its default spec lists ambient caps but no inheritable
    // ones), so those are left out rather than failing the container.
    ambient: capMask(caps.ambient) & permitted & inheritable,
  });
  // Changing uid makes a process dumpable again (to fs.suid_dumpable): keep it closed to
  // ptrace and /proc until the exec of the user's program resets it.
  ops.push({ op: "prctl", option: PR_SET_DUMPABLE, arg: 0n });
  ops.push({ op: "umask", mask: user.umask ?? 0o022 });
  ops.push({ op: "chdir", path: proc.cwd });
  // The AppArmor profile the program is exec'd into.
  if (proc.apparmorProfile) ops.push({ op: "writeFile", path: "/proc/self/attr/apparmor/exec", data: `exec ${proc.apparmorProfile}` });
  // Find the program now, as runc does: after `start` nobody is left to hear that it is missing.
  const { file, path } = execOp(proc, proc.args ?? []);
  ops.push({ op: "resolveExec", file, path });
  // With no_new_privs, as late as possible (fewer of the executor's own syscalls must pass the
  // filter) but before "created", so that a filter the kernel refuses fails the create.
  if (seccompOp && proc.noNewPrivileges) ops.push(seccompOp);
  return ops;
}

/**
 * scheduler, ioPriority, personality, memoryPolicy and, for an exec'd process, the final CPU
 * affinity: one syscall op each. Loaded only when a config has one (the module is start-up cost).
 */
function kernelSettingOps(proc: Process, lx: Spec["linux"], exec: boolean): Op[] {
  const final = exec && proc.execCPUAffinity?.final?.trim();
  // The process is in the container's cgroups since stage 1, but keeps the affinity tsrun was
  // started with (see resetAffinityOp) unless told otherwise: execCPUAffinity.final replaces it.
  if (!proc.scheduler && !proc.ioPriority && !lx?.personality && !lx?.memoryPolicy && !final) return [resetAffinityOp()];
  const k = require("./kernel.ts") as typeof import("./kernel.ts");
  const ops: Op[] = [];
  if (proc.scheduler) ops.push(k.schedulerOp(proc.scheduler));
  if (proc.ioPriority) ops.push(k.ioPriorityOp(proc.ioPriority));
  if (lx?.personality) ops.push(k.personalityOp(lx.personality));
  if (lx?.memoryPolicy) ops.push(k.memoryPolicyOp(lx.memoryPolicy));
  const aff = exec ? k.affinityOp(proc.execCPUAffinity, "final") : undefined;
  ops.push(aff ?? resetAffinityOp());
  return ops;
}

/**
 * The container's seccomp filter as an op, compiled first: a profile tsrun cannot compile fails
 * before anything is made. Loaded only for a config that has a profile: the syscall tables are
 * start-up cost otherwise.
 */
export function seccompOf(spec: Spec): Op | undefined {
  const seccomp = spec.linux?.seccomp ? (require("../seccomp/index.ts") as typeof import("../seccomp/index.ts")).compileSeccomp(spec.linux.seccomp) : undefined;
  return seccomp && { op: "seccomp", flags: seccomp.flags, program: seccomp.program };
}

/** execve of the process's program; a relative one is searched in the process's PATH. */
export function execOp(proc: Process, args: string[]): Extract<Op, { op: "exec" }> {
  const env = proc.env ?? [];
  const pathVar = env.findLast((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
  return { op: "exec", file: args[0] ?? "", argv: args, env, path: pathVar };
}

function propagationFlag(p: string): number {
  const rec = p.startsWith("r") ? MS.REC : 0;
  const base = p.replace(/^r/, "");
  const f = base === "shared" ? MS.SHARED : base === "slave" ? MS.SLAVE : base === "private" ? MS.PRIVATE : MS.UNBINDABLE;
  return f | rec;
}

function rootfsOps(input: PlanInput, userns: boolean, bindFds: ReadonlyMap<number, number>): Op[] {
  const { spec } = input;
  const ops: Op[] = [];
  // Keep the host's mount events from propagating in, and make the rootfs a mount point of its
  // own so that pivot_root accepts it.
  const rootProp = spec.linux?.rootfsPropagation;
  // An unbindable tree cannot be bound (EINVAL: the rootfs onto itself, every bind source): it
  // stays private until pivot_root and becomes unbindable after it, with the op that follows
  // pivotRoot (runc applies it here and fails the same way).
  const preProp = !rootProp ? MS.SLAVE : rootProp.includes("unbindable") ? MS.PRIVATE : propagationFlag(rootProp);
  ops.push({ op: "mount", source: null, target: "/", fstype: null, flags: preProp | MS.REC, data: null });
  // pivot_root refuses a new root whose parent mount is shared: with "/" (r)shared, make the
  // mount the rootfs sits on private (that one mount only), as runc does.
  if (rootProp?.includes("shared") && input.rootfsParentMount)
    ops.push({ op: "mount", source: null, target: input.rootfsParentMount, fstype: null, flags: MS.PRIVATE, data: null });
  ops.push({ op: "mount", source: input.rootfs, target: input.rootfs, fstype: null, flags: MS.BIND | MS.REC, data: null });
  ops.push({ op: "setRoot", path: input.rootfs });

  let devIsTmpfs = false;
  let hasDevpts = false;
  const mounts = spec.mounts ?? [];
  const dests = mounts.map((m) => inRootPath(m.destination));
  const cwdPath = spec.process?.cwd ? inRootPath(spec.process.cwd) : ".";
  // A read-only tmpfs that later mounts, /dev's nodes or the cwd go inside (their mount points
  // and nodes must be made in it) is mounted writable and made read-only once they are in
  // place (runc does it for /dev only and fails the others; runc#3248). Other file systems
  // (sysfs, proc) already hold their mount points.
  const remountReadonly: Op[] = [];
  mounts.forEach((m, i) => {
    const dest = dests[i]!;
    if (dest === "dev" && m.type === "tmpfs") devIsTmpfs = true;
    if (dest === "dev/pts" && m.type === "devpts") hasDevpts = true;
    const parsed = parseMountOptions(m.options);
    const inside = (p: string) => dest === "." || p.startsWith(`${dest}/`);
    const holdsLater =
      dests.slice(i + 1).some(inside) || (dest === "dev" && m.type === "tmpfs") || (spec.linux?.devices ?? []).some((d) => inside(inRootPath(d.path))) || inside(cwdPath);
    if (parsed.flags & MS.RDONLY && m.type === "tmpfs" && !isBind(m.type, parsed) && holdsLater) {
      ops.push(...mountOps(input, { ...m, options: (m.options ?? []).filter((o) => o !== "ro") }, i, bindFds.get(i), userns));
      const keep = parsed.flags & (MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME);
      remountReadonly.push({ op: "mount", source: null, target: dest, fstype: null, flags: MS.REMOUNT | MS.RDONLY | keep, data: null, inRoot: true });
    } else ops.push(...mountOps(input, m, i, bindFds.get(i), userns));
  });

  if (devIsTmpfs) {
    for (const d of DEFAULT_DEVICES) ops.push(deviceOp(d, userns));
    for (const [target, path] of DEV_SYMLINKS) ops.push({ op: "symlink", target, path: inRootPath(path), inRoot: true });
    if (hasDevpts) ops.push({ op: "symlink", target: "pts/ptmx", path: "dev/ptmx", inRoot: true });
  }
  for (const d of spec.linux?.devices ?? []) ops.push(deviceOp(d, userns));
  if (cwdPath !== ".") ops.push({ op: "mkdir", path: cwdPath, mode: 0o755, inRoot: true });
  // The console op binds the pty on /dev/console later, when a read-only /dev could no longer
  // take the file: it is made now.
  if (spec.process?.terminal && remountReadonly.some((o) => o.op === "mount" && o.target === "dev"))
    ops.push({ op: "mknod", path: "dev/console", mode: S_IFREG | 0o666, major: 0, minor: 0, uid: 0, gid: 0, inRoot: true });
  ops.push(...remountReadonly.reverse());
  return ops;
}

function deviceOp(d: LinuxDevice, userns: boolean): Op {
  const kind = d.type === "b" ? S_IFBLK : d.type === "p" ? S_IFIFO : S_IFCHR;
  const op: Op = {
    op: "mknod",
    path: inRootPath(d.path),
    mode: kind | ((d.fileMode ?? 0o666) & 0o7777),
    major: d.major ?? 0,
    minor: d.minor ?? 0,
    uid: d.uid ?? 0,
    gid: d.gid ?? 0,
    inRoot: true,
  };
  // In a user namespace mknod is refused: bind the host's node instead, as runc does.
  if (userns && d.type !== "p") op.bindFallback = d.path;
  return op;
}

/** The MOUNT_ATTR_* bits (mount_setattr) of a mount's MS_* flags: rdonly, nosuid, nodev, noexec. */
function mountAttrs(flags: number): number {
  return (flags & MS.RDONLY ? 0x1 : 0) | (flags & MS.NOSUID ? 0x2 : 0) | (flags & MS.NODEV ? 0x4 : 0) | (flags & MS.NOEXEC ? 0x8 : 0);
}

/** Where runc lets a mount go inside /proc besides procfs itself: the files lxcfs emulates. */
const PROC_OVERRIDES = new Set(["cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime", "loadavg", "slabinfo", "net/dev", "sys/kernel/ns_last_pid"].map((p) => `proc/${p}`));

/**
 * A mount inside /proc would hide or replace the kernel's files that the runtime and the
 * container rely on (a volume over /proc/sys/net takes the runtime's sysctl writes): refused as
 * runc refuses it, but for a procfs at /proc (a new one, or a bind of one) and lxcfs's files.
 * This judges the path as written; the executor refuses a path that reaches /proc through a
 * symlink when it resolves it.
 */
function checkProcDestination(input: PlanInput, m: Mount, target: string, bind: boolean, index: number): void {
  if (target !== "proc" && !target.startsWith("proc/")) return;
  if (target === "proc" && (!bind || input.hostIsProcfs?.(sourcePath(input, m, index)))) return;
  if (target !== "proc" && PROC_OVERRIDES.has(target)) return;
  throw new PlanError(
    `/mounts/${index}/destination`,
    target === "proc"
      ? `a bind mount on /proc must have a procfs as its source, not ${m.source ?? ""}`
      : `${m.destination} is inside /proc: only a procfs at /proc and /proc/{${[...PROC_OVERRIDES].map((p) => p.slice(5)).join(",")}} (lxcfs) may be mounted there`,
  );
}

/** `openedFd`: the bind source was opened earlier as that fd (see openPath in compilePlan). */
function mountOps(input: PlanInput, m: Mount, index: number, openedFd: number | undefined, userns: boolean): Op[] {
  const parsed = parseMountOptions(m.options);
  const target = inRootPath(m.destination);
  checkProcDestination(input, m, target, isBind(m.type, parsed), index);
  const ops: Op[] = [];
  const data = parsed.data.length ? parsed.data.join(",") : null;
  const idmapped = m.uidMappings !== undefined || m.gidMappings !== undefined || parsed.extensions.includes("idmap") || parsed.extensions.includes("ridmap");
  if (idmapped) {
    if (!isBind(m.type, parsed)) throw new PlanError(`/mounts/${index}`, "only bind mounts can be idmapped");
    const fd = input.idmapFds?.[index];
    if (fd === undefined || !m.uidMappings || !m.gidMappings) throw new PlanError(`/mounts/${index}`, "an idmapped mount needs uidMappings and gidMappings");
    const abs = sourcePath(input, m, index);
    const attr = mountAttrs(parsed.flags);
    const recursive = (parsed.flags & MS.REC) !== 0 || parsed.extensions.includes("ridmap");
    ops.push({ op: "idmapMount", source: abs, target, usernsFd: fd, recursive, attrSet: attr, inRoot: true, targetIsFile: input.hostPathKind(abs) !== "dir" });
  } else if (isBind(m.type, parsed)) {
    const abs = sourcePath(input, m, index);
    const kind = input.hostPathKind(abs);
    if (userns && input.unprivileged) {
      // Rootless: bound in the container's new mount namespace (it holds a copy of the host's
      // mounts and is owned by the container's user namespace, so binding them is allowed), the
      // attributes after with mount_setattr, which may only add restrictions to locked mounts.
      const recursive = (parsed.flags & MS.REC) !== 0;
      ops.push({ op: "mount", source: abs, target, fstype: null, flags: MS.BIND | (recursive ? MS.REC : 0), data: null, inRoot: true, targetIsFile: kind !== "dir" });
      const attrSet = mountAttrs(parsed.flags);
      if (attrSet) ops.push({ op: "mountSetattr", target, attrSet, attrClr: 0, propagation: 0, recursive, inRoot: true });
    } else if (openedFd === undefined) ops.push({ op: "mount", source: abs, target, fstype: null, flags: parsed.flags | MS.BIND, data, inRoot: true, targetIsFile: kind !== "dir" });
    else {
      // The tree was cloned before the user namespace (openTree): attributes, then attach.
      const attrSet = mountAttrs(parsed.flags);
      ops.push({ op: "mountTree", fd: openedFd, attrSet, target, recursive: (parsed.flags & MS.REC) !== 0, inRoot: true, targetIsFile: kind !== "dir" });
    }
  } else if (m.type === "cgroup" && input.cgroups) {
    ops.push(...cgroupMountOps(input.cgroups, target, parsed.flags));
  } else {
    ops.push({ op: "mount", source: m.source ?? m.type ?? "none", target, fstype: m.type ?? "none", flags: parsed.flags, data, inRoot: true });
  }
  for (const p of parsed.propagation) ops.push({ op: "mount", source: null, target, fstype: null, flags: p, data: null, inRoot: true });
  if (parsed.attrSet || parsed.attrClr) ops.push({ op: "mountSetattr", target, attrSet: parsed.attrSet, attrClr: parsed.attrClr, propagation: 0, recursive: true, inRoot: true });
  return ops;
}

/** A bind mount's source on the host: relative to the bundle, and it must exist. */
function sourcePath(input: PlanInput, m: Mount, index: number): string {
  const source = m.source ?? "";
  const abs = source.startsWith("/") ? source : `${input.bundle}/${source}`;
  if (input.hostPathKind(abs) === "missing") throw new PlanError(`/mounts/${index}/source`, `bind source ${abs} does not exist`);
  return abs;
}

/**
 * /sys/fs/cgroup in the container: on cgroup v2 the container's own cgroup bound there; on v1 a
 * tmpfs holding each controller's container cgroup, bound, with links for co-mounted controllers
 * (cpu → cpu,cpuacct), then the tmpfs made read-only when the mount asked for it.
 */
function cgroupMountOps(src: CgroupMountSource, target: string, flags: number): Op[] {
  const bindFlags = MS.BIND | MS.REC | (flags & (MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.RELATIME));
  if (src.kind === "v2") return [{ op: "mount", source: src.hostPath, target, fstype: null, flags: bindFlags, data: null, inRoot: true }];
  const base = MS.NOSUID | MS.NODEV | MS.NOEXEC;
  const ops: Op[] = [{ op: "mount", source: "tmpfs", target, fstype: "tmpfs", flags: base, data: "mode=755", inRoot: true }];
  for (const c of src.controllers) {
    ops.push({ op: "mount", source: c.hostPath, target: `${target}/${c.name}`, fstype: null, flags: bindFlags, data: null, inRoot: true });
    const parts = c.name.split(",");
    if (parts.length > 1) for (const p of parts) ops.push({ op: "symlink", target: c.name, path: `${target}/${p}`, inRoot: true });
  }
  if (flags & MS.RDONLY) ops.push({ op: "mount", source: null, target, fstype: null, flags: MS.REMOUNT | base | MS.RDONLY, data: null, inRoot: true });
  return ops;
}
