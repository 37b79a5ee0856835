// libc through bun:ffi, for what tsrun does in its own (parent) process: waiting, signals,
// pidfds, locks, mounts, sockets. Opened on first use. Failures throw SysError with the errno.
// Nothing here forks: starting a process goes through native.ts (C, no Bun code in the child).
import { dlopen, FFIType, ptr as addressOfBuffer, read, type Library, type Pointer } from "bun:ffi";
import { readFileSync, writeSync } from "node:fs";
import { errnoName } from "./errno.ts";
import { PR, WNOHANG } from "./constants.ts";

const { i32, u32, i64_fast, u64, ptr, cstring } = FFIType;

/** The libc functions tsrun calls, by signature. */
const SIGNATURES = {
  __errno_location: { args: [], returns: ptr },
  strerror: { args: [i32], returns: cstring },
  close: { args: [i32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: i64_fast },
  waitpid: { args: [i32, ptr, i32], returns: i32 },
  kill: { args: [i32, i32], returns: i32 },
  syscall: { args: [i64_fast, i64_fast, i64_fast, i64_fast, i64_fast], returns: i64_fast },
  poll: { args: [ptr, u64, i32], returns: i32 },
  flock: { args: [i32, i32], returns: i32 },
  fcntl: { args: [i32, i32, i64_fast], returns: i32 },
  mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
  umount2: { args: [ptr, i32], returns: i32 },
  mkfifo: { args: [ptr, u32], returns: i32 },
  chmod: { args: [ptr, u32], returns: i32 },
  socketpair: { args: [i32, i32, i32, ptr], returns: i32 },
  pipe2: { args: [ptr, i32], returns: i32 },
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  memfd_create: { args: [ptr, u32], returns: i32 },
  mknod: { args: [ptr, u32, u64], returns: i32 },
  lsetxattr: { args: [ptr, ptr, ptr, u64, i32], returns: i32 },
  lgetxattr: { args: [ptr, ptr, ptr, u64], returns: i64_fast },
  llistxattr: { args: [ptr, ptr, u64], returns: i64_fast },
  openat: { args: [i32, ptr, i32, u32], returns: i32 },
  statx: { args: [i32, ptr, i32, u32, ptr], returns: i32 },
  getdents64: { args: [i32, ptr, u64], returns: i64_fast },
  readlinkat: { args: [i32, ptr, ptr, u64], returns: i64_fast },
  getxattr: { args: [ptr, ptr, ptr, u64], returns: i64_fast },
  listxattr: { args: [ptr, ptr, u64], returns: i64_fast },
  setns: { args: [i32, i32], returns: i32 },
  socket: { args: [i32, i32, i32], returns: i32 },
  ioctl: { args: [i32, u64, ptr], returns: i32 },
  bind: { args: [i32, ptr, u32], returns: i32 },
  listen: { args: [i32, i32], returns: i32 },
  connect: { args: [i32, ptr, u32], returns: i32 },
  accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
  recvmsg: { args: [i32, ptr, i32], returns: i64_fast },
  sendmsg: { args: [i32, ptr, i32], returns: i64_fast },
} as const;

type Libc = Library<typeof SIGNATURES>["symbols"];

/**
 * Each function is bound on its first call, by a dlopen of its own: bun:ffi compiles a wrapper
 * for every symbol it is given (TinyCC, ~0.2 ms each), so binding all of them at once cost a
 * short command (`tsrun create`, the shim's `start`) 8 to 15 ms for the few it calls.
 */
const bound: Partial<Record<keyof Libc, Libc[keyof Libc]>> = {};
const lib = new Proxy({} as Libc, {
  get(_, name: keyof Libc) {
    return (bound[name] ??= dlopen("libc.so.6", { [name]: SIGNATURES[name] } as Pick<typeof SIGNATURES, typeof name>).symbols[name]);
  },
});

function libc(): Libc {
  return lib;
}

// bpf(2) predates the shared syscall table: x86_64 has its own number, the asm-generic
// architectures (arm64, riscv64, loongarch64) share 280.
const SYS_bpf = process.arch === "x64" ? 321 : 280;
const SYS_pidfd_send_signal = 424; // the same number on every architecture (new-style table)
const SYS_pidfd_open = 434;
const SYS_madvise = process.arch === "x64" ? 28 : 233;

/** errno of the last failed libc call on this thread (read through __errno_location). */
export function getErrno(): number {
  return read.i32(libc().__errno_location() as Pointer, 0);
}

export function strerror(errno: number): string {
  return String(libc().strerror(errno));
}

/** A failed system call: `mount /x: EPERM (Operation not permitted)`. */
export class SysError extends Error {
  readonly code: string;
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly what = "",
  ) {
    super(`${call}${what ? ` ${what}` : ""}: ${errnoName(errno)} (${strerror(errno)})`);
    this.name = "SysError";
    this.code = errnoName(errno);
  }
}

const EINTR = 4;
const EAGAIN = 11;
const ESRCH = 3;

function check(r: number, call: string, what?: string): number {
  if (r < 0) throw new SysError(call, getErrno(), what);
  return r;
}

/** A NUL-terminated C string, or null. */
function cstr(s: string | null | undefined): Buffer | null {
  return s === null || s === undefined ? null : Buffer.from(`${s}\0`);
}

export interface WaitStatus {
  /** The reaped child; 0 with WNOHANG while it runs; -1 on failure (see errno, e.g. ECHILD). */
  pid: number;
  /** The raw wait status. */
  status: number;
  exited: boolean;
  /** Exit code when exited, else -1. */
  code: number;
  signaled: boolean;
  /** Terminating signal when signaled, else 0. */
  signal: number;
  /** errno when pid is -1, else 0. */
  errno: number;
}

function decodeStatus(pid: number, s: number, errno = 0): WaitStatus {
  const sig = s & 0x7f;
  const exited = pid > 0 && sig === 0;
  const signaled = pid > 0 && sig !== 0 && sig !== 0x7f;
  return { pid, status: s, exited, code: exited ? (s >> 8) & 0xff : -1, signaled, signal: signaled ? sig : 0, errno };
}

/** waitpid(2), retrying EINTR. Never throws: a failure (ECHILD …) is pid -1 with its errno. */
export function waitpid(pid: number, flags = 0): WaitStatus {
  const st = new Int32Array(1);
  for (;;) {
    const r = libc().waitpid(pid, st, flags);
    if (r >= 0) return decodeStatus(r, r > 0 ? st[0]! : 0);
    const e = getErrno();
    if (e !== EINTR) return decodeStatus(-1, 0, e);
  }
}

/** Waits for a child to exit, up to timeoutMs; null on timeout (the child is left alone). */
export function waitpidTimeout(pid: number, timeoutMs: number): WaitStatus | null {
  const done = waitpid(pid, WNOHANG);
  if (done.pid !== 0) return done;
  const pidfd = pidfdOpen(pid);
  try {
    if (!pollIn(pidfd, timeoutMs)) return null;
  } finally {
    close(pidfd);
  }
  return waitpid(pid, WNOHANG);
}

/** poll(2) for POLLIN on one fd; true when readable (or hung up), false on timeout. */
export function pollIn(fd: number, timeoutMs: number): boolean {
  const p = new Int32Array([fd, 1 /* POLLIN, revents 0 */]);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = timeoutMs < 0 ? -1 : Math.max(0, end - Date.now());
    const r = libc().poll(p, 1, left);
    if (r >= 0) return r > 0;
    const e = getErrno();
    if (e !== EINTR) throw new SysError("poll", e);
  }
}

/** kill(2); false when there is no such process (ESRCH). */
export function kill(pid: number, signal: number): boolean {
  if (libc().kill(pid, signal) === 0) return true;
  const e = getErrno();
  if (e === ESRCH) return false;
  throw new SysError("kill", e, `${pid} signal ${signal}`);
}

/** The start time (field 22 of /proc/<pid>/stat, clock ticks since boot) and state, or undefined. */
function procStart(pid: number): { startTime: number; state: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0] ?? "", startTime: Number(rest[19]) };
}

/**
 * Signals `pid` only if it is still the process that started at `startTime` (a pid may have
 * been reused): the pidfd is taken first, then the start time checked, then the signal goes
 * through the pidfd, so no other process can be hit. False when it is gone or a zombie.
 */
export function killVerified(pid: number, startTime: number, signal: number): boolean {
  if (pid <= 0) return false;
  let pidfd: number;
  try {
    pidfd = pidfdOpen(pid);
  } catch (e) {
    if (e instanceof SysError && e.errno === ESRCH) return false;
    throw e;
  }
  try {
    const st = procStart(pid);
    if (!st || st.startTime !== startTime || st.state === "Z" || st.state === "X") return false;
    const r = Number(libc().syscall(SYS_pidfd_send_signal, pidfd, signal, 0, 0));
    if (r === 0) return true;
    const e = getErrno();
    if (e === ESRCH) return false;
    throw new SysError("pidfd_send_signal", e, `${pid} signal ${signal}`);
  } finally {
    close(pidfd);
  }
}

export function pidfdOpen(pid: number, flags = 0): number {
  const r = libc().syscall(SYS_pidfd_open, pid, flags, 0, 0);
  return check(Number(r), "pidfd_open", String(pid));
}

/** madvise(2) over [addr, addr+length) of this process's own address space (addresses from /proc/self/maps). */
export function madvise(addr: number, length: number, advice: number): void {
  check(Number(libc().syscall(SYS_madvise, addr, length, advice, 0)), "madvise", `${addr.toString(16)}+${length}`);
}

export function pidfdSendSignal(pidfd: number, signal: number): void {
  check(Number(libc().syscall(SYS_pidfd_send_signal, pidfd, signal, 0, 0)), "pidfd_send_signal", `signal ${signal}`);
}

/** flock(2). With LOCK_NB, false when someone else holds the lock. */
export function flock(fd: number, op: number): boolean {
  for (;;) {
    if (libc().flock(fd, op) === 0) return true;
    const e = getErrno();
    if (e === EAGAIN) return false;
    if (e !== EINTR) throw new SysError("flock", e);
  }
}

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const MFD_EXEC = 0x10;
const F_ADD_SEALS = 1033;
const EINVAL = 22;

/**
 * A CLOEXEC memfd holding `bytes`, sealed against any change (seal, shrink, grow, write).
 * `executable` asks for MFD_EXEC (needed where vm.memfd_noexec is set; kernels before 6.3 do
 * not know the flag and refuse it with EINVAL, then the plain kind is what they give anyway).
 */
export function sealedMemfd(name: string, bytes: Uint8Array, executable = false): number {
  const cname = Buffer.from(`${name}\0`);
  const base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  let fd = libc().memfd_create(cname, base | (executable ? MFD_EXEC : 0));
  if (fd < 0 && executable && getErrno() === EINVAL) fd = libc().memfd_create(cname, base);
  if (fd < 0) throw new SysError("memfd_create", getErrno(), name);
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    if (libc().fcntl(fd, F_ADD_SEALS, 0xf) < 0) throw new SysError("fcntl(F_ADD_SEALS)", getErrno(), name);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return check(libc().fcntl(fd, cmd, arg), "fcntl", `fd ${fd} cmd ${cmd}`);
}

export function close(fd: number): void {
  check(libc().close(fd), "close", `fd ${fd}`);
}

/** send(2) with MSG_NOSIGNAL; returns false when the peer is gone (EPIPE, ECONNRESET). */
export function sendBytes(fd: number, data: Uint8Array): boolean {
  for (;;) {
    const r = libc().send(fd, data, data.length, 0x4000 /* MSG_NOSIGNAL */);
    if (r >= 0) return true;
    const e = getErrno();
    if (e === 32 || e === 104) return false;
    if (e !== EINTR) throw new SysError("send", e, `fd ${fd}`);
  }
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(libc().mount(cstr(source), cstr(target), cstr(fstype), flags, cstr(data)), "mount", `${source ?? "none"} on ${target}`);
}

export function umount2(target: string, flags = 0): void {
  check(libc().umount2(cstr(target), flags), "umount2", target);
}

/** mkfifo(2) with exactly `mode` (chmod after: changing the umask would race other threads). */
export function mkfifo(path: string, mode: number): void {
  const p = cstr(path);
  check(libc().mkfifo(p, mode), "mkfifo", path);
  check(libc().chmod(p, mode), "chmod", path);
}

const ENODATA = 61;
const EOPNOTSUPP = 95;
const ERANGE = 34;

/** glibc's makedev: the 64-bit dev_t of Linux (12+20 bit major/minor split over two halves). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

/** mknod(2); `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  if (libc().mknod(cstr(path), mode, makedev(major, minor)) < 0) throw new SysError("mknod", getErrno(), path);
}

/** lsetxattr(2): sets an attribute on the path itself, never on a symlink's target. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const v = value.length === 0 ? Buffer.alloc(1) : value;
  if (libc().lsetxattr(cstr(path), cstr(name), v, value.length, 0) < 0) throw new SysError("lsetxattr", getErrno(), `${name} on ${path}`);
}

/** lgetxattr(2); undefined when the attribute is not set (ENODATA) or the fs has none (EOPNOTSUPP). */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const p = cstr(path);
  const n = cstr(name);
  for (let size = 256; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const r = Number(libc().lgetxattr(p, n, buf, size));
    if (r >= 0) return buf.subarray(0, r);
    const e = getErrno();
    if (e === ENODATA || e === EOPNOTSUPP) return undefined;
    if (e !== ERANGE /* grew since we asked */ || size > 1 << 24) throw new SysError("lgetxattr", e, `${name} on ${path}`);
  }
}

/** llistxattr(2): the attribute names of the path itself ([] where the fs keeps none). */
export function llistxattr(path: string): string[] {
  return listNames((buf, size) => Number(libc().llistxattr(cstr(path), buf, size)), "llistxattr", path);
}

/** A list*xattr(2) call's names, with the buffer grown until they fit. */
function listNames(call: (buf: Buffer, size: number) => number, name: string, what: string): string[] {
  for (let size = 1024; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const r = call(buf, size);
    if (r >= 0)
      return buf
        .subarray(0, r)
        .toString("utf8")
        .split("\0")
        .filter((x) => x !== "");
    const e = getErrno();
    if (e === EOPNOTSUPP) return [];
    if (e !== ERANGE || size > 1 << 24) throw new SysError(name, e, what);
  }
}

export function socketpair(domain: number, type: number, protocol = 0): [number, number] {
  const sv = new Int32Array(2);
  check(libc().socketpair(domain, type, protocol, sv), "socketpair");
  return [sv[0]!, sv[1]!];
}

/** pipe2(2): [read end, write end]. */
export function pipe(flags = 0): [number, number] {
  const fds = new Int32Array(2);
  check(libc().pipe2(fds, flags), "pipe2");
  return [fds[0]!, fds[1]!];
}

export function prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(libc().prctl(option, arg2, arg3, arg4, arg5), "prctl", String(option));
}

/** The shim's reaper duty: orphaned descendants are reparented to this process. */
export function setChildSubreaper(): void {
  prctl(PR.SET_CHILD_SUBREAPER, 1);
}

/**
 * The address of a buffer's bytes, for the pointer fields of a struct passed to the kernel (bpf_attr's
 * insns, license, log_buf …). The caller keeps `buf` referenced until the call has returned.
 */
export function addressOf(buf: Uint8Array): number {
  return addressOfBuffer(buf);
}

/**
 * bpf(2): `attr` is the union bpf_attr for `cmd`, its length passed as the size (fields the kernel
 * knows beyond it read as zero). Returns the result (an fd for loads, 0 otherwise); a failure throws
 * SysError naming `what`, with the errno (EINTR retried: BPF_PROG_LOAD may be interrupted).
 */
export function bpf(cmd: number, attr: Uint8Array, what: string): number {
  for (;;) {
    const r = Number(libc().syscall(SYS_bpf, cmd, addressOfBuffer(attr), attr.length, 0));
    if (r >= 0) return r;
    const e = getErrno();
    if (e !== EINTR) throw new SysError("bpf", e, what);
  }
}

// ---- walking a tree by file descriptor: each name is looked up in its parent's fd, never as a
// whole path that a process changing the tree could redirect through a symlink ----

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_EMPTY_PATH = 0x1000;
/** The same value on every Linux architecture (unlike O_DIRECTORY and O_NOFOLLOW). */
export const O_PATH = 0o10000000;

/** A name for an *at call: raw bytes (names need not be UTF-8), NUL-terminated. */
function cname(name: string | Uint8Array): Buffer {
  return typeof name === "string" ? Buffer.from(`${name}\0`) : Buffer.concat([name, Buffer.alloc(1)]);
}

const show = (name: string | Uint8Array) => (typeof name === "string" ? name : Buffer.from(name).toString("latin1"));

/** openat(2); `name` relative to `dirfd` (or AT_FDCWD). */
export function openat(dirfd: number, name: string | Uint8Array, flags: number, mode = 0): number {
  for (;;) {
    const fd = libc().openat(dirfd, cname(name), flags, mode);
    if (fd >= 0) return fd;
    const e = getErrno();
    if (e !== EINTR) throw new SysError("openat", e, show(name));
  }
}

/** What fstatat reports, from statx(2), whose struct is the same on every architecture. */
export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: bigint;
  size: bigint;
  mtimeSec: bigint;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
}

const STATX_BASIC_STATS = 0x7ff;

/**
 * fstatat(2) through statx(2): `name` in `dirfd`; with AT_EMPTY_PATH and name "", the file `dirfd`
 * itself. Pass AT_SYMLINK_NOFOLLOW to stat a symlink rather than what it points at.
 */
export function fstatat(dirfd: number, name: string | Uint8Array, flags: number): FileStat {
  const buf = Buffer.alloc(256);
  check(libc().statx(dirfd, cname(name), flags, STATX_BASIC_STATS, buf), "statx", show(name));
  return {
    nlink: buf.readUInt32LE(16),
    uid: buf.readUInt32LE(20),
    gid: buf.readUInt32LE(24),
    mode: buf.readUInt16LE(28),
    ino: buf.readBigUInt64LE(32),
    size: buf.readBigUInt64LE(40),
    mtimeSec: buf.readBigInt64LE(112),
    rdevMajor: buf.readUInt32LE(128),
    rdevMinor: buf.readUInt32LE(132),
    devMajor: buf.readUInt32LE(136),
    devMinor: buf.readUInt32LE(140),
  };
}

/** The names in the directory open as `fd` (read from its current offset), without . and .. */
export function readdirFd(fd: number): Buffer[] {
  const names: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = Number(libc().getdents64(fd, buf, buf.length));
    if (n < 0) {
      const e = getErrno();
      if (e === EINTR) continue;
      throw new SysError("getdents64", e, `fd ${fd}`);
    }
    if (n === 0) return names;
    // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, then the NUL-terminated name.
    for (let off = 0; off < n; ) {
      const reclen = buf.readUInt16LE(off + 16);
      const end = buf.indexOf(0, off + 19);
      const name = Buffer.from(buf.subarray(off + 19, end < 0 || end > off + reclen ? off + reclen : end));
      if (!(name.length === 1 && name[0] === 0x2e) && !(name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) names.push(name);
      off += reclen;
    }
  }
}

/** readlinkat(2) as raw bytes; name "" reads the symlink `dirfd` itself (opened O_PATH|O_NOFOLLOW). */
export function readlinkat(dirfd: number, name: string | Uint8Array): Buffer {
  const n = cname(name);
  for (let size = 4096; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const r = Number(libc().readlinkat(dirfd, n, buf, size));
    if (r < 0) throw new SysError("readlinkat", getErrno(), show(name));
    if (r < size || size > 1 << 20) return buf.subarray(0, r);
  }
}

/**
 * The attributes of the file open as `fd`, through /proc/self/fd: fgetxattr refuses the O_PATH
 * fds that symlinks, devices and fifos are opened with, and the magic link names the open file
 * itself, never a path looked up again.
 */
export function fdGetxattr(fd: number, name: string): Buffer | undefined {
  const p = cstr(`/proc/self/fd/${fd}`);
  const n = cstr(name);
  for (let size = 256; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const r = Number(libc().getxattr(p, n, buf, size));
    if (r >= 0) return buf.subarray(0, r);
    const e = getErrno();
    if (e === ENODATA || e === EOPNOTSUPP) return undefined;
    if (e !== ERANGE || size > 1 << 24) throw new SysError("getxattr", e, `${name} on fd ${fd}`);
  }
}

/** The attribute names of the file open as `fd` ([] where the fs keeps none); see fdGetxattr. */
export function fdListxattr(fd: number): string[] {
  const p = cstr(`/proc/self/fd/${fd}`);
  return listNames((buf, size) => Number(libc().listxattr(p, buf, size)), "listxattr", `fd ${fd}`);
}

const CLONE_NEWNET = 0x40000000;
const AF_INET = 2;
const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;

/**
 * Sets the loopback interface of the network namespace at `nsPath` up, as runc's loopback
 * strategy does for every new network namespace: without it 127.0.0.1 does not answer inside.
 * Done from tsrun: setns(CLONE_NEWNET) is allowed in a multithreaded process and changes only
 * the calling thread, which is put back into its own namespace before anything else runs on it.
 */
export function loopbackUp(nsPath: string): void {
  const own = check(libc().openat(-100, Buffer.from("/proc/thread-self/ns/net\0"), 0o2000000, 0), "open", "/proc/thread-self/ns/net");
  let target = -1;
  let sock = -1;
  try {
    target = check(libc().openat(-100, Buffer.from(`${nsPath}\0`), 0o2000000, 0), "open", nsPath);
    check(libc().setns(target, CLONE_NEWNET), "setns", nsPath);
    try {
      sock = check(libc().socket(AF_INET, SOCK_DGRAM_CLOEXEC, 0), "socket", "AF_INET");
      // struct ifreq: the name (16 bytes), then ifr_flags (a short) at offset 16
      const ifreq = new Uint8Array(40);
      ifreq.set(Buffer.from("lo"));
      check(libc().ioctl(sock, SIOCGIFFLAGS, ifreq), "ioctl SIOCGIFFLAGS", "lo");
      const view = new DataView(ifreq.buffer);
      view.setUint16(16, view.getUint16(16, true) | IFF_UP, true);
      check(libc().ioctl(sock, SIOCSIFFLAGS, ifreq), "ioctl SIOCSIFFLAGS", "lo");
    } finally {
      if (sock >= 0) libc().close(sock);
      check(libc().setns(own, CLONE_NEWNET), "setns", "back to tsrun's own network namespace");
    }
  } finally {
    if (target >= 0) libc().close(target);
    libc().close(own);
  }
}

// ---------------------------------------------------------------- unix sockets and SCM_RIGHTS
// Bun's sockets cannot pass descriptors: these do it with libc (x86_64/arm64 LP64 layouts).

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_TRUNC = 0x20;
const MSG_CTRUNC = 0x8;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const EMSGSIZE = 90;
const SUN_PATH_MAX = 108;

/** struct sockaddr_un for `path`. */
function unixAddress(path: string): Uint8Array {
  const name = Buffer.from(path);
  if (name.length >= SUN_PATH_MAX) throw new SysError("socket", 36 /* ENAMETOOLONG */, path);
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(addr.buffer).setUint16(0, 1 /* AF_UNIX */, true);
  addr.set(name, 2);
  return addr;
}

/** struct msghdr over one buffer (iovec) and a control buffer; [header, iovec] to keep alive. */
function msghdr(data: Uint8Array, control: Uint8Array | null): [BigUint64Array, BigUint64Array] {
  const iov = new BigUint64Array([BigInt(addressOfBuffer(data)), BigInt(data.length)]);
  const msg = new BigUint64Array(7); // name, namelen, iov, iovlen, control, controllen, flags
  msg[2] = BigInt(addressOfBuffer(iov));
  msg[3] = 1n;
  if (control) {
    msg[4] = BigInt(addressOfBuffer(control));
    msg[5] = BigInt(control.length);
  }
  return [msg, iov];
}

/**
 * Receives one message without waiting (the caller polls first): its length (0 at EOF) and the
 * first descriptor passed with it (CLOEXEC; any further ones are closed), or -1. A message or
 * control data cut short is an error, EMSGSIZE, and its descriptor is closed.
 */
export function recvWithFd(sock: number, buf: Uint8Array, wait = false): { n: number; fd: number } {
  const control = new Uint8Array(64);
  const [msg, iov] = msghdr(buf, control);
  let n: number;
  while ((n = Number(libc().recvmsg(sock, msg, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT)))) < 0 && getErrno() === EINTR);
  void iov;
  if (n < 0) throw new SysError("recvmsg", getErrno(), `fd ${sock}`);
  const view = new DataView(control.buffer);
  let fd = -1;
  // struct cmsghdr { size_t len; int level; int type; data }, each aligned to 8
  for (let at = 0; at + 16 <= Number(msg[5]); ) {
    const len = Number(view.getBigUint64(at, true));
    if (len < 16) break;
    if (view.getInt32(at + 8, true) === SOL_SOCKET && view.getInt32(at + 12, true) === SCM_RIGHTS)
      for (let i = at + 16; i + 4 <= at + len; i += 4) {
        const f = view.getInt32(i, true);
        if (fd < 0) fd = f;
        else libc().close(f); // one descriptor per message
      }
    at += (len + 7) & ~7;
  }
  if (Number(msg[6]! & 0xffffffffn) & (MSG_TRUNC | MSG_CTRUNC)) {
    if (fd >= 0) libc().close(fd);
    throw new SysError("recvmsg", EMSGSIZE, `fd ${sock}: message cut short`);
  }
  return { n, fd };
}

/**
 * Connects to the unix stream socket at `path` and sends `fd` with `data` (runc's
 * --console-socket; a seccomp agent's state). A stream takes a long payload in parts: the
 * descriptor goes with the first one only, as the runtime-spec asks.
 */
export function sendFd(path: string, fd: number, data: Uint8Array): void {
  const s = check(libc().socket(1 /* AF_UNIX */, 1 /* SOCK_STREAM */ | 0o2000000, 0), "socket", path);
  try {
    const addr = unixAddress(path);
    check(libc().connect(s, addr, addr.length), "connect", path);
    const control = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
    const view = new DataView(control.buffer);
    view.setBigUint64(0, 20n, true); // CMSG_LEN(sizeof(int))
    view.setInt32(8, SOL_SOCKET, true);
    view.setInt32(12, SCM_RIGHTS, true);
    view.setInt32(16, fd, true);
    let rest = data.length ? data : new Uint8Array(1);
    let first = true;
    while (rest.length) {
      const [msg, iov] = msghdr(rest, first ? control : null);
      const n = Number(libc().sendmsg(s, msg, MSG_NOSIGNAL));
      void iov;
      if (n < 0) {
        if (getErrno() === EINTR) continue;
        throw new SysError("sendmsg", getErrno(), path);
      }
      rest = rest.subarray(n);
      first = false;
    }
  } finally {
    libc().close(s);
  }
}

/** A listening unix stream socket at `path` (non-blocking, CLOEXEC). */
export function listenUnix(path: string, backlog = 1): number {
  const s = check(libc().socket(1, 1 | 0o4000 /* SOCK_NONBLOCK */ | 0o2000000, 0), "socket", path);
  try {
    const addr = unixAddress(path);
    check(libc().bind(s, addr, addr.length), "bind", path);
    check(libc().listen(s, backlog), "listen", path);
    return s;
  } catch (e) {
    libc().close(s);
    throw e;
  }
}

/** accept4(2) of a pending connection, CLOEXEC. */
export function acceptUnix(listener: number): number {
  return check(libc().accept4(listener, null, null, 0o2000000), "accept", `fd ${listener}`);
}

/** ioctl(2) with a buffer argument. */
export function ioctl(fd: number, request: number, arg: Uint8Array): void {
  check(libc().ioctl(fd, request, arg), "ioctl", `fd ${fd}`);
}
