// Classic BPF (linux/filter.h) as seccomp uses it: the few opcodes the compiler emits, and an
// assembler whose jumps name labels. The assembler lays the program out and makes every jump fit:
// a conditional jump's jt/jf is only 8 bits, so a branch whose target is more than 255
// instructions ahead becomes a short branch onto a `JA` (32-bit offset) placed right after it.

export const BPF = {
  /** BPF_LD | BPF_W | BPF_ABS: A = 32-bit word at offset k of seccomp_data. */
  LD_W_ABS: 0x20,
  /** BPF_JMP | BPF_JA: pc += k. */
  JA: 0x05,
  /** BPF_JMP | BPF_JEQ | BPF_K */
  JEQ: 0x15,
  /** BPF_JMP | BPF_JGT | BPF_K (unsigned) */
  JGT: 0x25,
  /** BPF_JMP | BPF_JGE | BPF_K (unsigned) */
  JGE: 0x35,
  /** BPF_JMP | BPF_JSET | BPF_K: A & k != 0 */
  JSET: 0x45,
  /** BPF_ALU | BPF_AND | BPF_K: A &= k */
  AND: 0x54,
  /** BPF_RET | BPF_K: return k */
  RET: 0x06,
} as const;

/** The kernel's limit on a filter's length (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;
/** Size of one `struct sock_filter`: u16 code, u8 jt, u8 jf, u32 k. */
export const SOCK_FILTER_SIZE = 8;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** A branch target: a label, or `null` for the next instruction. */
export type Target = string | null;

type Item =
  | { kind: "label"; name: string }
  | { kind: "plain"; code: number; k: number }
  | { kind: "ja"; target: string }
  | { kind: "jump"; code: number; k: number; jt: Target; jf: Target };

export class Assembler {
  private items: Item[] = [];
  private labels = new Set<string>();
  private counter = 0;

  /** A fresh label name (not yet placed). */
  label(hint = "L"): string {
    return `${hint}#${this.counter++}`;
  }

  place(name: string): void {
    if (this.labels.has(name)) throw new Error(`bpf: label ${name} placed twice`);
    this.labels.add(name);
    this.items.push({ kind: "label", name });
  }

  load(offset: number): void {
    this.items.push({ kind: "plain", code: BPF.LD_W_ABS, k: offset });
  }

  and(k: number): void {
    this.items.push({ kind: "plain", code: BPF.AND, k: k >>> 0 });
  }

  ret(k: number): void {
    this.items.push({ kind: "plain", code: BPF.RET, k: k >>> 0 });
  }

  ja(target: string): void {
    this.items.push({ kind: "ja", target });
  }

  /** if (A <op> k) goto jt else goto jf; `null` is the next instruction. */
  jump(code: number, k: number, jt: Target, jf: Target): void {
    this.items.push({ kind: "jump", code, k: k >>> 0, jt, jf });
  }

  /** Lays the program out (growing far branches until every offset fits) and encodes it. */
  assemble(): Insn[] {
    const items = this.items;
    for (const it of items) {
      for (const t of it.kind === "jump" ? [it.jt, it.jf] : it.kind === "ja" ? [it.target] : [])
        if (t !== null && !this.labels.has(t)) throw new Error(`bpf: label ${t} is never placed`);
    }
    // For each jump item: does its jt / jf need a trampoline (JA) after it?
    const farT = new Array<boolean>(items.length).fill(false);
    const farF = new Array<boolean>(items.length).fill(false);
    const size = (i: number): number => {
      const it = items[i]!;
      if (it.kind === "label") return 0;
      if (it.kind !== "jump") return 1;
      return 1 + (farT[i] ? 1 : 0) + (farF[i] ? 1 : 0);
    };
    let pos: number[] = [];
    let where = new Map<string, number>();
    for (;;) {
      pos = [];
      where = new Map();
      let pc = 0;
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        pos.push(pc);
        if (it.kind === "label") where.set(it.name, pc);
        pc += size(i);
      }
      let grew = false;
      for (let i = 0; i < items.length; i++) {
        const it = items[i]!;
        if (it.kind !== "jump") continue;
        // Offsets count from the instruction right after the jump (its first trampoline, if any).
        const after = pos[i]! + 1;
        for (const [t, far] of [
          [it.jt, farT],
          [it.jf, farF],
        ] as const) {
          if (t === null || far[i]) continue;
          const off = where.get(t)! - after;
          if (off < 0) throw new Error(`bpf: backward jump to ${t}`);
          if (off > 255) {
            far[i] = true;
            grew = true;
          }
        }
      }
      if (!grew) break;
    }
    const out: Insn[] = [];
    const rel = (from: number, t: string): number => {
      const off = where.get(t)! - from;
      if (off < 0) throw new Error(`bpf: backward jump to ${t}`);
      return off;
    };
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.kind === "label") continue;
      if (it.kind === "plain") out.push({ code: it.code, jt: 0, jf: 0, k: it.k });
      else if (it.kind === "ja") out.push({ code: BPF.JA, jt: 0, jf: 0, k: rel(out.length + 1, it.target) });
      else {
        const me = out.length;
        const tT = farT[i]! ? me + 1 : -1; // index of jt's trampoline
        const tF = farF[i]! ? me + 1 + (farT[i]! ? 1 : 0) : -1;
        const next = me + size(i); // the instruction after the jump and its trampolines
        const off = (t: Target, tramp: number): number => {
          if (tramp >= 0) return tramp - (me + 1);
          return t === null ? next - (me + 1) : rel(me + 1, t);
        };
        const jt = off(it.jt, tT);
        const jf = off(it.jf, tF);
        if (jt > 255 || jf > 255) throw new Error("bpf: jump offset overflow");
        out.push({ code: it.code, jt, jf, k: it.k });
        if (tT >= 0) out.push({ code: BPF.JA, jt: 0, jf: 0, k: rel(tT + 1, it.jt!) });
        if (tF >= 0) out.push({ code: BPF.JA, jt: 0, jf: 0, k: rel(tF + 1, it.jf!) });
      }
    }
    return out;
  }
}

/** `struct sock_filter[]`, little endian, 8 bytes each. */
export function encode(prog: Insn[]): Uint8Array {
  const bytes = new Uint8Array(prog.length * SOCK_FILTER_SIZE);
  const view = new DataView(bytes.buffer);
  prog.forEach((ins, i) => {
    const o = i * SOCK_FILTER_SIZE;
    view.setUint16(o, ins.code, true);
    view.setUint8(o + 2, ins.jt);
    view.setUint8(o + 3, ins.jf);
    view.setUint32(o + 4, ins.k >>> 0, true);
  });
  return bytes;
}

export function decode(bytes: Uint8Array): Insn[] {
  if (bytes.length % SOCK_FILTER_SIZE !== 0) throw new Error("bpf: program length is not a multiple of 8");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let o = 0; o < bytes.length; o += SOCK_FILTER_SIZE)
    out.push({ code: view.getUint16(o, true), jt: view.getUint8(o + 2), jf: view.getUint8(o + 3), k: view.getUint32(o + 4, true) });
  return out;
}
