// Linux constants (x86_64 and arm64 agree on all of these) used around the FFI. The ones the
// runtime spec names (mount flags, capabilities, signals) live in @tsrun/ocispec's linux-names.
export { MS, MOUNT_ATTR, CAPABILITIES as CAPS, SIGNALS as SIG } from "@tsrun/ocispec/core";

/** clone(2) / unshare(2) namespace flags. CLONE_NEWTIME only works with unshare (its bit is in
 * clone's exit-signal byte). */
export const CLONE = {
  NEWTIME: 0x00000080,
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

export const MNT_DETACH = 2;

export const RLIMIT = {
  CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, RSS: 5, NPROC: 6, NOFILE: 7,
  MEMLOCK: 8, AS: 9, LOCKS: 10, SIGPENDING: 11, MSGQUEUE: 12, NICE: 13, RTPRIO: 14, RTTIME: 15,
} as const;
export const RLIM_INFINITY = (1n << 64n) - 1n;

export const PR = {
  SET_PDEATHSIG: 1,
  SET_DUMPABLE: 4,
  SET_KEEPCAPS: 8,
  SET_NAME: 15,
  SET_SECUREBITS: 28,
  SET_CHILD_SUBREAPER: 36,
  SET_NO_NEW_PRIVS: 38,
} as const;

export const AF_UNIX = 1;
export const SOCK = { STREAM: 1, DGRAM: 2, SEQPACKET: 5, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const O_CLOEXEC = 0o2000000;
export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;
export const WNOHANG = 1;
export const F_GET_SEALS = 1034;
export const F_SEAL = { SEAL: 0x1, SHRINK: 0x2, GROW: 0x4, WRITE: 0x8 } as const;
