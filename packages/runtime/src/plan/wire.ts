// The binary form of an InitPlan that the C executor reads (packages/runtime/native/wire.h is
// the other half; test/wire.test.ts checks that both tables agree). Little endian:
//
//   header  u32 magic "TSRP" | u32 version | u32 op count | u32 total bytes
//   op      u32 code | u32 payload bytes | payload
//
// Payload fields in the order of the op's fields in ops.ts; types:
//   s str   u32 length, UTF-8 bytes, NUL        n  nullable str: a str, or u32 0xffffffff
//   u u32   (numbers; booleans 0/1)             q  u64 (bigints)
//   v       u32 count, then a str each          w  u32 count, then a u32 each
//   b       u32 length, bytes
// Pure: no FFI, no file system.
import type { Op } from "./ops.ts";

export const PLAN_MAGIC = 0x50525354; // "TSRP" read as a little-endian u32
export const PLAN_VERSION = 1;

type OpName = Op["op"];
type Field = "s" | "n" | "u" | "q" | "v" | "w" | "b";

/** The field names of op K (the compiler checks the table below against ops.ts with it). */
type FieldOf<K extends OpName> = Exclude<keyof Extract<Op, { op: K }>, "op">;

/** Code and fields (name, type) of each op, in wire order. */
export const OP_WIRE: { readonly [K in OpName]: { code: number; fields: readonly (readonly [FieldOf<K>, Field])[] } } = {
  stage: { code: 1, fields: [["name", "s"]] },
  setns: { code: 2, fields: [["path", "s"], ["nstype", "u"]] },
  unshare: { code: 3, fields: [["flags", "u"]] },
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
  chrootMove: { code: 14, fields: [["path", "s"]] },
  maskPath: { code: 15, fields: [["path", "s"]] },
  readonlyPath: { code: 16, fields: [["path", "s"]] },
  remountRootReadonly: { code: 17, fields: [] },
  sethostname: { code: 18, fields: [["name", "s"]] },
  setdomainname: { code: 19, fields: [["name", "s"]] },
  setrlimit: { code: 20, fields: [["resource", "u"], ["soft", "q"], ["hard", "q"]] },
  prctl: { code: 21, fields: [["option", "u"], ["arg", "q"]] },
  setUser: { code: 22, fields: [["uid", "u"], ["gid", "u"], ["groups", "w"], ["setgroups", "u"]] },
  caps: { code: 23, fields: [["bounding", "q"], ["effective", "q"], ["permitted", "q"], ["inheritable", "q"], ["ambient", "q"]] },
  seccomp: { code: 24, fields: [["flags", "u"], ["program", "b"]] },
  umask: { code: 25, fields: [["mask", "u"]] },
  chdir: { code: 26, fields: [["path", "s"]] },
  setsid: { code: 27, fields: [] },
  console: { code: 28, fields: [["rows", "u"], ["cols", "u"], ["devConsole", "u"]] },
  openFifo: { code: 29, fields: [["path", "s"]] },
  waitFifo: { code: 30, fields: [] },
  closeFds: { code: 31, fields: [["first", "u"]] },
  hook: { code: 32, fields: [["path", "s"], ["args", "v"], ["env", "v"], ["stdin", "n"], ["timeoutMs", "u"]] },
  exec: { code: 33, fields: [["file", "s"], ["argv", "v"], ["env", "v"], ["path", "s"]] },
  resolveExec: { code: 34, fields: [] },
  signalFifo: { code: 35, fields: [] },
  sessionKeyring: { code: 37, fields: [["name", "s"]] },
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

class Writer {
  buf = new Uint8Array(4096);
  view = new DataView(this.buf.buffer);
  len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v, true);
    this.len += 4;
  }
  u64(v: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.len, v, true);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** Reserves a u32 to be filled in later (lengths); returns its offset. */
  hole(): number {
    this.u32(0);
    return this.len - 4;
  }
  fill(at: number, v: number): void {
    this.view.setUint32(at, v, true);
  }
}

function str(w: Writer, s: unknown, i: number, name: string): void {
  if (typeof s !== "string") throw new PlanEncodeError(i, name, `expected a string, got ${typeof s}`);
  if (s.includes("\0")) throw new PlanEncodeError(i, name, "contains a NUL byte");
  const b = utf8.encode(s);
  w.u32(b.length);
  w.bytes(b);
  w.bytes(new Uint8Array(1));
}

function u32(w: Writer, v: unknown, i: number, name: string): void {
  const n = typeof v === "boolean" ? Number(v) : v === undefined ? 0 : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > U32_MAX) {
    throw new PlanEncodeError(i, name, `expected an integer in 0..2^32-1, got ${String(v)}`);
  }
  w.u32(n);
}

function field(w: Writer, type: Field, v: unknown, i: number, name: string): void {
  switch (type) {
    case "s":
      return str(w, v, i, name);
    case "n":
      if (v === null || v === undefined) return w.u32(U32_MAX);
      return str(w, v, i, name);
    case "u":
      return u32(w, v, i, name);
    case "q":
      if (typeof v !== "bigint" || v < 0n || v > U64_MAX) throw new PlanEncodeError(i, name, `expected a bigint in 0..2^64-1, got ${String(v)}`);
      return w.u64(v);
    case "v":
      if (!Array.isArray(v)) throw new PlanEncodeError(i, name, "expected an array of strings");
      w.u32(v.length);
      v.forEach((s, k) => str(w, s, i, `${name}[${k}]`));
      return;
    case "w":
      if (!Array.isArray(v)) throw new PlanEncodeError(i, name, "expected an array of numbers");
      w.u32(v.length);
      v.forEach((n, k) => u32(w, n, i, `${name}[${k}]`));
      return;
    case "b":
      if (!(v instanceof Uint8Array)) throw new PlanEncodeError(i, name, "expected a Uint8Array");
      w.u32(v.length);
      return w.bytes(v);
  }
}

/** Encodes ops into the executor's wire format. Throws PlanEncodeError on a value it cannot carry. */
export function encodePlan(ops: readonly Op[]): Uint8Array {
  const w = new Writer();
  w.u32(PLAN_MAGIC);
  w.u32(PLAN_VERSION);
  w.u32(ops.length);
  const total = w.hole();
  ops.forEach((op, i) => {
    const spec = OP_WIRE[op.op];
    if (!spec) throw new PlanEncodeError(i, "op", `unknown op ${JSON.stringify(op.op)}`);
    w.u32(spec.code);
    const size = w.hole();
    const start = w.len;
    const rec = op as unknown as Record<string, unknown>;
    for (const [name, type] of spec.fields) field(w, type, rec[name], i, name);
    w.fill(size, w.len - start);
  });
  w.fill(total, w.len);
  return w.buf.slice(0, w.len);
}
