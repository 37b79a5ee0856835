// The plan encoder (pure): layout, every op round-trips through a decoder written from the
// format description, and the tables agree with the C side's wire.h.
import { describe, expect, test } from "bun:test";
import { ERROR_OP_PLAN, FD_KIND, MSG } from "../src/linux/protocol.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Op } from "../src/plan/ops.ts";
import { execCandidates, FOLD, type FieldCheck } from "../src/plan/fold.ts";
import { encodePlan, OP_CONT, OP_WIRE, PLAN_MAGIC, PLAN_VERSION, PlanEncodeError } from "../src/plan/wire.ts";

/** One of every op, every optional field set, odd values (unicode, empty, max). */
const EVERY_OP: Op[] = [
  { op: "stage", name: "tsrun:init" },
  { op: "setns", path: "/proc/42/ns/net", nstype: 0x40000000 },
  { op: "unshare", flags: 0x10000000 },
  { op: "sync", code: 4 },
  { op: "fork", flags: 0x20000000 | 0x00020000 },
  { op: "writeFile", path: "/proc/self/oom_score_adj", data: "-999", inRoot: true },
  { op: "setRoot", path: "/run/bundle/rootfs" },
  { op: "mount", source: null, target: "/dev/shm", fstype: "tmpfs", flags: 0x2 | 0x4 | 0x8, data: null, inRoot: true, targetIsFile: false },
  { op: "mount", source: "/etc/hosts", target: "/etc/hosts", fstype: null, flags: 0x1000 | 0x1, data: "", inRoot: true, targetIsFile: true },
  { op: "mountSetattr", target: "/", attrSet: 1, attrClr: 0x70, propagation: 0x80000, recursive: true, inRoot: false },
  { op: "mkdir", path: "/dev/pts", mode: 0o755, inRoot: true },
  { op: "mknod", path: "/dev/null", mode: 0o20666, major: 1, minor: 3, uid: 0, gid: 0, inRoot: true, bindFallback: "/dev/null" },
  { op: "mknod", path: "/dev/fuse", mode: 0o20666, major: 10, minor: 229, uid: 4294967295, gid: 0, inRoot: true },
  { op: "symlink", target: "/proc/self/fd", path: "/dev/fd", inRoot: true },
  { op: "pivotRoot", path: "/rootfs" },
  { op: "chrootMove", path: "/rootfs" },
  { op: "hideMount", path: "/proc" },
  { op: "maskPath", path: "/proc/kcore" },
  { op: "readonlyPath", path: "/proc/sys" },
  { op: "remountRootReadonly" },
  { op: "sethostname", name: "höst-ñame" },
  { op: "setdomainname", name: "" },
  { op: "setrlimit", resource: 7, soft: 1024n, hard: (1n << 64n) - 1n },
  { op: "prctl", option: 38, arg: 1n },
  { op: "setUser", uid: 1000, gid: 1000, groups: [1000, 4294967294, 0], setgroups: true },
  { op: "boundingSet", keep: (1n << 41n) - 1n },
  { op: "boundingSet", keep: 0n },
  { op: "caps", effective: 0n, permitted: 1n << 40n, inheritable: 5n, ambient: 1n << 40n },
  { op: "seccomp", flags: 8, program: new Uint8Array([6, 0, 0, 0, 0, 0, 0xff, 0x7f]) },
  { op: "umask", mask: 0o22 },
  { op: "chdir", path: "/home/über" },
  { op: "setsid" },
  { op: "console", rows: 24, cols: 80, devConsole: true, uid: 1000 },
  { op: "openFifo", path: "/run/tsrun/x/exec.fifo" },
  { op: "waitFifo" },
  { op: "closeFds", first: 3 },
  { op: "resolveExec", file: "sh", path: "/usr/bin::/bin" },
  { op: "sessionKeyring", name: "_ses.abc" },
  { op: "openTree", path: "/srv/data", fd: 70, recursive: true },
  { op: "mountTree", fd: 70, attrSet: 1, target: "mnt", recursive: true, inRoot: true, targetIsFile: false },
  { op: "idmapMount", source: "/vol", target: "data", usernsFd: 5, recursive: true, attrSet: 1, inRoot: true, targetIsFile: false },
  { op: "syscall", what: "set the scheduler (sched_setattr SCHED_FIFO priority 10)", nr: 314, bufArgs: 0b10, args: [0n, 0n, 0n], buf: new Uint8Array(56).fill(3) },
  { op: "syscall", what: "set the I/O priority", nr: 251, bufArgs: 0, tolerate: 22, args: [1n, 0n, (1n << 64n) - 1n, 4n, 5n, 6n], buf: new Uint8Array() },
  { op: "exec", file: "sh", argv: ["sh", "-c", "echo 🐧"], env: ["PATH=/bin", "TERM=xterm"], path: "/usr/bin:/bin" },
];

/** A decoder written from the format description (the C decoder's twin), for round trips. */
function decode(plan: Uint8Array): Op[] {
  return decodeSteps(plan).ops;
}

/** The wire ops, and for each the plan step it belongs to (OP_CONT: the step of the op before). */
function decodeSteps(plan: Uint8Array): { ops: Op[]; steps: number[] } {
  const v = new DataView(plan.buffer, plan.byteOffset, plan.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  const u32 = () => ((at += 4), v.getUint32(at - 4, true));
  const str = (nullable: boolean): string | null => {
    const n = u32();
    if (nullable && n === 0xffffffff) return null;
    const s = utf8.decode(plan.subarray(at, at + n));
    expect(plan[at + n]).toBe(0);
    at += n + 1;
    return s;
  };
  expect(u32()).toBe(PLAN_MAGIC);
  expect(u32()).toBe(PLAN_VERSION);
  const count = u32();
  expect(u32()).toBe(plan.length);
  const byCode = new Map(Object.entries(OP_WIRE).map(([name, w]) => [w.code, { name, ...w }]));
  const ops: Op[] = [];
  const steps: number[] = [];
  for (let i = 0; i < count; i++) {
    const code = u32();
    steps.push(code & OP_CONT ? steps.at(-1)! : (steps.at(-1) ?? -1) + 1);
    const spec = byCode.get((code & ~OP_CONT) >>> 0)!;
    const len = u32();
    const end = at + len;
    const op: Record<string, unknown> = { op: spec.name };
    for (const [name, type] of spec.fields) {
      if (type === "s" || type === "n") op[name] = str(type === "n");
      else if (type === "u") op[name] = u32();
      else if (type === "v") op[name] = Array.from({ length: u32() }, () => str(false));
      else if (type === "x") op[name] = Array.from({ length: u32() }, () => ((at += 8), v.getBigUint64(at - 8, true)));
      else if (type === "b") {
        const n = u32();
        op[name] = plan.slice(at, at + n);
        at += n;
      }
    }
    expect(at).toBe(end);
    ops.push(op as unknown as Op);
  }
  expect(at).toBe(plan.length);
  return { ops, steps };
}

/** What wire.ts writes for a step: the syscalls of fold.ts, or the op itself. */
const NO_CHECK: FieldCheck = { u32: (v) => v as number, u64: (v) => v as bigint, bool: (v) => v === true, str: (v) => v as string, list: (v) => v as unknown[] };
function wireOps(op: Op): Op[] {
  return Object.hasOwn(FOLD, op.op) ? (FOLD as unknown as Record<string, (o: Op, c: FieldCheck) => Op[]>)[op.op]!(op, NO_CHECK) : [op];
}

/** What the wire keeps of an op: booleans become 0/1, an absent optional its zero. */
function normalized(op: Op): Record<string, unknown> {
  const out: Record<string, unknown> = { op: op.op };
  const rec = op as unknown as Record<string, unknown>;
  for (const [name, type] of OP_WIRE[op.op as keyof typeof OP_WIRE].fields) {
    // exec's and resolveExec's candidates are derived from file and path
    const v = name === "candidates" ? execCandidates(rec.file as string, rec.path as string) : rec[name];
    // one bigint in an "x" field is an array of one (boundingSet's keep)
    out[name] = type === "u" && (typeof v === "boolean" || v === undefined) ? Number(v ?? 0) : type === "n" ? (v ?? null) : type === "x" && typeof v === "bigint" ? [v] : v;
  }
  return out;
}

describe("encodePlan", () => {
  test("header: magic, version, op count, total length, little endian", () => {
    const plan = encodePlan([{ op: "waitFifo" }, { op: "closeFds", first: 0o22 }]);
    const v = new DataView(plan.buffer);
    expect(Array.from(plan.subarray(0, 4))).toEqual([0x54, 0x53, 0x52, 0x50]); // "TSRP"
    expect(v.getUint32(4, true)).toBe(5); // version 5: the bounding set is one op again
    expect(v.getUint32(8, true)).toBe(2);
    expect(v.getUint32(12, true)).toBe(plan.length);
    // waitFifo: code 30, no payload; closeFds: code 31, 4 bytes
    expect(Array.from(plan.subarray(16))).toEqual([30, 0, 0, 0, 0, 0, 0, 0, 31, 0, 0, 0, 4, 0, 0, 0, 0o22, 0, 0, 0]);
  });

  test("strings are length-prefixed and NUL-terminated UTF-8; null is 0xffffffff; arrays count-prefixed", () => {
    const plan = encodePlan([{ op: "exec", file: "é", argv: ["a", ""], env: [], path: "" }, { op: "mount", source: null, target: "t", fstype: null, flags: 7, data: null }]);
    expect(Array.from(plan.subarray(24, 24 + 42))).toEqual([
      2, 0, 0, 0, 0xc3, 0xa9, 0, // file
      2, 0, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0, 0, 0, // argv: 2 strings
      0, 0, 0, 0, // env: none
      0, 0, 0, 0, 0, // path: ""
      1, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0xa9, 0, // candidates (derived): the file alone
    ]);
    expect(Array.from(plan.subarray(24 + 42 + 8, 24 + 42 + 8 + 4))).toEqual([0xff, 0xff, 0xff, 0xff]); // mount source: null
  });

  test("every op round-trips", () => {
    // the sample covers every op of the vocabulary
    expect(new Set<string>(EVERY_OP.map((o) => o.op))).toEqual(new Set([...Object.keys(OP_WIRE), ...Object.keys(FOLD)]));
    const { ops, steps } = decodeSteps(encodePlan(EVERY_OP));
    expect(ops).toEqual(EVERY_OP.flatMap(wireOps).map(normalized) as unknown as Op[]);
    // each wire op belongs to the step it came from: errors are reported by step
    expect(steps).toEqual(EVERY_OP.flatMap((op, i) => wireOps(op).map(() => i)));
  });

  test("the encoded sample has no field the wire table forgets", () => {
    for (const op of EVERY_OP.filter((o) => !Object.hasOwn(FOLD, o.op))) {
      const wire = new Set(OP_WIRE[op.op as keyof typeof OP_WIRE].fields.map(([n]) => n as string));
      for (const k of Object.keys(op)) if (k !== "op") expect(wire.has(k) ? k : `${op.op}.${k} missing from OP_WIRE`).toBe(k);
    }
  });

  test("values the wire cannot carry are refused with the op index and field", () => {
    const bad: [Op, RegExp][] = [
      [{ op: "chdir", path: "a\0b" }, /op 1 field path: contains a NUL byte/],
      [{ op: "umask", mask: -1 }, /op 1 field mask: expected an integer/],
      [{ op: "umask", mask: 2 ** 32 }, /field mask/],
      [{ op: "umask", mask: 1.5 }, /field mask/],
      [{ op: "setrlimit", resource: 7, soft: -1n, hard: 0n }, /field soft: expected a bigint/],
      [{ op: "setrlimit", resource: 7, soft: 1n << 64n, hard: 0n }, /field soft/],
      [{ op: "prctl", option: 38, arg: 1 as unknown as bigint }, /field arg: expected a bigint/],
      [{ op: "exec", file: "sh", argv: ["sh", "x\0"], env: [], path: "" }, /field argv\[1\]: contains a NUL byte/],
      [{ op: "setUser", uid: 0, gid: 0, groups: [-5], setgroups: true }, /field groups\[0\]/],
      [{ op: "nope" } as unknown as Op, /op 1 field op: unknown op "nope"/],
      [{ op: "syscall", what: "", nr: 1, bufArgs: 0, args: [0n, 0n, 0n, 0n, 0n, 0n, 0n], buf: new Uint8Array() }, /field args: expected a bigint or an array of at most 6/],
      [{ op: "syscall", what: "", nr: 1, bufArgs: 0, args: [0n, -1n], buf: new Uint8Array() }, /field args\[1\]: expected a bigint/],
    ];
    for (const [op, msg] of bad) {
      expect(() => encodePlan([{ op: "setsid" }, op])).toThrow(PlanEncodeError);
      expect(() => encodePlan([{ op: "setsid" }, op])).toThrow(msg);
    }
  });

  test("large plans grow the buffer (a big environment, a long seccomp program)", () => {
    const env = Array.from({ length: 5000 }, (_, i) => `VAR_${i}=${"x".repeat(i % 100)}`);
    const program = new Uint8Array(8 * 4000).fill(7);
    const ops: Op[] = [{ op: "seccomp", flags: 0, program }, { op: "exec", file: "/bin/true", argv: ["true"], env, path: "" }];
    expect(decode(encodePlan(ops))).toEqual(ops.map(normalized) as unknown as Op[]);
  });
});

describe("wire.h agrees with wire.ts", () => {
  const header = readFileSync(join(import.meta.dir, "../native/wire.h"), "utf8");

  test("magic, version and the continuation bit", () => {
    expect(Number(header.match(/#define PLAN_MAGIC (0x[0-9a-f]+)u/)?.[1])).toBe(PLAN_MAGIC);
    expect(Number(header.match(/#define PLAN_VERSION (\d+)u/)?.[1])).toBe(PLAN_VERSION);
    expect(Number(header.match(/#define OP_CONT (0x[0-9a-f]+)u/)?.[1])).toBe(OP_CONT);
  });

  test("op codes and field formats", () => {
    const rows = [...header.matchAll(/^\s*X\(([A-Z_]+), (\d+), "([a-z]*)"\)/gm)];
    const codes: Record<string, number> = Object.fromEntries(rows.map((m) => [m[1]!, Number(m[2])]));
    const formats = Object.fromEntries(rows.map((m) => [m[1]!, m[3]!]));
    codes.OP_LAST = Number(header.match(/OP_LAST = (\d+)/)?.[1]);
    const cName = (op: string) => op.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
    for (const [op, w] of Object.entries(OP_WIRE)) {
      expect([op, codes[cName(op)]]).toEqual([op, w.code]);
      expect([op, formats[cName(op)]]).toEqual([op, w.fields.map(([, t]) => t).join("")]);
    }
    expect(codes.OP_LAST).toBe(Math.max(...Object.values(OP_WIRE).map((w) => w.code)));
    expect(Object.keys(formats).length).toBe(Object.keys(OP_WIRE).length);
  });

  test("message types, fd kinds and the plan's own error index (the sync protocol's executor side)", () => {
    const msgs = Object.fromEntries([...header.matchAll(/^\s*MSG_([A-Z]+) = (\d+),/gm)].map((m) => [m[1]!, Number(m[2])]));
    expect(msgs).toEqual({ ...MSG });
    const kinds = Object.fromEntries([...header.matchAll(/FD_([A-Z]+) = (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    expect(kinds).toEqual({ ...FD_KIND });
    expect(Number(header.match(/#define ERROR_OP_PLAN (0x[0-9a-f]+)u/)?.[1])).toBe(ERROR_OP_PLAN);
  });
});
