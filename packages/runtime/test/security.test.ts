// Issue 13's holes in the runtime, each written as the attack: the symlink in the image, the
// other user on the host, the hostile rootfs. Each failed before its fix. Nothing on the host is
// changed by the tests themselves: a sysctl write aimed at the host carries the value the host
// already has, and every symlink points at a file the test owns.
import { describe, expect, test } from "bun:test";
import { chmodSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../src/io.ts";
import { leftovers, testEnv } from "./containers.ts";
import { TSRUN, tsrun } from "./helpers.ts";

const env = testEnv();
const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
const mode = (p: string) => statSync(p).mode & 0o7777;

describe("mounts cannot land inside /proc (CVE-2019-19921 class)", () => {
  test("a volume at /data, with /data -> /proc/sys/net in the image, is refused and leaves nothing", () => {
    const volume = join(env.dir, "volume");
    mkdirSync(join(volume, "ipv4"), { recursive: true });
    // The second half of the attack: inside the volume, a link that would steer the sysctl write.
    symlinkSync("/proc/sys/kernel/printk_ratelimit_burst", join(volume, "ipv4/ip_forward"));
    const id = "procvol";
    const b = env.bundle(id, (s) => {
      s.mounts.push({ destination: "/data", type: "bind", source: volume, options: ["rbind"] });
      s.linux.sysctl = { "net.ipv4.ip_forward": readFileSync("/proc/sys/kernel/printk_ratelimit_burst", "utf8").trim() };
    });
    symlinkSync("/proc/sys/net", join(b, "rootfs/data"));
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("/data resolves to a path inside /proc: mounting there is refused");
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("a destination written inside /proc is refused by the config's pointer; lxcfs's files are allowed", () => {
    const id = "procdst";
    const b = env.bundle(id, (s) => s.mounts.push({ destination: "/proc/sys/net", type: "tmpfs", source: "tmpfs" }));
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("/mounts/7/destination: /proc/sys/net is inside /proc");
    expect(leftovers(env, id, b)).toEqual([]);

    const fake = join(env.dir, "cpuinfo");
    writeFileSync(fake, "processor : lxcfs-says-hello\n");
    const ok = env.bundle("lxcfs", (s) => {
      s.mounts.push({ destination: "/proc/cpuinfo", type: "bind", source: fake, options: ["bind", "ro"] });
      s.process.args = ["cat", "/proc/cpuinfo"];
    });
    const r2 = env.tsrun(["run", "--bundle", ok, "lxcfs"]);
    expect(r2.stderr).toBe("");
    expect(r2.stdout).toBe("processor : lxcfs-says-hello\n");
  });
});

describe("sysctls no namespace isolates are refused (item 3)", () => {
  const host = readFileSync("/proc/sys/kernel/printk_ratelimit_burst", "utf8").trim();
  for (const key of ["kernel.printk_ratelimit_burst", "kernel/printk_ratelimit_burst", "net/../kernel/printk_ratelimit_burst"])
    test(`${key} (the host's own value) is refused with the key named, and leaves nothing`, () => {
      const id = `sysctl${key.length}${key.includes("/") ? "s" : "d"}`;
      const b = env.bundle(id, (s) => (s.linux.sysctl = { [key]: host }));
      const r = env.tsrun(["run", "--bundle", b, id]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`/linux/sysctl/${key.replace(/\//g, "~1")}`);
      expect(leftovers(env, id, b)).toEqual([]);
    });

  test("a namespaced one is refused when the namespace joined by path is the host's", () => {
    const id = "sysctlhostns";
    const b = env.bundle(id, (s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: any) => (n.type === "network" ? { type: "network", path: `/proc/${process.pid}/ns/net` } : n));
      s.linux.sysctl = { "net.ipv4.ip_forward": readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() };
    });
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the network namespace joined at /proc/${process.pid}/ns/net is the host's`);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("a namespaced one is written in the container's namespace", () => {
    const b = env.bundle("sysctlnet", (s) => {
      s.linux.sysctl = { "net/ipv4/ip_default_ttl": "42", "kernel.shm_rmid_forced": "1" };
      s.process.args = ["cat", "/proc/sys/net/ipv4/ip_default_ttl", "/proc/sys/kernel/shm_rmid_forced"];
    });
    const r = env.tsrun(["run", "--bundle", b, "sysctlnet"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("42\n1\n");
  });
});

describe("the state root is root's alone (item 4)", () => {
  test("another user cannot open a created container's exec fifo; the root, dirs and fifo are closed", () => {
    const root = join(env.dir, "state4");
    // A root left by an older tsrun, as it made them: closed at the next create.
    mkdirSync(root, { mode: 0o711 });
    chmodSync(root, 0o711);
    const run = (args: string[]) => tsrun(["--root", root, ...args]);
    const b = env.bundle("fifo", (s) => (s.process.args = ["sleep", "30"]));
    expect(run(["create", "--bundle", b, "fifo"]).code).toBe(0);
    try {
      const fifo = join(root, "fifo", "exec.fifo");
      expect(mode(root)).toBe(0o700);
      expect(mode(join(root, "fifo"))).toBe(0o700);
      expect(mode(fifo)).toBe(0o600);
      // The attack: uid 65534 opens the fifo for writing (O_RDWR does not block), which once
      // let it hold `start` or forge what it reads.
      const attack = Bun.spawnSync([...NOBODY, "sh", "-c", `exec 3<>${fifo} && echo opened`], { stdout: "pipe", stderr: "pipe" });
      expect(attack.stdout.toString()).toBe("");
      expect(attack.stderr.toString()).toContain("Permission denied");
      expect(run(["start", "fifo"]).code).toBe(0);
    } finally {
      run(["delete", "--force", "fifo"]);
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("the fifo is the container user's: a non-root user, and root of a user namespace, still start", () => {
    const user = env.bundle("fifouser", (s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.args = ["id", "-u"];
    });
    const r = env.tsrun(["run", "--bundle", user, "fifouser"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1000\n");
    const userns = env.bundle("fifouserns", (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 200000, size: 65536 }];
      s.process.user = { uid: 7, gid: 7 };
      s.process.args = ["id", "-u"];
    });
    const r2 = env.tsrun(["run", "--bundle", userns, "fifouserns"]);
    expect(r2.stderr).toBe("");
    expect(r2.stdout).toBe("7\n");
  });
});

describe("--pid-file does not follow symlinks (item 7)", () => {
  test("a link planted at the old temporary name, and at the pid file itself, is not written through", () => {
    const dir = join(env.dir, "pids");
    mkdirSync(dir, { mode: 0o1777 });
    chmodSync(dir, 0o1777);
    const victim = join(env.dir, "victim");
    writeFileSync(victim, "root's file\n");
    const pidFile = join(dir, "pid");
    // What tsrun used to write through: PATH.<pid>.tmp (this process's pid: the write is ours).
    symlinkSync(victim, `${pidFile}.${process.pid}.tmp`);
    writeFileAtomic(pidFile, "1234", 0o644);
    expect(readFileSync(victim, "utf8")).toBe("root's file\n");
    expect(readFileSync(pidFile, "utf8")).toBe("1234");

    // The pid file itself a link to root's file: replaced, not followed.
    rmSync(pidFile);
    symlinkSync(victim, pidFile);
    const b = env.bundle("pidfile", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--pid-file", pidFile, "--bundle", b, "pidfile"]).code).toBe(0);
    expect(env.tsrun(["delete", "--force", "pidfile"]).code).toBe(0);
    expect(readFileSync(victim, "utf8")).toBe("root's file\n");
    expect(lstatSync(pidFile).isFile()).toBe(true);
    expect(readFileSync(pidFile, "utf8")).toMatch(/^\d+$/);
  });
});

describe("a rootfs that brings its own /dev", () => {
  // The image's /dev is used as it is: no tmpfs, so its nodes and links are the image's.
  const ownDev = (s: any) => (s.mounts = s.mounts.filter((m: any) => m.destination !== "/dev" && !m.destination.startsWith("/dev/")));

  test("masked paths: a /dev/null that links to /proc/timer_list unmasks nothing (CVE-2025-31133 class)", () => {
    const id = "nullink";
    const b = env.bundle(id, (s) => {
      ownDev(s);
      s.process.args = ["cat", "/proc/timer_list"];
    });
    mkdirSync(join(b, "rootfs/dev"), { recursive: true });
    symlinkSync("/proc/timer_list", join(b, "rootfs/dev/null"));
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/maskPath \/proc\/\S+: the container's \/dev\/null is not the null device \(char 1:3\)/);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("masked paths: the image's real null device masks", () => {
    const b = env.bundle("nullreal", (s) => {
      ownDev(s);
      // Unmasked, timer_list has content. Masked, it reads empty, or cannot be opened at all
      // when the bundle is on a nodev filesystem (a nodev /tmp): the node then opens nothing.
      s.process.args = ["sh", "-c", "grep -c ' /proc/timer_list ' /proc/self/mountinfo; if n=$(exec 2>&1; wc -c < /proc/timer_list); then echo $n; else echo unreadable; fi"];
    });
    mkdirSync(join(b, "rootfs/dev"), { recursive: true });
    expect(Bun.spawnSync(["mknod", "-m", "666", join(b, "rootfs/dev/null"), "c", "1", "3"]).exitCode).toBe(0);
    const r = env.tsrun(["run", "--bundle", b, "nullreal"]);
    expect(r.stderr).toBe("");
    expect(["1\n0\n", "1\nunreadable\n"]).toContain(r.stdout);
  });

  test("a /dev/console that is a symlink does not move the terminal's mount (CVE-2025-52565 class)", () => {
    const id = "consolelink";
    const b = env.bundle(id, (s) => {
      ownDev(s);
      s.mounts.push({ destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] });
      s.process.terminal = true;
      s.process.args = ["sh", "-c", "grep console-target /proc/self/mountinfo || echo not-mounted"];
    });
    mkdirSync(join(b, "rootfs/dev"), { recursive: true });
    symlinkSync("pts/ptmx", join(b, "rootfs/dev/ptmx"));
    expect(Bun.spawnSync(["mknod", "-m", "666", join(b, "rootfs/dev/null"), "c", "1", "3"]).exitCode).toBe(0);
    writeFileSync(join(b, "rootfs/etc/console-target"), "the image's file\n");
    symlinkSync("/etc/console-target", join(b, "rootfs/dev/console"));
    const p = Bun.spawnSync(["script", "-qec", `${TSRUN} --root ${env.root} run --bundle ${b} ${id}`, "/dev/null"], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const out = p.stdout.toString() + p.stderr.toString();
    expect(out).toContain("/dev/console is not a file or a character device");
    expect(out).not.toContain("console-target");
    expect(p.exitCode).not.toBe(0);
    expect(leftovers(env, id, b)).toEqual([]);
  });
});
