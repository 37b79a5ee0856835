// What a container sees from inside: namespaces, mounts, devices, process set-up, hooks.
// Each test runs a busybox shell script in a real container and reads what it printed.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";

const env = testEnv();
let n = 0;

/** Runs `script` in a fresh container made from the default spec plus `patch`; returns stdout. */
function inside(script: string, patch: (s: any) => void = () => {}): { out: string; err: string; code: number; bundle: string } {
  const id = `feat${n++}`;
  const bundle = env.bundle(id, (s) => {
    s.process.args = ["sh", "-c", script];
    patch(s);
  });
  const r = env.tsrun(["run", "--bundle", bundle, id]);
  expect(leftovers(env, id, bundle)).toEqual([]);
  return { out: r.stdout, err: r.stderr, code: r.code, bundle };
}

describe("namespaces", () => {
  test("the program is pid 1 of its own pid namespace, with its own hostname, domainname, ipc, net", () => {
    const r = inside("echo $$; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net | tr '\\n' ' '; readlink /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/mnt /proc/self/ns/pid", (s) => (s.domainname = "example.org"));
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toBe("1");
    expect(lines[1]).toBe("tsrun");
    expect(lines[2]).toBe("example.org");
    expect(lines[3]!.trim()).toBe("lo");
    const { readlinkSync } = require("node:fs");
    for (const [i, ns] of ["net", "ipc", "uts", "mnt", "pid"].entries()) expect(lines[4 + i]).not.toBe(readlinkSync(`/proc/self/ns/${ns}`));
  });

  test("a namespace given by path is joined", async () => {
    const holder = Bun.spawn(["unshare", "--net", "sleep", "30"]);
    try {
      let ns = "";
      for (let i = 0; i < 100 && (ns === "" || ns === require("node:fs").readlinkSync("/proc/self/ns/net")); i++) {
        await Bun.sleep(5);
        ns = require("node:fs").readlinkSync(`/proc/${holder.pid}/ns/net`);
      }
      const r = inside("readlink /proc/self/ns/net", (s) => {
        s.linux.namespaces = s.linux.namespaces.filter((x: any) => x.type !== "network");
        s.linux.namespaces.push({ type: "network", path: `/proc/${holder.pid}/ns/net` });
      });
      expect(r.out.trim()).toBe(ns);
    } finally {
      holder.kill(9);
    }
  });

  test("user namespace with mappings: root inside is an unprivileged uid outside", () => {
    const r = inside("id -u; cat /proc/self/uid_map /proc/self/gid_map", (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.root.readonly = false;
      s.mounts = s.mounts.filter((m: any) => m.type !== "cgroup" && m.type !== "sysfs");
      Bun.spawnSync(["chown", "-R", "100000:100000", join(env.dir, `feat${n - 1}`, "rootfs")]);
    });
    expect(r.err).toBe("");
    const lines = r.out.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines).toEqual(["0", "0 100000 65536", "0 100000 65536"]);
  });

  test("a mount namespace joined by path is where the container's mounts go", async () => {
    const holder = Bun.spawn(["unshare", "--mount", "--propagation", "private", "sleep", "30"]);
    try {
      const fs = require("node:fs");
      for (let i = 0; i < 100 && fs.readlinkSync(`/proc/${holder.pid}/ns/mnt`) === fs.readlinkSync("/proc/self/ns/mnt"); i++) await Bun.sleep(5);
      const ns = fs.readlinkSync(`/proc/${holder.pid}/ns/mnt`);
      const r = inside("readlink /proc/self/ns/mnt", (s) => {
        s.linux.namespaces = s.linux.namespaces.filter((x: any) => x.type !== "mount");
        s.linux.namespaces.push({ type: "mount", path: `/proc/${holder.pid}/ns/mnt` });
      });
      expect(r.err).toBe("");
      expect(r.out.trim()).toBe(ns);
    } finally {
      holder.kill(9);
    }
  });

  test("no mount namespace at all is refused (the mounts would land on the host)", () => {
    const r = inside("true", (s) => (s.linux.namespaces = s.linux.namespaces.filter((x: any) => x.type !== "mount")));
    expect(r.code).toBe(1);
    expect(r.err).toContain("mount namespace");
  });

  test("rootfsPropagation shared, rshared, slave, private", () => {
    for (const p of ["shared", "rshared", "slave", "private"]) {
      const r = inside("awk '$5 == \"/\"' /proc/self/mountinfo", (s) => (s.linux.rootfsPropagation = p));
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      if (p.includes("shared")) expect(r.out).toMatch(/ shared:\d+ /);
      else expect(r.out).not.toMatch(/ shared:\d+ /);
    }
  });

  test("time namespace offsets", () => {
    const r = inside("cut -d. -f1 /proc/uptime", (s) => {
      s.linux.namespaces.push({ type: "time" });
      s.linux.timeOffsets = { boottime: { secs: 86400 * 365, nanosecs: 0 } };
    });
    expect(Number(r.out.trim())).toBeGreaterThan(86400 * 365);
  });
});

describe("root filesystem", () => {
  test("mounts, masked and read-only paths, read-only root, /dev", () => {
    const r = inside(
      [
        "grep -c ' /proc proc ' /proc/self/mounts",
        "cat /etc/group | wc -c",
        "stat -c %t,%T /etc/group",
        "ls -A /root | wc -l",
        "(echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo writable || echo ro-sys",
        "touch /x 2>/dev/null && echo writable || echo ro-root",
        "echo $(ls /dev)",
        "stat -c %t,%T /dev/null",
        "readlink /dev/fd",
        "readlink /dev/ptmx",
        "ls /sys/fs/cgroup | grep -c memory",
      ].join("; "),
      (s) => {
        s.linux.maskedPaths.push("/etc/group", "/root");
        Bun.spawnSync(["touch", join(env.dir, `feat${n - 1}`, "rootfs/root/secret")]);
      },
    );
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toBe("1");
    expect(lines[1]).toBe("0");
    expect(lines[2]).toBe("1,3"); // /dev/null bound over it
    expect(lines[3]).toBe("0"); // an empty tmpfs over it
    expect(lines[4]).toBe("ro-sys");
    expect(lines[5]).toBe("ro-root");
    for (const d of ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr", "ptmx"]) expect(lines[6]!.split(" ")).toContain(d);
    expect(lines[7]).toBe("1,3");
    expect(lines.slice(8, 10)).toEqual(["/proc/self/fd", "pts/ptmx"]);
    expect(Number(lines[10])).toBeGreaterThanOrEqual(1);
  });

  test("bind mounts (file and directory, ro and rw), tmpfs options, linux.devices, --no-pivot", () => {
    const hostDir = join(env.dir, "shared");
    require("node:fs").mkdirSync(hostDir);
    require("node:fs").writeFileSync(join(hostDir, "f.txt"), "from host\n");
    const r = inside(
      "cat /data/f.txt; echo new > /rw/out.txt; touch /data/x 2>/dev/null || echo ro-bind; cat /file.txt; grep ' /scratch ' /proc/self/mounts | grep -o 'size=[0-9]*k'; stat -c '%F %t,%T %a' /dev/fuse",
      (s) => {
        s.mounts.push(
          { destination: "/data", type: "bind", source: hostDir, options: ["rbind", "ro"] },
          { destination: "/rw", type: "bind", source: hostDir, options: ["bind"] },
          { destination: "/file.txt", type: "bind", source: join(hostDir, "f.txt"), options: ["bind", "ro"] },
          { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1024k"] },
        );
        s.linux.devices = [{ path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o600 }];
      },
    );
    expect(r.out.trim().split("\n")).toEqual(["from host", "ro-bind", "from host", "size=1024k", "character special file a,e5 600"]);
    expect(readFileSync(join(hostDir, "out.txt"), "utf8")).toBe("new\n");
  });

  test("idmapped bind mount: on-disk owners appear through the mount's mapping", () => {
    const fs = require("node:fs");
    const dir = join(env.dir, "idmapped");
    fs.mkdirSync(dir);
    fs.writeFileSync(join(dir, "rootfile"), "");
    fs.writeFileSync(join(dir, "userfile"), "");
    fs.chownSync(join(dir, "userfile"), 1000, 1000);
    const r = inside("stat -c '%n %u %g' /data/rootfile /data/userfile", (s) =>
      s.mounts.push({ destination: "/data", type: "bind", source: dir, options: ["rbind"], uidMappings: [{ containerID: 0, hostID: 5000, size: 2000 }], gidMappings: [{ containerID: 0, hostID: 7000, size: 2000 }] }),
    );
    expect(r.err).toBe("");
    expect(r.out).toBe("/data/rootfile 5000 7000\n/data/userfile 6000 8000\n");
    expect(fs.statSync(join(dir, "userfile")).uid).toBe(1000);
  });

  describe("noexec, nodev, nosuid of bind mounts set as mount attributes (user namespace, idmapped)", () => {
    // These mounts get their flags from mount_setattr, not from mount(2)'s MS_* flags. Their
    // source is a tmpfs with none of the three flags, mounted in a private mount namespace that
    // tsrun runs in, so what the container shows is what tsrun set, whatever $TMPDIR's mount has.
    const FLAGS = ["noexec", "nodev", "nosuid"] as const;
    function run(name: string, patch: (s: any, src: string) => void) {
      const src = join(env.dir, `${name}-src`);
      require("node:fs").mkdirSync(src);
      const script = [
        ...FLAGS.map((f) => `echo ${f}=$(awk '$5 == "/${f}" {print $6}' /proc/self/mountinfo)`),
        // noexec in force: a program copied there does not run
        "cp /bin/busybox /noexec/true && /noexec/true 2>/dev/null; echo run-noexec=$?",
        "cp /bin/busybox /nodev/true && /nodev/true; echo run-nodev=$?",
      ].join("; ");
      const bundle = env.bundle(name, (s) => {
        s.process.args = ["sh", "-c", script];
        patch(s, src);
        for (const f of FLAGS) s.mounts.push({ destination: `/${f}`, type: "bind", source: join(src, f), options: ["rbind", f], ...s.mountExtra });
        delete s.mountExtra;
      });
      const inner = `mount -t tmpfs -o mode=0777 tsrun-attr-src "$0" && mkdir "$0/noexec" "$0/nodev" "$0/nosuid" && chmod 0777 "$0"/* && exec "$1" --root "$2" run --bundle "$3" "$4"`;
      const { TSRUN } = require("./helpers.ts");
      const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", inner, src, TSRUN, env.root, bundle, name], { stdout: "pipe", stderr: "pipe" });
      expect(leftovers(env, name, bundle)).toEqual([]);
      const out = Object.fromEntries(r.stdout.toString().trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      // Each mount has its own flag and neither of the others.
      expect(FLAGS.map((f) => [f, (out[f] ?? "").split(",").filter((o) => (FLAGS as readonly string[]).includes(o))])).toEqual(FLAGS.map((f) => [f, [f]]));
      expect([out["run-noexec"], out["run-nodev"]]).toEqual(["126", "0"]);
      expect(r.stderr.toString()).toBe("");
    }

    test("bind mounts in a user namespace", () => {
      run("attrs-userns", (s) => {
        s.linux.namespaces.push({ type: "user" });
        s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        s.root.readonly = false;
        s.mounts = s.mounts.filter((m: any) => m.type !== "cgroup" && m.type !== "sysfs");
        Bun.spawnSync(["chown", "-R", "100000:100000", join(env.dir, "attrs-userns", "rootfs")]);
      });
    });

    test("idmapped bind mounts", () => {
      run("attrs-idmap", (s) => {
        s.mountExtra = { uidMappings: [{ containerID: 0, hostID: 0, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 0, size: 65536 }] };
      });
    });
  });

  test("the device cgroup allows the default devices and the config's rules, and denies the rest; number 0 is a number, not *", () => {
    // The nodes are made in the container's /dev, a tmpfs it mounts itself: on a rootfs under a
    // nodev mount (a nodev $TMPDIR) every open of a node fails with EACCES before the device
    // cgroup is asked, which would hide what the cgroup decides.
    const open = (node: string, type: string, major: number, minor: number) => `mknod /dev/${node} ${type} ${major} ${minor} && head -c 1 /dev/${node} 2>&1 >/dev/null; echo ${node}=$?`;
    const r = inside(
      [
        "cat /sys/fs/cgroup/devices/devices.list",
        "head -c 1 /dev/zero | wc -c",
        "head -c 1 /dev/fuse 2>&1",
        // b 8:0 is allowed below, 8:1 is not; c 5:0 (tty) is a default, 5:3 is not
        open("sda", "b", 8, 0),
        open("sda1", "b", 8, 1),
        open("c53", "c", 5, 3),
      ].join("; "),
      (s) => {
        for (const set of ["bounding", "effective", "permitted"]) s.process.capabilities[set].push("CAP_MKNOD");
        s.linux.devices = [{ path: "/dev/fuse", type: "c", major: 10, minor: 229 }];
        // As with runc, a node of linux.devices is used through a rule of resources.devices.
        s.linux.resources = {
          ...s.linux.resources,
          devices: [...(s.linux.resources?.devices ?? []), { allow: true, type: "c", major: 10, minor: 229, access: "rwm" }, { allow: true, type: "b", major: 8, minor: 0, access: "r" }],
        };
      },
    );
    expect(r.err).toBe("");
    const lines = r.out.trim().split("\n");
    expect(lines).toContain("c 1:3 rwm");
    expect(lines).toContain("c 10:229 rwm");
    expect(lines).toContain("c 5:0 rwm");
    expect(lines).toContain("b 8:0 r");
    expect(lines).not.toContain("a *:* rwm");
    expect(lines).not.toContain("c 5:* rwm");
    expect(lines).not.toContain("b 8:* r");
    expect(lines).toContain("1");
    // allowed by its rule: reading an unopened fuse device fails, but not with EPERM
    expect(r.out).toMatch(/\/dev\/fuse: (?!Operation not permitted)/);
    // allowed: whatever the host has at 8:0 (ENXIO without a disk there), not the cgroup's EPERM
    expect(r.out).not.toMatch(/\/dev\/sda: Operation not permitted/);
    expect(r.out).toMatch(/\/dev\/sda1: Operation not permitted\nsda1=1/);
    expect(r.out).toMatch(/\/dev\/c53: Operation not permitted\nc53=1/);
  });

  test("--no-pivot", () => {
    const id = "nopivot";
    const b = env.bundle(id, (s) => (s.process.args = ["sh", "-c", "cat /etc/passwd | head -1"]));
    const r = env.tsrun(["run", "--no-pivot", "--bundle", b, id]);
    expect(r.stdout).toBe("root:x:0:0:root:/root:/bin/sh\n");
    expect(r.code).toBe(0);
  });
});

describe("process", () => {
  test("user, groups, umask, cwd, env, rlimits, capabilities, noNewPrivileges, oomScoreAdj", () => {
    const r = inside("id -u; id -g; id -G; umask; pwd; echo $FOO; ulimit -n; ulimit -Hn; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t ' ' '; cat /proc/self/oom_score_adj", (s) => {
      s.process.user = { uid: 1000, gid: 1001, additionalGids: [5, 7], umask: 0o027 };
      s.process.cwd = "/home/u";
      s.process.env.push("FOO=bar baz");
      s.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 512, hard: 600 }];
      // A non-root program keeps a capability across exec only as an ambient one (as with runc).
      s.process.capabilities = { bounding: ["CAP_KILL", "CAP_CHOWN"], effective: ["CAP_KILL"], permitted: ["CAP_KILL"], inheritable: ["CAP_KILL"], ambient: ["CAP_KILL"] };
      s.process.oomScoreAdj = 500;
    });
    expect(r.err).toBe("");
    expect(r.out.trim().split("\n")).toEqual(["1000", "1001", "1001 5 7", "0027", "/home/u", "bar baz", "512", "600", "CapEff: 0000000000000020", "CapBnd: 0000000000000021", "NoNewPrivs: 1", "500"]);
  });

  test("the caller's supplementary groups never reach the container: root and not, additionalGids absent or empty", () => {
    // The test runner has no supplementary groups, which would hide groups kept from tsrun's
    // caller: tsrun runs here under setpriv with groups 4 and 24.
    const { TSRUN } = require("./helpers.ts");
    const withGroups = (args: string[]) => {
      const r = Bun.spawnSync(["setpriv", "--groups", "4,24", "--", TSRUN, "--root", env.root, ...args], { stdout: "pipe", stderr: "pipe" });
      return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
    };
    expect(withGroups(["--version"]).code).toBe(0);
    expect(Bun.spawnSync(["setpriv", "--groups", "4,24", "--", "grep", "^Groups:", "/proc/self/status"]).stdout.toString()).toMatch(/^Groups:\s+4 24\s*$/);
    const groupsLine = "grep ^Groups: /proc/self/status";
    for (const [id, user] of [
      ["grp-root", { uid: 0, gid: 0 }],
      ["grp-root-empty", { uid: 0, gid: 0, additionalGids: [] }],
      ["grp-user", { uid: 1000, gid: 1000 }],
      ["grp-user-set", { uid: 1000, gid: 1000, additionalGids: [7] }],
    ] as const) {
      const b = env.bundle(id, (s) => {
        s.process.args = ["sh", "-c", groupsLine];
        s.process.user = user;
      });
      const r = withGroups(["run", "--bundle", b, id]);
      expect([id, r.err, r.out.trim().split(/\s+/).slice(1)]).toEqual([id, "", "additionalGids" in user ? user.additionalGids.map(String) : []]);
      expect(leftovers(env, id, b)).toEqual([]);
    }
  });

  test("--preserve-fds passes fds 3… to the container", () => {
    const id = "pfd";
    const b = env.bundle(id, (s) => (s.process.args = ["sh", "-c", "cat <&3; ls /proc/self/fd | tr '\\n' ' '"]));
    const file = join(env.dir, "pfd.txt");
    require("node:fs").writeFileSync(file, "preserved\n");
    const fd = require("node:fs").openSync(file, "r");
    const { TSRUN } = require("./helpers.ts");
    const p = Bun.spawnSync([TSRUN, "--root", env.root, "run", "--preserve-fds", "1", "--bundle", b, id], { stdio: ["ignore", "pipe", "pipe", fd] as any });
    expect(p.stderr.toString()).toBe("");
    const out = p.stdout.toString().split("\n");
    expect(out[0]).toBe("preserved");
    expect(out[1]!.trim().split(" ")).toEqual(["0", "1", "2", "3", "4"]);
  });
});

test("socket activation: LISTEN_FDS for tsrun's own pid passes those fds first and tells the container", () => {
  const id = "listen";
  const b = env.bundle(id, (s) => (s.process.args = ["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3; cat <&4"]));
  require("node:fs").writeFileSync(join(env.dir, "la"), "from-listen-fd\n");
  require("node:fs").writeFileSync(join(env.dir, "lb"), "from-preserved-fd\n");
  const { TSRUN } = require("./helpers.ts");
  const script = `exec env LISTEN_FDS=1 LISTEN_PID=$$ ${TSRUN} --root ${env.root} run --preserve-fds 1 --bundle ${b} ${id} 3<${join(env.dir, "la")} 4<${join(env.dir, "lb")}`;
  const r = Bun.spawnSync(["sh", "-c", script]);
  expect(r.stderr.toString()).toBe("");
  expect(r.stdout.toString()).toBe("1 1\nfrom-listen-fd\nfrom-preserved-fd\n");
});

test("the container gets a session keyring of its own (not with --no-new-keyring)", () => {
  const b = env.bundle("keys", (s) => {
    s.process.args = ["sh", "-c", "grep -c \"_ses.$(hostname)\" /proc/keys"];
    s.linux.maskedPaths = s.linux.maskedPaths.filter((p: string) => p !== "/proc/keys");
  });
  const cfg = join(b, "config.json");
  const withHost = (h: string) => {
    const c = JSON.parse(readFileSync(cfg, "utf8"));
    c.hostname = h;
    require("node:fs").writeFileSync(cfg, JSON.stringify(c));
  };
  withHost("keyring-none");
  expect(env.tsrun(["run", "--no-new-keyring", "--bundle", b, "keyring-none"]).stdout.trim()).toBe("0");
  withHost("keyring-own");
  expect(env.tsrun(["run", "--bundle", b, "keyring-own"]).stdout.trim()).toBe("1");
});

describe("resources", () => {
  test("memory, cpu and pids limits are in force inside the container", () => {
    const r = inside(
      "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.shares",
      (s) => (s.linux.resources = { ...s.linux.resources, memory: { limit: 64 << 20 }, pids: { limit: 50 }, cpu: { quota: 50000, period: 100000, shares: 512 } }),
    );
    expect(r.err).toBe("");
    expect(r.out.trim().split("\n")).toEqual([String(64 << 20), "50", "50000", "512"]);
  });

  test("a limit this host cannot apply refuses the create and leaves nothing", () => {
    const r = inside("true", (s) => (s.linux.resources = { ...s.linux.resources, hugepageLimits: [{ pageSize: "2MB", limit: 1 << 30 }] }));
    expect(r.code).toBe(1);
    expect(r.err).toContain("/linux/resources/hugepageLimits/0");
  });
});

describe("seccomp", () => {
  test("a profile is enforced in the container, with and without no_new_privs", () => {
    for (const nnp of [true, false]) {
      const r = inside("mkdir /tmp/x 2>&1; echo mkdir=$?; grep Seccomp: /proc/self/status", (s) => {
        s.root.readonly = false;
        s.process.noNewPrivileges = nnp;
        s.linux.seccomp = {
          defaultAction: "SCMP_ACT_ALLOW",
          architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }],
        };
      });
      expect(r.err).toBe("");
      expect(r.out).toContain("Permission denied");
      expect(r.out).toContain("mkdir=1");
      expect(r.out).toMatch(/Seccomp:\s+2/);
    }
  });

  test("an allow-list profile (default ERRNO) runs a shell; what it leaves out is refused", () => {
    const { syscallNames } = require("../src/seccomp/index.ts");
    const allowed = syscallNames("x86_64").filter((n: string) => n !== "mkdir" && n !== "mkdirat");
    const r = inside("mkdir /tmp/x 2>&1; echo done", (s) => {
      s.linux.seccomp = { defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 38, syscalls: [{ names: allowed, action: "SCMP_ACT_ALLOW" }] };
    });
    expect(r.err).toBe("");
    expect(r.out).toContain("Function not implemented");
    expect(r.out).toContain("done");
  });
});

describe("hooks", () => {
  test("every hook runs at its moment with the state on stdin", () => {
    const logDir = join(env.dir, "hooklog");
    require("node:fs").mkdirSync(logDir);
    const log = join(logDir, "hooks.log");
    // startContainer hooks run after pivot_root: their paths are the container's, and they see
    // the log through a bind mount at the same path.
    const hook = (name: string) => ({ path: "/bin/sh", args: ["sh", "-c", `{ printf '${name} '; cat; echo; } >> ${log}`] });
    const id = "hooks";
    const b = env.bundle(id, (s) => {
      s.process.args = ["sh", "-c", "echo ran"];
      s.mounts.push({ destination: logDir, type: "bind", source: logDir, options: ["bind"] });
      s.hooks = Object.fromEntries(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"].map((k) => [k, [hook(k)]]));
    });
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ran\n");
    const lines = readFileSync(log, "utf8").trim().split("\n");
    const seen = lines.map((l) => [l.slice(0, l.indexOf(" ")), JSON.parse(l.slice(l.indexOf(" ") + 1))] as const);
    expect(seen.map(([k]) => k)).toEqual(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
    const pid = seen[0]![1].pid;
    expect(pid).toBeGreaterThan(1);
    for (const [k, st] of seen) {
      expect(st.id).toBe(id);
      expect(st.bundle).toBe(b);
      if (k !== "poststop") expect(st.pid).toBe(pid);
    }
    expect(seen.map(([, st]) => st.status)).toEqual(["creating", "creating", "creating", "created", "running", "stopped"]);
  });

  test("a failing poststart hook is a warning and the next poststart hook still runs", () => {
    const mark = join(env.dir, "second-poststart");
    const id = "poststartfail";
    const b = env.bundle(id, (s) => {
      s.process.args = ["sleep", "5"];
      s.hooks = { poststart: [{ path: "/bin/false" }, { path: "/bin/sh", args: ["sh", "-c", `touch ${mark}`] }] };
    });
    expect(env.tsrun(["create", "--bundle", b, id]).code).toBe(0);
    const st = env.tsrun(["start", id]);
    expect(st.code).toBe(0);
    expect(st.stderr).toContain("warning: poststart hook #0");
    expect(existsSync(mark)).toBe(true);
    expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
  });

  test("a failing prestart hook fails create and leaves nothing; a hook timeout is enforced", () => {
    for (const [id, h] of [
      ["hookfail", { path: "/bin/sh", args: ["sh", "-c", "echo nope >&2; exit 3"] }],
      ["hooktime", { path: "/bin/sleep", args: ["sleep", "5"], timeout: 1 }],
    ] as const) {
      const b = env.bundle(id, (s) => (s.hooks = { prestart: [h] }));
      const r = env.tsrun(["create", "--bundle", b, id]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("prestart hook");
      expect(leftovers(env, id, b)).toEqual([]);
    }
    expect(existsSync(join(env.root, "hookfail"))).toBe(false);
  });
});
