// cgroup v2 device filtering. Pure part: the generated eBPF is run in a small interpreter written
// here (independent of the compiler) and its verdicts compared, for every device type, a spread
// of majors/minors and every access combination, with a reference reading of the rule list.
// Kernel part (root): programs attached to a cgroup2 directory under /sys/fs/cgroup/unified,
// a shell moved into it, and what it may open and mknod.
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { LinuxDeviceCgroup } from "@tsrun/ocispec/core";
import { DEFAULT_ALLOWED } from "../src/cgroups/index.ts";
import { applyDevicesV2, attachedDeviceFilters, BPF_DEVCG, compileDeviceFilter, loadDeviceFilter, reduceDeviceRules } from "../src/cgroups/devices-v2.ts";
import { CgroupError } from "../src/cgroups/errors.ts";
import { bpf } from "../src/linux/libc.ts";
import { tempDir } from "./helpers.ts";

// ---- a tiny eBPF interpreter: just enough of the instruction set, strict about the rest ----

interface Decoded {
  op: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

function decode(bytes: Uint8Array): Decoded[] {
  expect(bytes.length % 8).toBe(0);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Decoded[] = [];
  for (let i = 0; i < bytes.length; i += 8) {
    const regs = v.getUint8(i + 1);
    out.push({ op: v.getUint8(i), dst: regs & 0xf, src: regs >> 4, off: v.getInt16(i + 2, true), imm: v.getInt32(i + 4, true) });
  }
  return out;
}

const M64 = (1n << 64n) - 1n;
const M32 = (1n << 32n) - 1n;
const sext = (imm: number) => BigInt(imm) & M64; // imm is sign-extended to 64 bits

/** Runs the program on ctx {access_type, major, minor}; throws on anything the kernel would refuse. */
function run(prog: Decoded[], ctx: [number, number, number]): number {
  const r: (bigint | undefined)[] = new Array(11).fill(undefined);
  r[1] = 1n << 40n; // the ctx pointer; R10, the frame pointer, is never used
  const get = (n: number) => {
    const x = r[n];
    if (x === undefined) throw new Error(`read of uninitialised R${n}`);
    return x;
  };
  for (let pc = 0, steps = 0; ; steps++) {
    if (steps > 10_000) throw new Error("no exit");
    const x = prog[pc];
    if (!x) throw new Error(`pc ${pc} out of the program`);
    pc++;
    switch (x.op) {
      case 0x61: // ldxw from ctx
        if (x.src !== 1 || get(1) !== 1n << 40n || ![0, 4, 8].includes(x.off)) throw new Error(`bad ctx load at ${pc - 1}`);
        r[x.dst] = BigInt(ctx[x.off / 4]!) & M32;
        break;
      case 0x54:
        r[x.dst] = get(x.dst) & BigInt(x.imm) & M32;
        break;
      case 0x74:
        r[x.dst] = (get(x.dst) & M32) >> BigInt(x.imm);
        break;
      case 0xb4:
        r[x.dst] = BigInt(x.imm) & M32;
        break;
      case 0xbc:
        r[x.dst] = get(x.src) & M32;
        break;
      case 0xa4:
        r[x.dst] = (get(x.dst) ^ BigInt(x.imm)) & M32;
        break;
      case 0x4c:
        r[x.dst] = (get(x.dst) | get(x.src)) & M32;
        break;
      case 0x15:
        if (get(x.dst) === sext(x.imm)) pc += x.off;
        break;
      case 0x55:
        if (get(x.dst) !== sext(x.imm)) pc += x.off;
        break;
      case 0x95: {
        const v = Number(get(0));
        if (v !== 0 && v !== 1) throw new Error(`returns ${v}`);
        return v;
      }
      default:
        throw new Error(`unexpected opcode 0x${x.op.toString(16)} at ${pc - 1}`);
    }
  }
}

// ---- the reference: rules read forward, bit by bit, last match wins ----

const BITS = { r: BPF_DEVCG.ACC_READ, w: BPF_DEVCG.ACC_WRITE, m: BPF_DEVCG.ACC_MKNOD } as const;

function reference(rules: readonly LinuxDeviceCgroup[], type: "b" | "c", major: number, minor: number, access: number): boolean {
  const verdict = new Map<number, boolean>(Object.values(BITS).map((b) => [b, false]));
  for (const rule of rules) {
    const all = (rule.type ?? "a") === "a";
    if (!all) {
      if (rule.type !== type) continue;
      if ((rule.major ?? -1) >= 0 && rule.major !== major) continue;
      if ((rule.minor ?? -1) >= 0 && rule.minor !== minor) continue;
    }
    for (const [c, b] of Object.entries(BITS)) if (all || (rule.access ?? "rwm").includes(c)) verdict.set(b, rule.allow);
  }
  return Object.values(BITS).every((b) => !(access & b) || verdict.get(b) === true);
}

const MAJORS = [0, 1, 4, 5, 7, 8, 136, 4095, 0x80000001];
const MINORS = [0, 1, 3, 5, 7, 8, 9, 1048575];

function checkAll(rules: readonly LinuxDeviceCgroup[]): number {
  const prog = decode(compileDeviceFilter(rules));
  let n = 0;
  for (const type of ["b", "c"] as const)
    for (const major of MAJORS)
      for (const minor of MINORS)
        for (let access = 1; access <= 7; access++) {
          const t = type === "b" ? BPF_DEVCG.DEV_BLOCK : BPF_DEVCG.DEV_CHAR;
          const got = run(prog, [(access << 16) | t, major, minor]) === 1;
          const want = reference(rules, type, major, minor, access);
          if (got !== want) throw new Error(`${JSON.stringify(rules)}: ${type} ${major}:${minor} access ${access}: program says ${got}, rules say ${want}`);
          n++;
        }
  return n;
}

const deny: LinuxDeviceCgroup = { allow: false, access: "rwm" };
const CONTAINER_RULES: LinuxDeviceCgroup[] = [deny, ...DEFAULT_ALLOWED];

const HAND_PICKED: LinuxDeviceCgroup[][] = [
  [],
  [deny],
  [{ allow: true, access: "rwm" }],
  [deny, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 5, access: "r" }],
  [deny, { allow: true, type: "c", major: 1, minor: 3, access: "rw" }, { allow: false, type: "c", major: 1, minor: 3, access: "w" }],
  [deny, { allow: true, type: "c", access: "rwm" }, { allow: false, type: "c", major: 1, access: "r" }],
  [deny, { allow: true, type: "c", major: 1, minor: 3, access: "r" }, { allow: true, type: "c", major: 1, minor: 3, access: "w" }],
  [{ allow: true, access: "rwm" }, { allow: false, type: "b", access: "rwm" }, { allow: false, type: "c", major: 5, access: "wm" }, { allow: true, type: "c", major: 5, minor: 1, access: "w" }],
  [{ allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, deny, { allow: true, type: "b", major: 8, access: "r" }],
  [deny, { allow: true, type: "c", major: 1, minor: 3, access: "" }],
  [deny, { allow: true, type: "c", major: 1, minor: 3 }],
  [deny, { allow: true, type: "b", major: 0x80000001, access: "rw" }, { allow: true, type: "c", major: 4095, minor: 0xffffffff, access: "rw" }],
  // "a" with numbers still means every device, as the v1 controller reads it
  [deny, { allow: true, type: "a", major: 1, minor: 3, access: "r" }, { allow: false, type: "c", major: 1, minor: 7, access: "w" }],
  [...CONTAINER_RULES, { allow: false, type: "c", major: 1, minor: 7, access: "rwm" }, { allow: true, type: "b", major: 7, access: "rw" }],
];

/** Seeded, so that a failure repeats. */
function randomLists(count: number): LinuxDeviceCgroup[][] {
  const lists: LinuxDeviceCgroup[][] = [];
  let seed = 12345;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return (seed >>> 16) % n; // the low bits of this generator cycle quickly
  };
  const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
  for (let i = 0; i < count; i++) {
    const rules: LinuxDeviceCgroup[] = [];
    const n = rand(8);
    for (let j = 0; j < n; j++) {
      const rule: LinuxDeviceCgroup = { allow: rand(2) === 0, type: pick(["a", "b", "c", "c", "c"] as const), access: pick(["r", "w", "m", "rw", "rm", "wm", "rwm", "rwm"]) };
      const major = pick([-1, 1, 5, 136, 4095, -1]);
      const minor = pick([-1, 3, 5, 7, 0, -1]);
      if (major !== -1 || rand(2)) rule.major = major;
      if (minor !== -1 || rand(2)) rule.minor = minor;
      if (rule.type === "c" && rand(5) === 0) delete rule.type;
      rules.push(rule);
    }
    lists.push(rules);
  }
  return lists;
}

describe("compileDeviceFilter (pure)", () => {
  test("deny all + allow c 1:3 rwm: the exact instructions", () => {
    const prog = decode(compileDeviceFilter([deny, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }]));
    const show = prog.map((x) => `${x.op.toString(16)} r${x.dst} r${x.src} ${x.off} ${x.imm}`);
    expect(show).toEqual([
      "61 r2 r1 0 0", // r2 = ctx->access_type
      "54 r2 r0 0 65535", // & 0xffff: device type
      "61 r3 r1 0 0",
      "74 r3 r0 0 16", // access bits
      "61 r4 r1 4 0", // major
      "61 r5 r1 8 0", // minor
      "bc r1 r2 0 0", // r1 = (type ^ char) | (major ^ 1) | (minor ^ 3)
      "a4 r1 r0 0 2",
      "bc r0 r4 0 0",
      "a4 r0 r0 0 1",
      "4c r1 r0 0 0",
      "bc r0 r5 0 0",
      "a4 r0 r0 0 3",
      "4c r1 r0 0 0",
      "55 r1 r0 2 0", // no match: next rule
      "b4 r0 r0 0 1", // allow
      "95 r0 r0 0 0",
      "b4 r0 r0 0 0", // default: deny
      "95 r0 r0 0 0",
    ]);
  });

  test("a container's default list agrees with the rules everywhere", () => {
    expect(checkAll(CONTAINER_RULES)).toBe(2 * MAJORS.length * MINORS.length * 7);
  });

  test("hand-picked lists: partial access, wildcards, later denies, allow-all with exceptions", () => {
    for (const rules of HAND_PICKED) expect(checkAll(rules)).toBeGreaterThan(0);
  });

  test("random lists (seeded) agree with the rules", () => {
    for (const rules of randomLists(150)) checkAll(rules);
  });

  test("rules that cannot change a verdict are left out", () => {
    const f = reduceDeviceRules([{ allow: true, type: "c", major: 9, access: "r" }, deny, { allow: false, type: "c", major: 1, access: "r" }, { allow: true, type: "c", major: 1, minor: 3, access: "rw" }, { allow: true, type: "b", access: "" }]);
    expect(f).toEqual({ defaultAllow: false, rules: [{ allow: true, type: BPF_DEVCG.DEV_CHAR, major: 1, minor: 3, access: BPF_DEVCG.ACC_READ | BPF_DEVCG.ACC_WRITE }] });
    // bounded size: 6 to load the context, at most 14 per rule, 2 for the default
    expect(decode(compileDeviceFilter(CONTAINER_RULES)).length).toBeLessThanOrEqual(6 + 14 * CONTAINER_RULES.length + 2);
  });

  test("bad rules are refused with the rule's JSON pointer", () => {
    const bad = (rules: LinuxDeviceCgroup[]) => {
      try {
        compileDeviceFilter(rules);
      } catch (e) {
        expect(e).toBeInstanceOf(CgroupError);
        expect((e as CgroupError).code).toBe("EINVAL");
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(bad([deny, { allow: true, type: "c", access: "rwx" }])).toContain("/linux/resources/devices/1/access");
    expect(bad([{ allow: true, type: "p" as "c", access: "r" }])).toContain("/linux/resources/devices/0/type");
    expect(bad([{ allow: true, type: "c", major: -2, access: "r" }])).toContain("/linux/resources/devices/0/major");
    expect(bad([{ allow: true, type: "c", minor: 2 ** 32, access: "r" }])).toContain("/linux/resources/devices/0/minor");
  });
});

// ---- on the kernel ----

const UNIFIED = "/sys/fs/cgroup/unified";
const root = process.getuid?.() === 0;
const made: string[] = [];
let seq = 0;

function newCgroup(): string {
  const dir = join(UNIFIED, `tsrun-devtest-${process.pid}-${seq++}`);
  mkdirSync(dir);
  made.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of made.reverse()) {
    for (let i = 0; ; i++) {
      try {
        rmdirSync(dir);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") break;
        if (i > 100) throw e; // a probe still exiting keeps it busy for a moment
        Bun.sleepSync(10);
      }
    }
  }
});

/** Runs `script` in /bin/sh after moving the shell into `cgroup`. */
function inCgroup(cgroup: string, script: string): { code: number; out: string; err: string } {
  const p = Bun.spawnSync(["/bin/sh", "-c", 'echo $$ > "$1/cgroup.procs" || exit 99; eval "$2"', "sh", cgroup, script], { stdout: "pipe", stderr: "pipe" });
  const res = { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
  if (res.code === 99) throw new Error(`could not join ${cgroup}: ${res.err}`);
  return res;
}

const EPERM_TEXT = "Operation not permitted";

function expectOk(cgroup: string, script: string): string {
  const r = inCgroup(cgroup, script);
  if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.err}`);
  return r.out;
}

function expectEperm(cgroup: string, script: string): void {
  const r = inCgroup(cgroup, script);
  expect(r.code).not.toBe(0);
  expect(r.err).toContain(EPERM_TEXT);
}

// Root-only, and failing (not skipped) without root: a test that cannot run is a failure to see.
test("requirements: root for the kernel tests", () => {
  expect(root).toBe(true);
});

describe("applyDevicesV2 on the kernel", () => {
  const nullZero: LinuxDeviceCgroup[] = [deny, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 5, access: "r" }];

  test("enforces deny all, c 1:3 rwm, c 1:5 r", () => {
    const cg = newCgroup();
    const applied = applyDevicesV2(cg, nullZero);
    expect(applied.replaced).toEqual([]);
    expect(attachedDeviceFilters(cg)).toHaveLength(1);
    const tmp = tempDir("tsrun-devices-");

    expect(expectOk(cg, "cat /dev/null; echo hi > /dev/null; echo done")).toBe("done\n");
    expect(expectOk(cg, "head -c 4 /dev/zero | od -An -tx1").trim()).toBe("00 00 00 00");
    expectEperm(cg, "echo x > /dev/zero");
    expectEperm(cg, "cat /dev/full");
    expectEperm(cg, "echo x > /dev/full");
    // 'm': 1:3 has it, 1:5 has not
    expectOk(cg, `mknod "${tmp}/null" c 1 3`);
    expect(statSync(join(tmp, "null")).rdev).toBe((1 << 8) | 3);
    expectEperm(cg, `mknod "${tmp}/zero" c 1 5`);
    expect(existsSync(join(tmp, "zero"))).toBe(false);
    // outside the cgroup nothing changed
    closeSync(openSync("/dev/full", "r"));
  });

  test("an update replaces the program: exactly one attached, the new rules in force", () => {
    const cg = newCgroup();
    applyDevicesV2(cg, nullZero);
    const [first] = attachedDeviceFilters(cg);
    expectEperm(cg, "cat /dev/full");

    const tmp = tempDir("tsrun-devices-");
    const second = applyDevicesV2(cg, [deny, { allow: true, type: "c", major: 1, minor: 7, access: "r" }, { allow: true, type: "c", major: 1, minor: 3, access: "rw" }]);
    expect(second.replaced).toEqual([first!]);
    const now = attachedDeviceFilters(cg);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(first);
    expectOk(cg, "head -c 1 /dev/full > /dev/null");
    expectEperm(cg, "head -c 1 /dev/zero");
    expectEperm(cg, `mknod "${tmp}/null" c 1 3`); // rw, no m any more

    applyDevicesV2(cg, [{ allow: true, access: "rwm" }]);
    expect(attachedDeviceFilters(cg)).toHaveLength(1);
    expectOk(cg, "head -c 1 /dev/zero > /dev/null && head -c 1 /dev/full > /dev/null");
  });

  test("several programs attached before: all of them are taken off", () => {
    const cg = newCgroup();
    applyDevicesV2(cg, nullZero);
    // A second program attached behind our back, as another manager could.
    const extra = loadDeviceFilter(compileDeviceFilter([{ allow: true, access: "rwm" }]), cg);
    const dirFd = openSync(cg, "r");
    const attr = new Uint8Array(128);
    const v = new DataView(attr.buffer);
    v.setUint32(0, dirFd, true);
    v.setUint32(4, extra, true);
    v.setUint32(8, 6 /* BPF_CGROUP_DEVICE */, true);
    v.setUint32(12, 2 /* BPF_F_ALLOW_MULTI */, true);
    bpf(8 /* BPF_PROG_ATTACH */, attr, "test attach");
    closeSync(dirFd);
    closeSync(extra);
    const before = attachedDeviceFilters(cg);
    expect(before).toHaveLength(2);
    // every attached program must allow: the allow-all one does not open /dev/full alone
    expectEperm(cg, "cat /dev/full");

    const applied = applyDevicesV2(cg, [deny, { allow: true, type: "c", major: 1, minor: 7, access: "r" }]);
    expect(applied.replaced.sort()).toEqual(before.sort());
    const after = attachedDeviceFilters(cg);
    expect(after).toHaveLength(1);
    expect(before).not.toContain(after[0]!);
    expectOk(cg, "head -c 1 /dev/full | od -An -tx1");
  });

  test("load + attach time (the create path)", () => {
    const times: number[] = [];
    for (let i = 0; i < 15; i++) {
      const cg = newCgroup();
      const t0 = performance.now();
      applyDevicesV2(cg, CONTAINER_RULES);
      times.push(performance.now() - t0);
      rmdirSync(cg);
      made.pop();
    }
    const updates: number[] = [];
    const cg = newCgroup();
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      applyDevicesV2(cg, CONTAINER_RULES);
      updates.push(performance.now() - t0);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    console.log(`device filter: load+attach median ${median(times).toFixed(3)} ms (first ${times[0]!.toFixed(3)} ms), replace median ${median(updates).toFixed(3)} ms, ${decode(compileDeviceFilter(CONTAINER_RULES)).length} instructions`);
    expect(median(times)).toBeLessThan(50);
  });

  test("the verifier accepts every list, up to thousands of rules", () => {
    const many: LinuxDeviceCgroup[] = [deny];
    for (let i = 0; i < 2000; i++) many.push({ allow: i % 3 !== 0, type: i % 2 ? "c" : "b", major: i % 300, minor: i, access: (["r", "rw", "m", "rwm"] as const)[i % 4] });
    for (const rules of [CONTAINER_RULES, ...HAND_PICKED, ...randomLists(60), many]) closeSync(loadDeviceFilter(compileDeviceFilter(rules), "(verifier check)"));
    const t0 = performance.now();
    closeSync(loadDeviceFilter(compileDeviceFilter(many), "(verifier check)"));
    console.log(`device filter: ${many.length} rules, ${decode(compileDeviceFilter(many)).length} instructions, compile+load ${(performance.now() - t0).toFixed(1)} ms`);
    expect(decode(compileDeviceFilter(many)).length).toBeGreaterThan(4096); // past the unprivileged limit
  });

  test("the verifier's log comes with a refused program", () => {
    const cg = newCgroup();
    // exit without setting r0
    const bad = new Uint8Array([0x95, 0, 0, 0, 0, 0, 0, 0]);
    let msg = "";
    try {
      loadDeviceFilter(bad, cg);
    } catch (e) {
      expect(e).toBeInstanceOf(CgroupError);
      msg = (e as Error).message;
    }
    expect(msg).toContain(cg);
    expect(msg).toContain("EACCES");
    expect(msg).toContain("verifier log");
    expect(msg).toContain("R0 !read_ok");
  });

  test("failures name the cgroup path and the errno", () => {
    const missing = join(UNIFIED, `tsrun-devtest-missing-${process.pid}`);
    expect(() => applyDevicesV2(missing, nullZero)).toThrow(new RegExp(`${missing}: ENOENT`));
    // a v1 hierarchy has no BPF attach points
    const v1 = readdirSync("/sys/fs/cgroup").map((d) => join("/sys/fs/cgroup", d)).find((d) => d !== UNIFIED && existsSync(join(d, "cgroup.procs")));
    expect(v1).toBeDefined();
    expect(() => applyDevicesV2(v1!, nullZero)).toThrow(new RegExp(`${v1}: EBADF: .*cgroup2`));
  });
});
