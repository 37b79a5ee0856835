// Names that the runtime spec uses for Linux things, with their kernel numbers (x86_64 and
// the generic ABI agree on all of these). Pure data: the validator, `features` and the plan
// compiler all read the same tables.

/** Capability names in kernel bit order (CAP_CHOWN is bit 0). */
export const CAPABILITIES = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
  "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
] as const;
export type CapabilityName = (typeof CAPABILITIES)[number];

export function capabilityBit(name: string): number | undefined {
  const i = (CAPABILITIES as readonly string[]).indexOf(name);
  return i < 0 ? undefined : i;
}

/** Resource limits by name, with their RLIMIT_* numbers. */
export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

/** Signals by name (without the SIG prefix). */
export const SIGNALS: Readonly<Record<string, number>> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, IOT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10,
  SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CLD: 17, CONT: 18,
  STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27,
  WINCH: 28, IO: 29, POLL: 29, PWR: 30, SYS: 31,
};
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

/**
 * A signal as users write it: a number, a name with or without "SIG", in any case, or a
 * real-time signal as RTMIN, RTMIN+n or RTMAX-n. Returns undefined when it is none of these.
 */
export function parseSignal(text: string): number | undefined {
  const s = text.trim();
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    return n >= 0 && n <= SIGRTMAX ? n : undefined; // 0: only checks that the process exists
  }
  const name = s.toUpperCase().replace(/^SIG/, "");
  const fixed = SIGNALS[name];
  if (fixed !== undefined) return fixed;
  const rt = /^RT(MIN|MAX)(?:([+-])([0-9]+))?$/.exec(name);
  if (!rt) return undefined;
  const off = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === "-" ? -1 : 1);
  const n = (rt[1] === "MIN" ? SIGRTMIN : SIGRTMAX) + off;
  return n >= SIGRTMIN && n <= SIGRTMAX ? n : undefined;
}

export const NAMESPACE_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"] as const;
export type NamespaceType = (typeof NAMESPACE_TYPES)[number];

export const HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;

/** mount(2) flags used by mount options. */
export const MS = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, SYNCHRONOUS: 0x10, REMOUNT: 0x20,
  MANDLOCK: 0x40, DIRSYNC: 0x80, NOSYMFOLLOW: 0x100, NOATIME: 0x400, NODIRATIME: 0x800,
  BIND: 0x1000, MOVE: 0x2000, REC: 0x4000, SILENT: 0x8000, POSIXACL: 0x10000,
  UNBINDABLE: 0x20000, PRIVATE: 0x40000, SLAVE: 0x80000, SHARED: 0x100000, RELATIME: 0x200000,
  I_VERSION: 0x800000, STRICTATIME: 0x1000000, LAZYTIME: 0x2000000,
} as const;

/** mount_setattr(2) attribute bits used by the recursive ("r"-prefixed) options. */
export const MOUNT_ATTR = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, RELATIME: 0x0, NOATIME: 0x10,
  STRICTATIME: 0x20, NODIRATIME: 0x80, IDMAP: 0x100000, NOSYMFOLLOW: 0x200000, ATIME_MASK: 0x70,
} as const;

export type MountOption =
  | { kind: "flag"; set: number; clear: number }
  | { kind: "propagation"; flag: number }
  | { kind: "recursive"; set: number; clear: number }
  | { kind: "extension"; name: "tmpcopyup" | "idmap" | "ridmap" };

const flag = (set: number, clear = 0): MountOption => ({ kind: "flag", set, clear });
const rec = (set: number, clear = 0): MountOption => ({ kind: "recursive", set, clear });
const prop = (f: number): MountOption => ({ kind: "propagation", flag: f });
const ATIME = MS.NOATIME | MS.RELATIME | MS.STRICTATIME;
const A = MOUNT_ATTR;

/**
 * Mount options the runtime understands (config.md "Mount Options" and runc's additions). Any
 * other option is passed to the filesystem as data, as runc does.
 */
export const MOUNT_OPTIONS: Readonly<Record<string, MountOption>> = {
  async: flag(0, MS.SYNCHRONOUS), atime: flag(0, MS.NOATIME), bind: flag(MS.BIND),
  defaults: flag(0), dev: flag(0, MS.NODEV), diratime: flag(0, MS.NODIRATIME),
  dirsync: flag(MS.DIRSYNC), exec: flag(0, MS.NOEXEC), iversion: flag(MS.I_VERSION),
  lazytime: flag(MS.LAZYTIME), loud: flag(0, MS.SILENT), mand: flag(MS.MANDLOCK),
  noatime: flag(MS.NOATIME), nodev: flag(MS.NODEV), nodiratime: flag(MS.NODIRATIME),
  noexec: flag(MS.NOEXEC), noiversion: flag(0, MS.I_VERSION), nolazytime: flag(0, MS.LAZYTIME),
  nomand: flag(0, MS.MANDLOCK), norelatime: flag(0, MS.RELATIME), nostrictatime: flag(0, MS.STRICTATIME),
  nosuid: flag(MS.NOSUID), nosymfollow: flag(MS.NOSYMFOLLOW), rbind: flag(MS.BIND | MS.REC),
  relatime: flag(MS.RELATIME, ATIME & ~MS.RELATIME), remount: flag(MS.REMOUNT), ro: flag(MS.RDONLY),
  rw: flag(0, MS.RDONLY), silent: flag(MS.SILENT), strictatime: flag(MS.STRICTATIME, ATIME & ~MS.STRICTATIME),
  suid: flag(0, MS.NOSUID), symfollow: flag(0, MS.NOSYMFOLLOW), sync: flag(MS.SYNCHRONOUS),
  private: prop(MS.PRIVATE), rprivate: prop(MS.PRIVATE | MS.REC), shared: prop(MS.SHARED),
  rshared: prop(MS.SHARED | MS.REC), slave: prop(MS.SLAVE), rslave: prop(MS.SLAVE | MS.REC),
  unbindable: prop(MS.UNBINDABLE), runbindable: prop(MS.UNBINDABLE | MS.REC),
  rro: rec(A.RDONLY), rrw: rec(0, A.RDONLY), rnosuid: rec(A.NOSUID), rsuid: rec(0, A.NOSUID),
  rnodev: rec(A.NODEV), rdev: rec(0, A.NODEV), rnoexec: rec(A.NOEXEC), rexec: rec(0, A.NOEXEC),
  rnodiratime: rec(A.NODIRATIME), rdiratime: rec(0, A.NODIRATIME), rrelatime: rec(A.RELATIME, A.ATIME_MASK),
  rnorelatime: rec(0, 0), rnoatime: rec(A.NOATIME, A.ATIME_MASK), ratime: rec(0, A.NOATIME),
  rstrictatime: rec(A.STRICTATIME, A.ATIME_MASK), rnostrictatime: rec(0, 0),
  rnosymfollow: rec(A.NOSYMFOLLOW), rsymfollow: rec(0, A.NOSYMFOLLOW),
  tmpcopyup: { kind: "extension", name: "tmpcopyup" }, idmap: { kind: "extension", name: "idmap" },
  ridmap: { kind: "extension", name: "ridmap" },
};

/** clone(2)/unshare(2)/setns(2) flag of each namespace type. */
export const CLONE_FLAGS: Readonly<Record<NamespaceType, number>> = {
  mount: 0x00020000, cgroup: 0x02000000, uts: 0x04000000, ipc: 0x08000000, user: 0x10000000,
  pid: 0x20000000, network: 0x40000000, time: 0x00000080,
};

/** The namespace's name under /proc/<pid>/ns/. */
export const NS_PROC_NAMES: Readonly<Record<NamespaceType, string>> = {
  mount: "mnt", cgroup: "cgroup", uts: "uts", ipc: "ipc", user: "user", pid: "pid", network: "net", time: "time",
};

/**
 * A sysctl key's path below /proc/sys: its components are separated by slashes when the key has
 * any (then a dot belongs to a name, as in the interface "eth0.100"), else by dots. Undefined
 * for a key that is not a name: an empty, "." or ".." component would reach another file.
 */
export function sysctlPath(key: string): string[] | undefined {
  const parts = key.includes("/") ? key.split("/") : key.split(".");
  return parts.every((p) => p !== "" && p !== "." && p !== "..") ? parts : undefined;
}

/** runc's list of the IPC namespace's sysctls (besides fs.mqueue.*). */
const IPC_SYSCTLS = new Set(["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]);

/**
 * The namespace that isolates a sysctl (by its dotted name), or undefined when none does: a
 * write to such a key changes the host, whatever namespaces the container has.
 */
export function sysctlNamespace(parts: readonly string[]): "network" | "ipc" | "uts" | undefined {
  const name = parts.join(".");
  if (parts[0] === "net") return "network";
  if (IPC_SYSCTLS.has(name) || (parts[0] === "fs" && parts[1] === "mqueue" && parts.length > 2)) return "ipc";
  if (name === "kernel.hostname" || name === "kernel.domainname") return "uts";
  return undefined;
}
