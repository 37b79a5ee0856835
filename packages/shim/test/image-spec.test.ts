// Spec from an image config (spec.ts), User resolution in an untrusted rootfs (passwd.ts) and
// Docker's default seccomp profile (seccomp-default.ts): pure unit tests, no root needed. The
// seccomp profile is compiled with the runtime's compiler and its BPF run in a small interpreter.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatProblem, validateConfig, type ImageConfig } from "@tsrun/ocispec";
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, BPF, compileSeccomp, decode, syscallNames, SYSCALLS_X86_64, SYSCALLS_X86 } from "@tsrun/runtime/seccomp";
import { parseGroup, parsePasswd, readRootfsFile, resolveInRoot, resolveUser, resolveUserFrom, UserResolutionError } from "../src/image/passwd.ts";
import { defaultSeccompProfile } from "../src/image/seccomp-default.ts";
import { DEFAULT_CAPABILITIES, DEFAULT_PATH, ImageSpecError, mergeEnv, processArgs, specFromImage, STOP_SIGNAL_ANNOTATION } from "../src/image/spec.ts";

const tmp = mkdtempSync(join(tmpdir(), "tsrun-image-spec-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "# a comment",
  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
  "alice:x:1000:1000:Alice:/home/alice:/bin/sh",
  "bob:x:1001:100::/home/bob:/bin/sh",
  "broken:x:notanumber:0::/:/bin/sh",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  "",
].join("\n");
const GROUP = [
  "root:x:0:",
  "wheel:x:10:root,alice",
  "users:x:100:",
  "staff:x:50:alice,bob",
  "alice:x:1000:alice",
  "audio:x:29:bob",
  "nogroup:x:65534:",
  "",
].join("\n");

/** A rootfs directory with these files under etc/. */
function rootfs(files: { passwd?: string; group?: string } = { passwd: PASSWD, group: GROUP }): string {
  const dir = join(tmp, `rootfs-${seq++}`);
  mkdirSync(join(dir, "etc"), { recursive: true });
  if (files.passwd !== undefined) writeFileSync(join(dir, "etc/passwd"), files.passwd);
  if (files.group !== undefined) writeFileSync(join(dir, "etc/group"), files.group);
  return dir;
}

function image(exec: NonNullable<ImageConfig["config"]>): ImageConfig {
  return { architecture: "amd64", os: "linux", config: exec, rootfs: { type: "layers", diff_ids: [] } };
}

describe("processArgs (Entrypoint, Cmd and the overrides)", () => {
  const exec = { Entrypoint: ["/entry", "-x"], Cmd: ["serve", "--port=80"] };
  test("Entrypoint + Cmd without overrides", () => {
    expect(processArgs(exec)).toEqual(["/entry", "-x", "serve", "--port=80"]);
  });
  test("args replace Cmd and keep Entrypoint", () => {
    expect(processArgs(exec, { args: ["debug"] })).toEqual(["/entry", "-x", "debug"]);
  });
  test("an entrypoint override drops the image's Cmd", () => {
    expect(processArgs(exec, { entrypoint: ["/bin/sh"] })).toEqual(["/bin/sh"]);
  });
  test("entrypoint and args together", () => {
    expect(processArgs(exec, { entrypoint: ["/bin/sh", "-c"], args: ["echo hi"] })).toEqual(["/bin/sh", "-c", "echo hi"]);
  });
  test("an empty entrypoint override clears it: args become the command", () => {
    expect(processArgs(exec, { entrypoint: [], args: ["/bin/true"] })).toEqual(["/bin/true"]);
  });
  test("empty args mean not given", () => {
    expect(processArgs(exec, { args: [] })).toEqual(["/entry", "-x", "serve", "--port=80"]);
  });
  test("null Entrypoint / Cmd", () => {
    expect(processArgs({ Entrypoint: null, Cmd: ["sh"] })).toEqual(["sh"]);
    expect(processArgs({ Entrypoint: ["/init"], Cmd: null })).toEqual(["/init"]);
    expect(processArgs({})).toEqual([]);
  });
  test("no command at all is an error naming the image", () => {
    const dir = rootfs();
    expect(() => specFromImage(image({ Cmd: null }), { rootfsDir: dir, image: "example/none" })).toThrow(/image example\/none: no command specified/);
    expect(() => specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: dir, entrypoint: [] })).toThrow(ImageSpecError);
    expect(() => specFromImage({ ...image({}), config: null }, { rootfsDir: dir })).toThrow(/no command specified/);
  });
});

describe("mergeEnv", () => {
  test("replaces in place, appends new keys, removes bare keys", () => {
    expect(mergeEnv(["A=1", "B=2", "C=3"], ["B=two", "D=4", "C"])).toEqual(["A=1", "B=two", "D=4"]);
  });
  test("a key removed and set again is appended", () => {
    expect(mergeEnv(["A=1", "B=2"], ["A", "A=again"])).toEqual(["B=2", "A=again"]);
  });
  test("values may contain =", () => {
    expect(mergeEnv(["OPTS=a=b"], ["OPTS=c=d"])).toEqual(["OPTS=c=d"]);
  });
});

describe("specFromImage: env, cwd, user, annotations", () => {
  test("the image's env, the user's over it, HOME from passwd", () => {
    const s = specFromImage(image({ Cmd: ["sh"], Env: ["PATH=/opt/bin:/bin", "LANG=C", "DEBUG=0"] }), { rootfsDir: rootfs(), env: ["DEBUG=1", "EXTRA=x", "LANG"], user: "alice" });
    expect(s.process!.env).toEqual(["PATH=/opt/bin:/bin", "DEBUG=1", "EXTRA=x", "HOME=/home/alice"]);
  });
  test("default PATH when the image has none, also when it has other variables", () => {
    expect(specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs() }).process!.env).toEqual([DEFAULT_PATH, "HOME=/root"]);
    expect(specFromImage(image({ Cmd: ["sh"], Env: ["A=1"] }), { rootfsDir: rootfs() }).process!.env).toEqual([DEFAULT_PATH, "A=1", "HOME=/root"]);
  });
  test("HOME and TERM given by the image or user are kept; tty adds TERM=xterm otherwise", () => {
    const s = specFromImage(image({ Cmd: ["sh"], Env: ["HOME=/srv"] }), { rootfsDir: rootfs(), tty: true });
    expect(s.process!.env).toEqual([DEFAULT_PATH, "HOME=/srv", "TERM=xterm"]);
    expect(s.process!.terminal).toBe(true);
    const t = specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs(), tty: true, env: ["TERM=vt100"] });
    expect(t.process!.env!.filter((e) => e.startsWith("TERM="))).toEqual(["TERM=vt100"]);
    expect(specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs() }).process!.terminal).toBe(false);
  });
  test("a malformed image Env entry is an error naming it", () => {
    expect(() => specFromImage(image({ Cmd: ["sh"], Env: ["OK=1", "NOEQUALS"] }), { rootfsDir: rootfs() })).toThrow(/\/config\/Env\/1 "NOEQUALS"/);
  });
  test("cwd: WorkingDir, the override, / by default; relative is refused", () => {
    expect(specFromImage(image({ Cmd: ["sh"], WorkingDir: "/app" }), { rootfsDir: rootfs() }).process!.cwd).toBe("/app");
    expect(specFromImage(image({ Cmd: ["sh"], WorkingDir: "/app" }), { rootfsDir: rootfs(), cwd: "/tmp" }).process!.cwd).toBe("/tmp");
    expect(specFromImage(image({ Cmd: ["sh"], WorkingDir: "" }), { rootfsDir: rootfs() }).process!.cwd).toBe("/");
    expect(() => specFromImage(image({ Cmd: ["sh"], WorkingDir: "app" }), { rootfsDir: rootfs() })).toThrow(/"app" \(\/config\/WorkingDir\) must be an absolute path/);
  });
  test("the user override wins over the image's User", () => {
    const s = specFromImage(image({ Cmd: ["sh"], User: "alice" }), { rootfsDir: rootfs(), user: "bob" });
    expect(s.process!.user).toEqual({ uid: 1001, gid: 100, additionalGids: [100, 50, 29] });
  });
  test("StopSignal becomes an annotation; Labels stay out; user annotations are added", () => {
    const s = specFromImage(image({ Cmd: ["sh"], StopSignal: "SIGQUIT", Labels: { maintainer: "x" } }), { rootfsDir: rootfs(), annotations: { "com.example/a": "b" } });
    expect(s.annotations).toEqual({ [STOP_SIGNAL_ANNOTATION]: "SIGQUIT", "com.example/a": "b" });
    expect(specFromImage(image({ Cmd: ["sh"], Labels: { maintainer: "x" } }), { rootfsDir: rootfs() }).annotations).toBeUndefined();
    expect(() => specFromImage(image({ Cmd: ["sh"], StopSignal: "SIGNOPE" }), { rootfsDir: rootfs() })).toThrow(/\/config\/StopSignal "SIGNOPE" is not a signal/);
  });
  test("a non-linux image is refused", () => {
    expect(() => specFromImage({ ...image({ Cmd: ["cmd.exe"] }), os: "windows" }, { rootfsDir: rootfs(), image: "win" })).toThrow(/image win: is built for "windows"/);
  });
});

describe("specFromImage: containerd's defaults", () => {
  const s = specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs(), id: "web1", hostname: "web1", readonlyRootfs: true });
  test("capabilities: the 14 of containerd and Docker, no ambient", () => {
    expect(DEFAULT_CAPABILITIES.length).toBe(14);
    const caps = s.process!.capabilities!;
    for (const set of [caps.bounding, caps.effective, caps.permitted]) expect([...set!].sort()).toEqual([...DEFAULT_CAPABILITIES].sort());
    expect(caps.ambient).toBeUndefined();
    expect(caps.inheritable).toBeUndefined();
    expect(caps.bounding).not.toContain("CAP_SYS_ADMIN");
  });
  test("mounts, namespaces, masked and readonly paths, rlimits", () => {
    expect(s.mounts!.map((m) => `${m.destination}:${m.type}`)).toEqual(["/proc:proc", "/dev:tmpfs", "/dev/pts:devpts", "/dev/shm:tmpfs", "/dev/mqueue:mqueue", "/sys:sysfs", "/run:tmpfs"]);
    expect(s.mounts!.find((m) => m.destination === "/sys")!.options).toContain("ro");
    expect(s.linux!.namespaces!.map((n) => n.type).sort()).toEqual(["ipc", "mount", "network", "pid", "uts"]);
    expect(s.linux!.maskedPaths).toContain("/sys/devices/virtual/powercap");
    expect(s.linux!.maskedPaths).toContain("/proc/kcore");
    expect(s.linux!.readonlyPaths).toEqual(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]);
    expect(s.process!.rlimits).toEqual([{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
    expect(s.process!.noNewPrivileges).toBe(true);
    expect(s.linux!.resources!.devices).toEqual([{ allow: false, access: "rwm" }]);
  });
  test("id, hostname, root", () => {
    expect(s.linux!.cgroupsPath).toBe("/tsrun/web1");
    expect(s.hostname).toBe("web1");
    expect(s.root).toEqual({ path: "rootfs", readonly: true });
    const bare = specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs(), rootfs: "/abs/rootfs" });
    expect(bare.linux!.cgroupsPath).toBeUndefined();
    expect(bare.hostname).toBeUndefined();
    expect(bare.root).toEqual({ path: "/abs/rootfs", readonly: false });
    expect(() => specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs(), id: "a/b" })).toThrow(/cannot name a cgroup/);
  });
  test("seccomp: Docker's default unless unconfined", () => {
    expect(s.linux!.seccomp!.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(specFromImage(image({ Cmd: ["sh"] }), { rootfsDir: rootfs(), seccomp: "unconfined" }).linux!.seccomp).toBeUndefined();
  });
  test("the spec validates (schema and semantic checks, for create)", () => {
    const bundle = join(tmp, `bundle-${seq++}`);
    const dir = join(bundle, "rootfs");
    mkdirSync(join(dir, "etc"), { recursive: true });
    writeFileSync(join(dir, "etc/passwd"), PASSWD);
    writeFileSync(join(dir, "etc/group"), GROUP);
    const spec = specFromImage(image({ Entrypoint: ["/bin/sh", "-c"], Cmd: ["id"], User: "alice:staff", Env: ["A=1"], WorkingDir: "/tmp", StopSignal: "SIGRTMIN+3" }), {
      rootfsDir: dir,
      id: "c1",
      tty: true,
      hostname: "c1",
    });
    const r = validateConfig(JSON.parse(JSON.stringify(spec)), { bundle, forCreate: true });
    if (!r.ok) throw new Error(r.problems.map((p) => formatProblem(p)).join("\n"));
    expect(r.ok).toBe(true);
  });
});

describe("User resolution", () => {
  const db = { passwd: PASSWD, group: GROUP };
  test("parsers skip comments and lines with non-numeric ids", () => {
    const users = parsePasswd(PASSWD);
    expect(users.map((u) => u.name)).toEqual(["root", "daemon", "alice", "bob", "nobody"]);
    expect(parseGroup(GROUP).find((g) => g.name === "staff")).toEqual({ name: "staff", gid: 50, members: ["alice", "bob"] });
  });
  test('"" is root, with root\'s memberships', () => {
    expect(resolveUserFrom("", db)).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10], home: "/root", name: "root" });
  });
  test("a name: uid, gid and home from passwd, memberships from group (own group not repeated)", () => {
    expect(resolveUserFrom("alice", db)).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 10, 50], home: "/home/alice", name: "alice" });
  });
  test("a known uid is looked up; an unknown uid is allowed with gid 0 and HOME=/", () => {
    expect(resolveUserFrom("1001", db)).toMatchObject({ uid: 1001, gid: 100, additionalGids: [100, 50, 29], home: "/home/bob" });
    expect(resolveUserFrom("4242", db)).toEqual({ uid: 4242, gid: 0, additionalGids: [0], home: "/" });
  });
  test("name:group, uid:gid, name:gid, uid:group", () => {
    expect(resolveUserFrom("alice:staff", db)).toMatchObject({ uid: 1000, gid: 50, additionalGids: [50, 10] });
    expect(resolveUserFrom("4242:4343", db)).toEqual({ uid: 4242, gid: 4343, additionalGids: [4343], home: "/" });
    expect(resolveUserFrom("bob:7", db)).toMatchObject({ uid: 1001, gid: 7, additionalGids: [7, 50, 29] });
    expect(resolveUserFrom("1000:audio", db)).toMatchObject({ uid: 1000, gid: 29, home: "/home/alice" });
  });
  test("a missing name is an error naming the image, the name and the file", () => {
    expect(() => resolveUserFrom("mallory", db, { image: "image example/app", rootfs: "/r" })).toThrow(
      'image example/app: cannot resolve user "mallory": no user named "mallory" in /etc/passwd of the rootfs /r',
    );
    expect(() => resolveUserFrom("alice:nosuch", db)).toThrow(/no group named "nosuch" in \/etc\/group/);
    expect(() => resolveUserFrom("broken", db)).toThrow(UserResolutionError);
  });
  test("without /etc/passwd: names fail, numbers work", () => {
    const none = { passwd: null, group: null };
    expect(() => resolveUserFrom("alice", none)).toThrow(/there is no \/etc\/passwd/);
    expect(resolveUserFrom("1000:1000", none)).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000], home: "/" });
    expect(resolveUserFrom("", none)).toEqual({ uid: 0, gid: 0, additionalGids: [0], home: "/" });
  });
  test("malformed strings and ids out of range", () => {
    expect(() => resolveUserFrom("a:b:c", db)).toThrow(/expected user, uid, user:group or uid:gid/);
    expect(() => resolveUserFrom("alice:", db)).toThrow(/neither part empty/);
    expect(() => resolveUserFrom("2147483648", db)).toThrow(/uid 2147483648 is out of range/);
    expect(() => resolveUserFrom("-1", db)).toThrow(/out of range/);
    expect(() => resolveUserFrom("0:99999999999", db)).toThrow(/gid 99999999999 is out of range/);
  });
  test("resolveUser reads the files of a rootfs directory", () => {
    expect(resolveUser("nobody", rootfs())).toMatchObject({ uid: 65534, gid: 65534, home: "/nonexistent" });
    expect(() => resolveUser("alice", rootfs({}))).toThrow(/there is no \/etc\/passwd of the rootfs/);
  });
});

describe("reading the rootfs's files safely", () => {
  /** A host file an image must never get to read: it would map "evil" to uid 0. */
  const hostSecret = join(tmp, "host-secret");
  writeFileSync(hostSecret, "evil:x:0:0:evil:/root:/bin/sh\n");

  test("an absolute symlink to a host file is resolved inside the rootfs", () => {
    const dir = rootfs({ group: GROUP });
    symlinkSync(hostSecret, join(dir, "etc/passwd"));
    expect(resolveInRoot(dir, "/etc/passwd")).toBeNull();
    expect(readRootfsFile(dir, "/etc/passwd")).toBeNull();
    expect(() => resolveUser("evil", dir)).toThrow(/there is no \/etc\/passwd/);
  });
  test("a relative symlink climbing out stops at the rootfs's /", () => {
    const dir = rootfs({ group: GROUP });
    symlinkSync(`../../../../../../../../..${hostSecret}`, join(dir, "etc/passwd"));
    expect(readRootfsFile(dir, "/etc/passwd")).toBeNull();
    // The same name inside the rootfs is what the link means there.
    mkdirSync(join(dir, hostSecret, ".."), { recursive: true });
    writeFileSync(join(dir, hostSecret), "inside:x:7:7::/in:/bin/sh\n");
    expect(resolveUser("inside", dir)).toMatchObject({ uid: 7, home: "/in" });
    expect(() => resolveUser("evil", dir)).toThrow(/no user named "evil"/);
  });
  test("a symlinked /etc pointing out of the rootfs", () => {
    const hostEtc = join(tmp, `host-etc-${seq++}`);
    mkdirSync(hostEtc);
    writeFileSync(join(hostEtc, "passwd"), "evil:x:0:0::/:/bin/sh\n");
    const dir = join(tmp, `rootfs-${seq++}`);
    mkdirSync(dir);
    symlinkSync(hostEtc, join(dir, "etc"));
    expect(readRootfsFile(dir, "/etc/passwd")).toBeNull();
    // Following the link's path inside the rootfs leads nowhere; ".." above the root stays at it.
    expect(resolveInRoot(dir, "/etc")).toBeNull();
    mkdirSync(join(dir, "real"));
    writeFileSync(join(dir, "real/passwd"), "in:x:5:5::/:/bin/sh\n");
    symlinkSync("../../../..", join(dir, "up"));
    expect(resolveInRoot(dir, "/up/../real/passwd")).toBe(join(realpathSync(dir), "real/passwd"));
  });
  test("symlinks inside the rootfs work", () => {
    const dir = rootfs({ group: GROUP });
    mkdirSync(join(dir, "data"));
    writeFileSync(join(dir, "data/users"), "svc:x:300:300::/srv:/bin/sh\n");
    symlinkSync("/data/users", join(dir, "etc/passwd"));
    expect(resolveUser("svc", dir)).toMatchObject({ uid: 300, gid: 300, home: "/srv" });
  });
  test("a fifo is refused without blocking; a directory too", () => {
    const dir = rootfs({ group: GROUP });
    expect(Bun.spawnSync(["mkfifo", join(dir, "etc/passwd")]).success).toBe(true);
    expect(() => resolveUser("alice", dir)).toThrow(/\/etc\/passwd in the rootfs .* is not a regular file/);
    const d2 = rootfs({ group: GROUP });
    mkdirSync(join(d2, "etc/passwd"));
    expect(() => resolveUser("alice", d2)).toThrow(/not a regular file/);
  });
  test("a symlink loop is an error, not a hang", () => {
    const dir = rootfs({ group: GROUP });
    symlinkSync("/etc/passwd", join(dir, "etc/passwd"));
    expect(() => resolveUser("alice", dir)).toThrow(/too many levels of symbolic links/);
  });
  test("the size is capped", () => {
    const dir = rootfs({ passwd: PASSWD + "x".repeat(5000), group: GROUP });
    expect(() => readRootfsFile(dir, "/etc/passwd", 4096)).toThrow(/more than the 4096 allowed/);
    expect(readRootfsFile(dir, "/etc/group", 4096)).toBe(GROUP);
  });
});

// ---- seccomp ----

const ALLOW = 0x7fff0000;
const KILL_PROCESS = 0x80000000;
const errno = (e: number): number => (0x00050000 | e) >>> 0;
const EPERM = 1;
const ENOSYS = 38;

/** Runs a classic-BPF seccomp program (the opcodes the compiler emits) on one seccomp_data. */
function runFilter(program: Uint8Array, d: { nr: number; arch?: number; args?: number[] }): number {
  const data = new DataView(new ArrayBuffer(64));
  data.setInt32(0, d.nr, true);
  data.setUint32(4, d.arch ?? AUDIT_ARCH_X86_64, true);
  (d.args ?? []).forEach((a, i) => data.setBigUint64(16 + 8 * i, BigInt.asUintN(64, BigInt(a)), true));
  const prog = decode(program);
  let A = 0;
  for (let pc = 0, steps = 0; steps < 100000; steps++) {
    const ins = prog[pc++];
    if (!ins) throw new Error(`ran off the program at ${pc - 1}`);
    const jump = (cond: boolean) => (pc += cond ? ins.jt : ins.jf);
    switch (ins.code) {
      case BPF.LD_W_ABS: A = data.getUint32(ins.k, true); break;
      case BPF.AND: A = (A & ins.k) >>> 0; break;
      case BPF.JA: pc += ins.k; break;
      case BPF.JEQ: jump(A === ins.k); break;
      case BPF.JGT: jump(A > ins.k); break;
      case BPF.JGE: jump(A >= ins.k); break;
      case BPF.JSET: jump((A & ins.k) !== 0); break;
      case BPF.RET: return ins.k >>> 0;
      default: throw new Error(`unexpected opcode ${ins.code}`);
    }
  }
  throw new Error("no return");
}

describe("Docker's default seccomp profile", () => {
  const caps = [...DEFAULT_CAPABILITIES];
  const names = (p: ReturnType<typeof defaultSeccompProfile>, action = "SCMP_ACT_ALLOW") =>
    new Set(p.syscalls!.filter((s) => s.action === action && !s.args).flatMap((s) => s.names));

  test("default caps on amd64: chroot yes; mount, unshare, ptrace-by-cap no; clone only without namespace flags", () => {
    const p = defaultSeccompProfile({ capabilities: caps, arch: "amd64", kernel: "6.1.0-18-amd64" });
    expect(p.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(p.defaultErrnoRet).toBe(EPERM);
    expect(p.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    const allowed = names(p);
    for (const n of ["read", "execve", "chroot", "arch_prctl", "modify_ldt", "ptrace"]) expect(allowed).toContain(n);
    for (const n of ["mount", "unshare", "setns", "bpf", "clone", "reboot", "init_module", "kexec_load", "keyctl", "userfaultfd", "set_tls"]) expect(allowed).not.toContain(n);
    const clone = p.syscalls!.filter((s) => s.names.includes("clone"));
    expect(clone).toEqual([{ names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] }]);
    expect(p.syscalls!.find((s) => s.names.includes("clone3"))).toEqual({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS });
  });
  test("CAP_SYS_ADMIN opens the namespace calls and drops the clone restrictions", () => {
    const p = defaultSeccompProfile({ capabilities: [...caps, "CAP_SYS_ADMIN"], arch: "amd64", kernel: "6.1" });
    const allowed = names(p);
    for (const n of ["mount", "unshare", "setns", "clone", "clone3"]) expect(allowed).toContain(n);
    expect(p.syscalls!.some((s) => s.action === "SCMP_ACT_ERRNO")).toBe(false);
    expect(p.syscalls!.some((s) => s.names.includes("clone") && s.args)).toBe(false);
  });
  test("arch and kernel gates", () => {
    const arm = defaultSeccompProfile({ capabilities: caps, arch: "arm64", kernel: "6.1" });
    expect(arm.architectures).toEqual(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    expect(names(arm)).toContain("set_tls");
    expect(names(arm)).not.toContain("arch_prctl");
    const old = defaultSeccompProfile({ capabilities: caps, arch: "x64", kernel: "4.4.0-1-generic" });
    expect(names(old)).not.toContain("ptrace");
    expect(names(defaultSeccompProfile({ capabilities: [...caps, "CAP_SYS_PTRACE"], arch: "x64", kernel: "4.4" }))).toContain("ptrace");
    expect(names(defaultSeccompProfile({ capabilities: caps, arch: "x64", kernel: "4.8.0" }))).toContain("ptrace");
  });

  test("compiles for x86_64 and behaves like Docker's filter", () => {
    const p = defaultSeccompProfile({ capabilities: caps, arch: "amd64", kernel: "6.1" });
    const c = compileSeccomp(p, "x86_64");
    expect(c.ignoredArches).toEqual([]);
    // Names no x86 ABI has (or newer than the runtime's syscall tables) are skipped, never core ones.
    const known = new Set([...syscallNames("x86_64"), ...syscallNames("x86"), ...syscallNames("x32")]);
    for (const n of c.skipped) expect(known.has(n)).toBe(false);
    for (const n of ["read", "write", "openat", "execve", "clone", "socket", "personality", "futex", "rseq", "close_range", "openat2"]) expect(c.skipped).not.toContain(n);

    const nr = (n: string) => SYSCALLS_X86_64[n]!;
    const run = (n: string, args: number[] = []) => runFilter(c.program, { nr: nr(n), args });
    expect(run("read")).toBe(ALLOW);
    expect(run("execve")).toBe(ALLOW);
    expect(run("mount")).toBe(errno(EPERM));
    expect(run("unshare")).toBe(errno(EPERM));
    expect(run("kexec_load")).toBe(errno(EPERM));
    expect(run("clone", [0x11 /* SIGCHLD */ | 0x01000000 /* CHILD_SETTID */])).toBe(ALLOW);
    expect(run("clone", [0x10000000 /* NEWUSER */ | 0x11])).toBe(errno(EPERM));
    expect(run("clone3")).toBe(errno(ENOSYS));
    expect(run("personality", [0])).toBe(ALLOW);
    expect(run("personality", [0xffffffff])).toBe(ALLOW);
    expect(run("personality", [0x0400000 /* READ_IMPLIES_EXEC */])).toBe(errno(EPERM));
    expect(run("socket", [2 /* AF_INET */])).toBe(ALLOW);
    expect(run("socket", [39 /* AF_NFC */])).toBe(ALLOW);
    expect(run("socket", [38 /* AF_ALG */])).toBe(errno(EPERM));
    expect(run("socket", [40 /* AF_VSOCK */])).toBe(errno(EPERM));
    expect(run("chroot")).toBe(ALLOW);
    // The 32-bit ABI is covered too, and an arch not listed is killed.
    expect(runFilter(c.program, { nr: SYSCALLS_X86["read"]!, arch: AUDIT_ARCH_I386 })).toBe(ALLOW);
    expect(runFilter(c.program, { nr: SYSCALLS_X86["mount"]!, arch: AUDIT_ARCH_I386 })).toBe(errno(EPERM));
    expect(runFilter(c.program, { nr: 0, arch: 0xc00000b7 /* AARCH64 */ })).toBe(KILL_PROCESS);
  });
});
