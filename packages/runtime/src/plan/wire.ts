// The binary form of an InitPlan that the C executor reads (packages/runtime/native/wire.h is
// the other half; test/wire.test.ts checks that both tables agree). Little endian:
//
//   header  u32 magic "TSRP" | u32 version | u32 op count | u32 total bytes
//   op      u32 code | u32 payload bytes | payload
//
// Payload fields in the order of the op's fields in ops.ts; types:
//   s str   u32 length, UTF-8 bytes, NUL        n  nullable str: a str, or u32 0xffffffff
//   u u32   (numbers; booleans 0/1)
//   v       u32 count, then a str each          b  u32 length, bytes
//   x       u32 count, then a u64 each (at most 6); one bigint is an array of one
// The steps of fold.ts are written as `syscall` ops; a step written as several has OP_CONT in
// the code of all but its first, and the executor reports errors by step.
// Pure: no FFI, no file system.
import { execCandidates, FOLD, type FieldCheck, type FoldedOpName } from "./fold.ts";
import type { Op } from "./ops.ts";

export const PLAN_MAGIC = 0x50525354; // "TSRP" read as a little-endian u32
export const PLAN_VERSION = 5;
/** In an op's code: the op continues the plan step of the op before it. */
export const OP_CONT = 0x80000000;

type OpName = Exclude<Op["op"], FoldedOpName>;
type Field = "s" | "n" | "u" | "v" | "b" | "x";

/**
 * The field names of op K (the compiler checks the table below against ops.ts with it), and the
 * one the encoder derives: exec's and resolveExec's candidate paths (fold.ts execCandidates).
 */
type FieldOf<K extends OpName> = Exclude<keyof Extract<Op, { op: K }>, "op"> | (K extends "exec" | "resolveExec" ? "candidates" : never);

/** Code and fields (name, type) of each op the executor has code for, in wire order. */
export const OP_WIRE: { readonly [K in OpName]: { code: number; fields: readonly (readonly [FieldOf<K>, Field])[] } } = {
  setns: { code: 2, fields: [["path", "s"], ["nstype", "u"]] },
  sync: { code: 4, fields: [["code", "u"]] },
  fork: { code: 5, fields: [["flags", "u"]] },
  writeFile: { code: 6, fields: [["path", "s"], ["data", "s"], ["inRoot", "u"]] },
  setRoot: { code: 7, fields: [["path", "s"]] },
  mount: {
    code: 8,
    fields: [["source", "n"], ["target", "s"], ["fstype", "n"], ["flags", "u"], ["data", "n"], ["inRoot", "u"], ["targetIsFile", "u"]],
  },
  mountSetattr: {
    code: 9,
    fields: [["target", "s"], ["attrSet", "u"], ["attrClr", "u"], ["propagation", "u"], ["recursive", "u"], ["inRoot", "u"]],
  },
  mkdir: { code: 10, fields: [["path", "s"], ["mode", "u"], ["inRoot", "u"]] },
  mknod: {
    code: 11,
    fields: [["path", "s"], ["mode", "u"], ["major", "u"], ["minor", "u"], ["uid", "u"], ["gid", "u"], ["inRoot", "u"], ["bindFallback", "n"]],
  },
  symlink: { code: 12, fields: [["target", "s"], ["path", "s"], ["inRoot", "u"]] },
  pivotRoot: { code: 13, fields: [["path", "s"]] },
  maskPath: { code: 15, fields: [["path", "s"]] },
  readonlyPath: { code: 16, fields: [["path", "s"]] },
  remountRootReadonly: { code: 17, fields: [] },
  seccomp: { code: 24, fields: [["flags", "u"], ["program", "b"]] },
  chdir: { code: 26, fields: [["path", "s"], ["beforeUser", "u"]] },
  console: { code: 28, fields: [["rows", "u"], ["cols", "u"], ["devConsole", "u"], ["uid", "u"]] },
  openFifo: { code: 29, fields: [["path", "s"]] },
  waitFifo: { code: 30, fields: [] },
  closeFds: { code: 31, fields: [["first", "u"]] },
  exec: { code: 33, fields: [["file", "s"], ["argv", "v"], ["env", "v"], ["path", "s"], ["candidates", "v"]] },
  resolveExec: { code: 34, fields: [["file", "s"], ["path", "s"], ["candidates", "v"]] },
  sessionKeyring: { code: 37, fields: [["name", "s"]] },
  openTree: { code: 38, fields: [["path", "s"], ["fd", "u"], ["recursive", "u"]] },
  hideMount: { code: 40, fields: [["path", "s"]] },
  mountTree: { code: 39, fields: [["fd", "u"], ["attrSet", "u"], ["target", "s"], ["recursive", "u"], ["inRoot", "u"], ["targetIsFile", "u"]] },
  syscall: { code: 41, fields: [["what", "s"], ["nr", "u"], ["bufArgs", "u"], ["tolerate", "u"], ["args", "x"], ["buf", "b"]] },
  boundingSet: { code: 42, fields: [["keep", "x"]] },
  idmapMount: {
    code: 36,
    fields: [["source", "s"], ["target", "s"], ["usernsFd", "u"], ["recursive", "u"], ["attrSet", "u"], ["inRoot", "u"], ["targetIsFile", "u"]],
  },
};

const U32_MAX = 0xffffffff;
const U64_MAX = (1n << 64n) - 1n;
const utf8 = new TextEncoder();

/** Thrown for a value the wire cannot carry; names the op index and field. */
export class PlanEncodeError extends Error {
  constructor(
    readonly index: number,
    readonly field: string,
    message: string,
  ) {
    super(`plan op ${index} field ${field}: ${message}`);
    this.name = "PlanEncodeError";
  }
}

/**
 * Encodes ops into the executor's wire format. Throws PlanEncodeError on a value it cannot carry.
 * Written for a cold process: one buffer, byte stores and encodeInto, no DataView or BigInt
 * arithmetic per field — the first use of each costs tens of microseconds in a fresh Bun.
 */
export function encodePlan(ops: readonly Op[]): Uint8Array {
  let buf = new Uint8Array(8192);
  let len = 0;
  const room = (n: number): void => {
    if (len + n <= buf.length) return;
    let size = buf.length * 2;
    while (size < len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(buf.subarray(0, len));
    buf = next;
  };
  const u32at = (at: number, v: number): void => {
    buf[at] = v & 0xff;
    buf[at + 1] = (v >>> 8) & 0xff;
    buf[at + 2] = (v >>> 16) & 0xff;
    buf[at + 3] = (v >>> 24) & 0xff;
  };
  const u32 = (v: number): void => {
    room(4);
    u32at(len, v);
    len += 4;
  };
  // k: the element's index in an array field (named in errors only: no string built per element)
  const field = (name: string, k: number): string => (k < 0 ? name : `${name}[${k}]`);
  const asStr = (s: unknown, i: number, name: string, k = -1): string => {
    if (typeof s !== "string") throw new PlanEncodeError(i, field(name, k), `expected a string, got ${typeof s}`);
    if (s.includes("\0")) throw new PlanEncodeError(i, field(name, k), "contains a NUL byte");
    return s;
  };
  const asU32 = (v: unknown, i: number, name: string, k = -1): number => {
    const n = typeof v === "boolean" ? Number(v) : v === undefined ? 0 : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > U32_MAX)
      throw new PlanEncodeError(i, field(name, k), `expected an integer in 0..2^32-1, got ${String(v)}`);
    return n;
  };
  const asU64 = (v: unknown, i: number, name: string, k = -1): bigint => {
    if (typeof v !== "bigint" || v < 0n || v > U64_MAX) throw new PlanEncodeError(i, field(name, k), `expected a bigint in 0..2^64-1, got ${String(v)}`);
    return v;
  };
  const str = (s: unknown, i: number, name: string, k = -1): void => {
    asStr(s, i, name, k);
    room((s as string).length * 3 + 5); // UTF-8 takes at most 3 bytes per UTF-16 unit
    const { written } = utf8.encodeInto(s as string, buf.subarray(len + 4));
    u32at(len, written);
    len += 4 + written;
    buf[len++] = 0;
  };
  const num = (v: unknown, i: number, name: string, k = -1): void => u32(asU32(v, i, name, k));
  const u64 = (v: unknown, i: number, name: string, k = -1): void => {
    asU64(v, i, name, k);
    // Most values fit in 53 bits: split them without BigInt arithmetic.
    const n = (v as bigint) <= 0x1fffffffffffffn ? Number(v) : -1;
    if (n >= 0) {
      u32(n % 0x100000000);
      u32(Math.floor(n / 0x100000000));
    } else {
      u32(Number((v as bigint) & 0xffffffffn));
      u32(Number((v as bigint) >> 32n));
    }
  };
  /** One wire op for the op of plan step i; `cont`: it continues that step (OP_CONT). */
  const put = (op: Op, i: number, cont: boolean): void => {
    const spec = Object.hasOwn(OP_WIRE, op.op) ? OP_WIRE[op.op as OpName] : undefined;
    if (!spec) throw new PlanEncodeError(i, "op", `unknown op ${JSON.stringify(op.op)}`);
    u32((spec.code | (cont ? OP_CONT : 0)) >>> 0);
    const size = len;
    u32(0);
    const start = len;
    let rec = op as unknown as Record<string, unknown>;
    if (op.op === "exec" || op.op === "resolveExec") rec = { ...rec, candidates: execCandidates(asStr(op.file, i, "file"), asStr(op.path, i, "path")) };
    for (const [name, type] of spec.fields) {
      const v = rec[name];
      if (type === "s") str(v, i, name);
      else if (type === "n") {
        if (v === null || v === undefined) u32(U32_MAX);
        else str(v, i, name);
      } else if (type === "u") num(v, i, name);
      else if (type === "x") {
        // the executor has six u64 slots per op (a syscall's arguments)
        if (typeof v === "bigint") {
          u32(1);
          u64(v, i, name);
        } else {
          if (!Array.isArray(v) || v.length > 6) throw new PlanEncodeError(i, name, "expected a bigint or an array of at most 6");
          u32(v.length);
          for (let k = 0; k < v.length; k++) u64(v[k], i, name, k);
        }
      } else if (type === "v") {
        if (!Array.isArray(v)) throw new PlanEncodeError(i, name, "expected an array of strings");
        u32(v.length);
        for (let k = 0; k < v.length; k++) str(v[k], i, name, k);
      } else {
        if (!(v instanceof Uint8Array)) throw new PlanEncodeError(i, name, "expected a Uint8Array");
        u32(v.length);
        room(v.length);
        buf.set(v, len);
        len += v.length;
      }
    }
    u32at(size, len - start);
    count++;
  };
  u32(PLAN_MAGIC);
  u32(PLAN_VERSION);
  const countAt = len;
  u32(0);
  const total = len;
  u32(0);
  let count = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (!Object.hasOwn(FOLD, op.op)) {
      put(op, i, false);
      continue;
    }
    const check: FieldCheck = {
      u32: (v, name, k) => asU32(v, i, name, k),
      u64: (v, name) => asU64(v, i, name),
      bool: (v, name) => {
        if (v !== undefined && typeof v !== "boolean") throw new PlanEncodeError(i, name, `expected a boolean, got ${typeof v}`);
        return v === true;
      },
      str: (v, name) => asStr(v, i, name),
      list: (v, name) => {
        if (!Array.isArray(v)) throw new PlanEncodeError(i, name, "expected an array");
        return v as unknown[];
      },
    };
    const fold = FOLD[op.op as FoldedOpName] as (op: Op, check: FieldCheck) => Op[];
    fold(op, check).forEach((call, k) => put(call, i, k > 0));
  }
  u32at(countAt, count);
  u32at(total, len);
  return buf.slice(0, len);
}
