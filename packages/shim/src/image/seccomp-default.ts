// Docker's default seccomp profile (moby/profiles seccomp/default.json), as tsrun data: an
// allow-list with EPERM for everything else, plus rules that only apply on some architectures or
// when the container holds (or lacks) a capability. defaultSeccompProfile() turns it into the
// `linux.seccomp` of one spec the way Docker's setupSeccomp does: rules gated on capabilities are
// decided by the spec's bounding set, rules gated on an architecture by the host's, and rules
// gated on a kernel version by the running kernel.
//
// Why the profile has the shape it has (from Docker's seccomp documentation):
// - namespaces, mounts, module loading, kexec, bpf, perf, clock setting, keyrings, userfaultfd,
//   and the like are left out: each is either a container escape surface or only useful with a
//   capability the default set does not grant;
// - `clone` is allowed only without namespace flags unless CAP_SYS_ADMIN is held, and `clone3`
//   (whose flags live in memory seccomp cannot read) fails with ENOSYS so that libcs fall back to
//   `clone`;
// - `personality` only for the personas programs need (Linux, 32-bit Linux, UNAME26 for old
//   software that parses the kernel version) and the query: READ_IMPLIES_EXEC or
//   ADDR_NO_RANDOMIZE would switch off exploit mitigations;
// - `socket` for every address family except AF_ALG (38) and AF_VSOCK (40);
// - `ptrace` needs kernel 4.8+ (older kernels let a tracer bypass seccomp) or CAP_SYS_PTRACE.
import type { LinuxSeccomp, LinuxSeccompArg, LinuxSyscall } from "@tsrun/ocispec";
import { release } from "node:os";

/** libseccomp's native arch names, as Docker spells them (Go GOARCH mapped). */
export type SeccompHostArch = "amd64" | "x86" | "x32" | "arm" | "arm64" | "ppc64le" | "s390" | "s390x" | "riscv64" | "mips64" | "loongarch64";

/** When a rule applies (all given conditions must hold) or does not (any given condition holding skips it). */
interface Gate {
  /** capabilities in the spec's bounding set */
  caps?: string[];
  /** host arches */
  arches?: SeccompHostArch[];
  /** kernel version, "major.minor" */
  minKernel?: string;
}

interface ProfileRule {
  names: string[];
  /** ALLOW, or fail with this errno instead of running */
  errno?: number;
  args?: LinuxSeccompArg[];
  includes?: Gate;
  excludes?: Gate;
}

const EPERM = 1;
const ENOSYS = 38;

/**
 * Syscalls every container may make. Alphabetical, as in Docker's profile, so that a diff against a
 * newer Docker release is easy to read. Names that the host's arch does not have (32-bit and
 * time64 variants, other arches' calls) are harmless: the compiler skips them per arch.
 */
const ALWAYS_ALLOWED = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64
preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
`.split(/\s+/).filter((n) => n !== "");

// personality(2) personas (linux/personality.h)
const PER_LINUX = 0x0000;
const PER_LINUX32 = 0x0008;
const UNAME26 = 0x0020000;
/** personality(0xffffffff) only queries the current persona. */
const PERSONALITY_QUERY = 0xffffffff;

/** Every CLONE_NEW* flag (linux/sched.h): a clone with none of them set creates no namespace. */
const CLONE_NAMESPACE_FLAGS =
  0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ | 0x04000000 /* NEWUTS */ | 0x08000000 /* NEWIPC */ |
  0x10000000 /* NEWUSER */ | 0x20000000 /* NEWPID */ | 0x40000000; /* NEWNET */

// Address families socket(2) refuses (linux/socket.h)
const AF_ALG = 38;
const AF_VSOCK = 40;

const eq = (index: number, value: number): LinuxSeccompArg => ({ index, value, op: "SCMP_CMP_EQ" });
const noNamespaceFlags = (index: number): LinuxSeccompArg => ({ index, value: CLONE_NAMESPACE_FLAGS >>> 0, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" });

const RULES: ProfileRule[] = [
  { names: ALWAYS_ALLOWED },
  { names: ["process_vm_readv", "process_vm_writev", "ptrace"], includes: { minKernel: "4.8" } },
  // Three rules, OR'ed: the conditions of one rule are AND'ed, so "not 38 and not 40" needs three.
  { names: ["socket"], args: [{ index: 0, value: AF_ALG, op: "SCMP_CMP_LT" }] },
  { names: ["socket"], args: [eq(0, AF_ALG + 1)] },
  { names: ["socket"], args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_GT" }] },
  ...[PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, PERSONALITY_QUERY].map((p): ProfileRule => ({ names: ["personality"], args: [eq(0, p)] })),
  { names: ["sync_file_range2", "swapcontext"], includes: { arches: ["ppc64le"] } },
  { names: ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"], includes: { arches: ["arm", "arm64"] } },
  { names: ["arch_prctl"], includes: { arches: ["amd64", "x32"] } },
  { names: ["modify_ldt"], includes: { arches: ["amd64", "x32", "x86"] } },
  { names: ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], includes: { arches: ["s390", "s390x"] } },
  { names: ["riscv_flush_icache"], includes: { arches: ["riscv64"] } },
  { names: ["open_by_handle_at"], includes: { caps: ["CAP_DAC_READ_SEARCH"] } },
  {
    names: [
      "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
      "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount", "mount_setattr", "move_mount",
      "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
      "syslog", "umount", "umount2", "unshare",
    ],
    includes: { caps: ["CAP_SYS_ADMIN"] },
  },
  // s390 passes clone's flags as the second argument.
  { names: ["clone"], args: [noNamespaceFlags(0)], excludes: { caps: ["CAP_SYS_ADMIN"], arches: ["s390", "s390x"] } },
  { names: ["clone"], args: [noNamespaceFlags(1)], includes: { arches: ["s390", "s390x"] }, excludes: { caps: ["CAP_SYS_ADMIN"] } },
  { names: ["clone3"], errno: ENOSYS, excludes: { caps: ["CAP_SYS_ADMIN"] } },
  { names: ["reboot"], includes: { caps: ["CAP_SYS_BOOT"] } },
  { names: ["chroot"], includes: { caps: ["CAP_SYS_CHROOT"] } },
  { names: ["delete_module", "init_module", "finit_module"], includes: { caps: ["CAP_SYS_MODULE"] } },
  { names: ["acct"], includes: { caps: ["CAP_SYS_PACCT"] } },
  { names: ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"], includes: { caps: ["CAP_SYS_PTRACE"] } },
  { names: ["iopl", "ioperm"], includes: { caps: ["CAP_SYS_RAWIO"] } },
  { names: ["settimeofday", "stime", "clock_settime", "clock_settime64"], includes: { caps: ["CAP_SYS_TIME"] } },
  { names: ["vhangup"], includes: { caps: ["CAP_SYS_TTY_CONFIG"] } },
  { names: ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], includes: { caps: ["CAP_SYS_NICE"] } },
  { names: ["syslog"], includes: { caps: ["CAP_SYSLOG"] } },
  { names: ["bpf"], includes: { caps: ["CAP_BPF"] } },
  { names: ["perf_event_open"], includes: { caps: ["CAP_PERFMON"] } },
];

/** The extra ABIs a host arch's filter covers (Docker's archMap); other arches get the native one only. */
const SUB_ARCHES: Partial<Record<SeccompHostArch, NonNullable<LinuxSeccomp["architectures"]>>> = {
  amd64: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  arm64: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
  s390x: ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
  riscv64: ["SCMP_ARCH_RISCV64"],
  loongarch64: ["SCMP_ARCH_LOONGARCH64"],
};

/** Node's process.arch (and a few uname -m spellings) as Docker's arch names. */
export function seccompHostArch(arch: string = process.arch): SeccompHostArch | undefined {
  const map: Record<string, SeccompHostArch> = {
    x64: "amd64", x86_64: "amd64", amd64: "amd64",
    ia32: "x86", x86: "x86", i386: "x86", i686: "x86",
    arm64: "arm64", aarch64: "arm64", arm: "arm",
    ppc64: "ppc64le", ppc64le: "ppc64le", s390x: "s390x", riscv64: "riscv64", loong64: "loongarch64",
  };
  return Object.hasOwn(map, arch) ? map[arch] : undefined;
}

export interface DefaultSeccompOptions {
  /** The spec's bounding capabilities: decide the capability-gated rules. */
  capabilities: readonly string[];
  /** Host arch (Docker's names, or Node's process.arch); the running one when absent. */
  arch?: string;
  /** Kernel release ("6.1.0-18-amd64"); the running kernel's when absent. */
  kernel?: string;
}

/** Compares "a.b[.c…][-suffix]" with "x.y": true when the first is at least the second. */
function kernelAtLeast(release: string, min: string): boolean {
  const num = (s: string) => (s.split("-")[0] ?? "").split(".").map((p) => Number.parseInt(p, 10) || 0);
  const [a, b] = [num(release), num(min)];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Docker's default profile, filtered for a spec with these capabilities on this host. */
export function defaultSeccompProfile(opts: DefaultSeccompOptions): LinuxSeccomp {
  const arch = opts.arch === undefined ? seccompHostArch() : (seccompHostArch(opts.arch) ?? (opts.arch as SeccompHostArch));
  const kernel = opts.kernel ?? release();
  const caps = new Set(opts.capabilities);

  const holds = (g: Gate | undefined, all: boolean): boolean => {
    if (!g) return all;
    const tests: boolean[] = [];
    if (g.arches) tests.push(arch !== undefined && g.arches.includes(arch));
    if (g.caps) tests.push(all ? g.caps.every((c) => caps.has(c)) : g.caps.some((c) => caps.has(c)));
    if (g.minKernel) tests.push(kernelAtLeast(kernel, g.minKernel));
    return all ? tests.every(Boolean) : tests.some(Boolean);
  };

  const syscalls: LinuxSyscall[] = [];
  for (const r of RULES) {
    if (!holds(r.includes, true) || holds(r.excludes, false)) continue;
    const s: LinuxSyscall = { names: [...r.names] as LinuxSyscall["names"], action: r.errno === undefined ? "SCMP_ACT_ALLOW" : "SCMP_ACT_ERRNO" };
    if (r.errno !== undefined) s.errnoRet = r.errno;
    if (r.args) s.args = r.args.map((a) => ({ ...a }));
    syscalls.push(s);
  }
  const profile: LinuxSeccomp = { defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: EPERM, syscalls };
  const arches = arch === undefined ? undefined : SUB_ARCHES[arch];
  if (arches) profile.architectures = [...arches];
  return profile;
}
