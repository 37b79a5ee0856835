// Device filtering on cgroup v2: v2 has no devices controller, the kernel asks the cgroup's
// BPF_PROG_TYPE_CGROUP_DEVICE programs instead. The rule list (linux.resources.devices plus the
// defaults) is compiled here into such a program, loaded, and attached to the container's cgroup
// directory, replacing the one attached before (runc's and crun's way).
//
// Semantics, per requested access bit: the last rule that matches the device and names the bit
// decides; an access is allowed only when every requested bit is. A rule of type "a" (or no type)
// stands for every device and every access whatever its major, minor and access say, as the v1
// controller treats "a" (it resets the list), so a list behaves the same on v1 and v2 hosts. With
// no "a" rule, everything is denied by default (runc's v2 default).
//
// Bit by bit rather than "the last rule whose access covers the whole request": with
// [allow c 1:3 rw, deny c 1:3 w], an open O_RDWR of 1:3 asks for r|w at once; a whole-request
// match would skip the deny (w does not cover r|w) and allow it, where v1 denies it.

import { closeSync, constants, openSync } from "node:fs";
import type { LinuxDeviceCgroup } from "@tsrun/ocispec/core";
import { addressOf, bpf, close, SysError } from "../linux/libc.ts";
import { errnoName } from "../linux/errno.ts";
import { CgroupError, fsError } from "./errors.ts";

/** Bits of bpf_cgroup_dev_ctx.access_type (uapi linux/bpf.h): access << 16 | device type. */
export const BPF_DEVCG = { ACC_MKNOD: 1, ACC_READ: 2, ACC_WRITE: 4, DEV_BLOCK: 1, DEV_CHAR: 2 } as const;
const ACC_ALL = BPF_DEVCG.ACC_MKNOD | BPF_DEVCG.ACC_READ | BPF_DEVCG.ACC_WRITE;

/** The license runc gives its device programs; they call no GPL-only helper (they call none). */
export const DEVICE_FILTER_LICENSE = "Apache";

/** One rule with numbers the program compares against; -1 is "any". */
export interface DeviceMatch {
  allow: boolean;
  /** BPF_DEVCG.DEV_BLOCK or DEV_CHAR. */
  type: number;
  major: number;
  minor: number;
  /** BPF_DEVCG.ACC_* bits, never 0. */
  access: number;
}

/** What the program decides: `rules` in list order, checked last first, then `defaultAllow`. */
export interface DeviceFilter {
  defaultAllow: boolean;
  rules: DeviceMatch[];
}

function accessBits(access: string | undefined, where: string): number {
  if (access === undefined) return ACC_ALL; // as the v1 path writes it (ruleLine)
  let bits = 0;
  for (const c of access) {
    if (c === "r") bits |= BPF_DEVCG.ACC_READ;
    else if (c === "w") bits |= BPF_DEVCG.ACC_WRITE;
    else if (c === "m") bits |= BPF_DEVCG.ACC_MKNOD;
    else throw new CgroupError("device rule", undefined, "EINVAL", `${where}/access: ${JSON.stringify(access)} is not a combination of r, w and m`);
  }
  return bits;
}

function deviceNumber(n: number | undefined, where: string): number {
  if (n === undefined || n === -1) return -1;
  // bpf_cgroup_dev_ctx has 32-bit major and minor (a real one is 12 and 20 bits).
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new CgroupError("device rule", undefined, "EINVAL", `${where}: ${n} is not a device number (or -1 for any)`);
  return n;
}

/**
 * The rules that can still change a verdict: those after the last "a" rule (which sets the
 * default), without rules that grant no access, and without the leading ones that agree with the
 * default (once no later rule has decided, the default says the same). Invalid input is an
 * EINVAL CgroupError naming the rule as /linux/resources/devices/<index>.
 */
export function reduceDeviceRules(rules: readonly LinuxDeviceCgroup[]): DeviceFilter {
  let defaultAllow = false;
  let kept: DeviceMatch[] = [];
  rules.forEach((r, i) => {
    const where = `/linux/resources/devices/${i}`;
    const access = accessBits(r.access, where);
    const type = r.type ?? "a";
    if (type === "a") {
      defaultAllow = r.allow;
      kept = [];
      return;
    }
    if (type !== "c" && type !== "b") throw new CgroupError("device rule", undefined, "EINVAL", `${where}/type: ${JSON.stringify(type)} is not a, b or c`);
    const match = {
      allow: r.allow,
      type: type === "b" ? BPF_DEVCG.DEV_BLOCK : BPF_DEVCG.DEV_CHAR,
      major: deviceNumber(r.major, `${where}/major`),
      minor: deviceNumber(r.minor, `${where}/minor`),
      access,
    };
    if (access !== 0) kept.push(match);
  });
  const first = kept.findIndex((m) => m.allow !== defaultAllow);
  return { defaultAllow, rules: first < 0 ? [] : kept.slice(first) };
}

// eBPF encoding (Documentation/bpf/standardization/instruction-set.rst): 8 bytes per instruction,
// opcode, dst | src << 4, 16-bit offset, 32-bit immediate, little-endian (x86_64 and arm64).
const OP = {
  LDXW: 0x61, // dst = *(u32 *)(src + off)
  AND32K: 0x54,
  RSH32K: 0x74,
  MOV32K: 0xb4,
  MOV32X: 0xbc,
  XOR32K: 0xa4,
  OR32X: 0x4c,
  JEQK: 0x15, // pc += off when dst == imm
  JNEK: 0x55,
  EXIT: 0x95,
} as const;
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;

interface Insn {
  op: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}
const insn = (op: number, dst: number, src = 0, off = 0, imm = 0): Insn => ({ op, dst, src, off, imm });
const ret = (verdict: boolean): Insn[] => [insn(OP.MOV32K, R0, 0, 0, verdict ? 1 : 0), insn(OP.EXIT, 0)];

/**
 * One rule's block. R2 = device type, R3 = requested access bits not yet decided, R4 = major,
 * R5 = minor; R0 and R1 are scratch. A mismatch jumps past the block; an allow takes its bits out
 * of R3 and allows once none is left; a deny denies when it names any bit still undecided.
 *
 * The match is one branch on (type ^ T) | (major ^ M) | (minor ^ m), not a compare per field:
 * a compare of R2/R4/R5 itself teaches the verifier their exact value on one side, then later
 * compares become decided, the verifier marks those registers precise, and its states stop
 * matching: the paths it walks grow with every rule (2000 rules then exceed its 1M-instruction
 * budget). Computed on copies, R2/R4/R5 stay unknown everywhere and states merge at each block.
 */
function ruleBlock(m: DeviceMatch): Insn[] {
  const block: Insn[] = [insn(OP.MOV32X, R1, R2), insn(OP.XOR32K, R1, 0, 0, m.type)];
  for (const [reg, value] of [[R4, m.major], [R5, m.minor]] as const)
    if (value >= 0) block.push(insn(OP.MOV32X, R0, reg), insn(OP.XOR32K, R0, 0, 0, value), insn(OP.OR32X, R1, R0));
  const test = insn(OP.JNEK, R1);
  block.push(test);
  if (m.access === ACC_ALL) block.push(...ret(m.allow));
  else if (m.allow) block.push(insn(OP.AND32K, R3, 0, 0, ACC_ALL & ~m.access), insn(OP.JNEK, R3, 0, 2, 0), ...ret(true));
  else block.push(insn(OP.MOV32X, R1, R3), insn(OP.AND32K, R1, 0, 0, m.access), insn(OP.JEQK, R1, 0, 2, 0), ...ret(false));
  test.off = block.length - block.indexOf(test) - 1; // to the next block; offsets count from the next instruction
  return block;
}

function encode(insns: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * 8);
  const view = new DataView(out.buffer);
  insns.forEach((x, i) => {
    if (x.off < -0x8000 || x.off > 0x7fff) throw new RangeError(`device filter: jump offset ${x.off} out of range`);
    view.setUint8(i * 8, x.op);
    view.setUint8(i * 8 + 1, (x.src << 4) | x.dst);
    view.setInt16(i * 8 + 2, x.off, true);
    view.setInt32(i * 8 + 4, x.imm, true);
  });
  return out;
}

/** The program's instructions (8 bytes each) for a rule list, as the kernel loads them. */
export function compileDeviceFilter(rules: readonly LinuxDeviceCgroup[]): Uint8Array {
  const filter = reduceDeviceRules(rules);
  const insns: Insn[] = [
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    insn(OP.LDXW, R2, R1, 0),
    insn(OP.AND32K, R2, 0, 0, 0xffff),
    insn(OP.LDXW, R3, R1, 0),
    insn(OP.RSH32K, R3, 0, 0, 16),
    insn(OP.LDXW, R4, R1, 4),
    insn(OP.LDXW, R5, R1, 8),
  ];
  for (let i = filter.rules.length - 1; i >= 0; i--) insns.push(...ruleBlock(filter.rules[i]!));
  insns.push(...ret(filter.defaultAllow));
  return encode(insns);
}

// The kernel side (uapi linux/bpf.h).
const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_DETACH = 9;
const BPF_PROG_GET_FD_BY_ID = 13;
const BPF_PROG_QUERY = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
const BPF_F_ALLOW_MULTI = 1 << 1;
const BPF_F_REPLACE = 1 << 2;
/** BPF_CGROUP_MAX_PROGS: a cgroup holds at most this many programs per attach type. */
const MAX_PROGS = 64;
/** Big enough for every bpf_attr field used here; the kernel reads the rest as zero. */
const ATTR_SIZE = 128;
const VERIFIER_LOG_SIZE = 1 << 16;

function attr(fields: [offset: number, kind: "u32" | "u64", value: number][]): Uint8Array {
  const buf = new Uint8Array(ATTR_SIZE);
  const view = new DataView(buf.buffer);
  for (const [off, kind, value] of fields) {
    if (kind === "u32") view.setUint32(off, value >>> 0, true);
    else view.setBigUint64(off, BigInt(value), true);
  }
  return buf;
}

function cgroupError(op: string, dir: string, e: unknown, detail: string): unknown {
  if (!(e instanceof SysError)) return e;
  const hint = e.errno === 9 /* EBADF */ ? "; is it a cgroup2 directory?" : "";
  return new CgroupError(op, dir, errnoName(e.errno), `${detail}: ${e.message}${hint}`, { cause: e });
}

/**
 * Loads a cgroup device program (bytes from compileDeviceFilter) and returns its fd. When the
 * kernel refuses it, the error carries the verifier's log: the load is repeated with a log buffer
 * only then, so the common path pays for no log.
 */
export function loadDeviceFilter(program: Uint8Array, dir: string): number {
  const license = Buffer.from(`${DEVICE_FILTER_LICENSE}\0`);
  const load = (log?: Uint8Array) => {
    const a = attr([
      [0, "u32", BPF_PROG_TYPE_CGROUP_DEVICE],
      [4, "u32", program.length / 8],
      [8, "u64", addressOf(program)],
      [16, "u64", addressOf(license)],
      ...(log ? ([[24, "u32", 1], [28, "u32", log.length], [32, "u64", addressOf(log)]] as [number, "u32" | "u64", number][]) : []),
    ]);
    a.set(new TextEncoder().encode("tsrun_devices"), 48); // prog_name, shown by bpftool
    return bpf(BPF_PROG_LOAD, a, "BPF_PROG_LOAD");
  };
  try {
    return load();
  } catch (first) {
    if (!(first instanceof SysError)) throw first;
    const log = new Uint8Array(VERIFIER_LOG_SIZE);
    let again: unknown = first;
    try {
      // A program that loads now was refused for a passing reason (ENOMEM, EAGAIN): keep it.
      return load(log);
    } catch (e) {
      again = e;
    }
    const end = log.indexOf(0);
    const text = new TextDecoder().decode(log.subarray(0, end < 0 ? log.length : end)).trim();
    const detail = text ? `the kernel refused the device filter program; verifier log:\n${text.length > 4000 ? `…${text.slice(-4000)}` : text}` : "the kernel refused the device filter program";
    throw cgroupError("load device filter", dir, again, detail);
  }
}

/** Ids of the device programs attached to `dir` itself (not inherited from its parents). */
export function attachedDeviceFilters(dir: string): number[] {
  const fd = openCgroupDir(dir);
  try {
    return queryDeviceFilters(fd, dir);
  } finally {
    closeSync(fd);
  }
}

function openCgroupDir(dir: string): number {
  try {
    return openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    throw fsError("open", dir, e, "to attach the device filter");
  }
}

function queryDeviceFilters(dirFd: number, dir: string): number[] {
  const ids = new Uint32Array(MAX_PROGS);
  const a = attr([
    [0, "u32", dirFd],
    [4, "u32", BPF_CGROUP_DEVICE],
    [16, "u64", addressOf(new Uint8Array(ids.buffer))],
    [24, "u32", MAX_PROGS],
  ]);
  try {
    bpf(BPF_PROG_QUERY, a, "BPF_PROG_QUERY");
  } catch (e) {
    throw cgroupError("query device filters", dir, e, "listing the attached device programs");
  }
  const count = new DataView(a.buffer).getUint32(24, true);
  return Array.from(ids.subarray(0, Math.min(count, MAX_PROGS)));
}

/** An fd for an attached program, or undefined when it went away since the query. */
function progFd(id: number, dir: string): number | undefined {
  try {
    return bpf(BPF_PROG_GET_FD_BY_ID, attr([[0, "u32", id]]), `BPF_PROG_GET_FD_BY_ID ${id}`);
  } catch (e) {
    if (e instanceof SysError && e.errno === 2 /* ENOENT */) return undefined;
    throw cgroupError("replace device filter", dir, e, `opening the attached program ${id}`);
  }
}

export interface AppliedDeviceFilter {
  /** Instructions in the program loaded. */
  instructions: number;
  /** Ids of the programs that were attached before and are not any more. */
  replaced: number[];
}

/**
 * Makes `rules` (in linux.resources.devices order, defaults included) the device filter of the
 * cgroup2 directory `dir`: loads the program, attaches it with BPF_F_ALLOW_MULTI, and takes off the
 * device programs attached there before (as runc does). One old program is swapped atomically
 * (BPF_F_REPLACE); otherwise the new one is attached first and the old ones detached after, so no
 * moment passes with the cgroup unfiltered. Failures are CgroupErrors naming `dir` and the errno.
 */
export function applyDevicesV2(dir: string, rules: readonly LinuxDeviceCgroup[]): AppliedDeviceFilter {
  const program = compileDeviceFilter(rules); // bad input fails before the kernel is touched
  const dirFd = openCgroupDir(dir);
  const fds: number[] = [];
  try {
    const old = queryDeviceFilters(dirFd, dir);
    const progFdNew = loadDeviceFilter(program, dir);
    fds.push(progFdNew);
    const attach = (flags: number, replaceFd = 0) =>
      bpf(BPF_PROG_ATTACH, attr([[0, "u32", dirFd], [4, "u32", progFdNew], [8, "u32", BPF_CGROUP_DEVICE], [12, "u32", flags], [16, "u32", replaceFd]]), "BPF_PROG_ATTACH");

    let toDetach = old;
    const oldFd = old.length === 1 ? progFd(old[0]!, dir) : undefined;
    if (oldFd !== undefined) fds.push(oldFd);
    let attached = false;
    if (oldFd !== undefined) {
      try {
        attach(BPF_F_ALLOW_MULTI | BPF_F_REPLACE, oldFd);
        attached = true;
        toDetach = [];
      } catch (e) {
        // EINVAL: a kernel before 5.6 (no BPF_F_REPLACE); ENOENT: the old program went away
        // meanwhile. Either way, attach then detach below.
        if (!(e instanceof SysError && (e.errno === 22 || e.errno === 2))) throw cgroupError("attach device filter", dir, e, "replacing the device program");
      }
    }
    if (!attached) {
      try {
        attach(BPF_F_ALLOW_MULTI);
      } catch (e) {
        throw cgroupError("attach device filter", dir, e, "attaching the device program");
      }
    }
    for (const id of toDetach) {
      const fd = progFd(id, dir);
      if (fd === undefined) continue;
      fds.push(fd);
      try {
        bpf(BPF_PROG_DETACH, attr([[0, "u32", dirFd], [4, "u32", fd], [8, "u32", BPF_CGROUP_DEVICE]]), `BPF_PROG_DETACH ${id}`);
      } catch (e) {
        if (e instanceof SysError && e.errno === 2) continue; // detached by someone else meanwhile
        throw cgroupError("detach device filter", dir, e, `detaching the previous device program ${id}`);
      }
    }
    return { instructions: program.length / 8, replaced: old };
  } finally {
    for (const fd of fds) close(fd); // the cgroup holds its own reference to what is attached
    closeSync(dirFd);
  }
}
