// Behaviour found to differ from runc's by running runc's own bats suite against tsrun (see the
// issue notes): each test pins the runc behaviour down with a real container.
import { describe, expect, test } from "bun:test";
import { testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const env = testEnv();

describe("mounts", () => {
  test("a read-only /dev with a terminal: /dev/console is made before /dev turns read-only", async () => {
    const b = env.bundle("rodevtty", (s) => {
      for (const m of s.mounts) if (m.destination === "/dev") m.options.push("ro");
      s.process.terminal = true;
      s.process.args = ["sh", "-c", "test -c /dev/console && tty && echo tty ok"];
    });
    // run in the foreground relays the terminal; script(1) gives it one.
    const r = Bun.spawnSync(["script", "-qec", `${TSRUN} --root ${env.root} run --bundle ${b} rodevtty`, "/dev/null"], { stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString()).toContain("tty ok");
    expect(r.exitCode).toBe(0);
  });

  test("a read-only /dev still gets /dev/pts, /dev/shm and the device nodes (runc#3248)", () => {
    const b = env.bundle("rodev", (s) => {
      for (const m of s.mounts) if (m.destination === "/dev") m.options.push("ro");
      s.process.args = ["sh", "-c", "grep -c ' /dev/pts ' /proc/self/mounts; echo x > /dev/null && echo null ok; touch /dev/new 2>&1 | grep -o 'Read-only file system'"];
    });
    const r = env.tsrun(["run", "--bundle", b, "rodev"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1\nnull ok\nRead-only file system\n");
  });
});

describe("devices", () => {
  test("a node from linux.devices gets no cgroup rule of its own: a deny in resources.devices holds (runc's device cgroup deny)", () => {
    const b = env.bundle("devdeny", (s) => {
      s.linux.resources = { devices: [{ allow: false, access: "rwm" }] };
      s.linux.devices = [{ path: "/dev/kmsg", type: "c", major: 1, minor: 11 }];
      for (const set of ["bounding", "effective", "permitted"]) s.process.capabilities[set].push("CAP_SYSLOG");
      s.process.args = ["sh", "-c", "head -c 1 /dev/kmsg >/dev/null 2>&1 && echo read || echo refused; grep -c '^c 1:11 ' /sys/fs/cgroup/devices/devices.list; grep -c '^c 10:200 rwm' /sys/fs/cgroup/devices/devices.list"];
    });
    const r = env.tsrun(["run", "--bundle", b, "devdeny"]);
    expect(r.stderr).toBe("");
    // the node is there but may not be read; runc's default list (net/tun 10:200 among it) follows
    expect(r.stdout).toBe("refused\n0\n1\n");
  });
});

describe("devices: access letters", () => {
  test("an access letter other than r, w and m is ignored with a warning, as runc ignores it (its update test denies c 1:11 \"rwa\")", () => {
    const b = env.bundle("devrwa", (s) => {
      s.linux.resources = { devices: [{ allow: false, access: "rwm" }, { allow: false, type: "c", major: 1, minor: 11, access: "rwa" }] };
      s.linux.devices = [{ path: "/dev/kmsg", type: "c", major: 1, minor: 11 }];
      for (const set of ["bounding", "effective", "permitted"]) s.process.capabilities[set].push("CAP_SYSLOG");
      s.process.args = ["sh", "-c", "head -c 1 /dev/kmsg >/dev/null 2>&1 && echo read || echo refused; echo x > /dev/null && echo null ok"];
    });
    const r = env.tsrun(["run", "--bundle", b, "devrwa"]);
    expect(r.stderr).toBe('tsrun: warning: /linux/resources/devices/1/access: "a" ignored in "rwa": only r, w and m mean something (as runc reads it)\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("refused\nnull ok\n");
  });
});

describe("network", () => {
  test("a new network namespace has its loopback up, as runc's does (127.0.0.1 answers inside)", () => {
    const b = env.bundle("loup", (s) => (s.process.args = ["sh", "-c", "cat /sys/class/net/lo/flags; (echo pong | nc -l -p 7777 127.0.0.1 &) ; sleep 0.2; nc 127.0.0.1 7777 </dev/null"]));
    const r = env.tsrun(["run", "--bundle", b, "loup"]);
    expect(r.stderr).toBe("");
    // IFF_UP | IFF_LOOPBACK (and RUNNING once up)
    expect(Number(r.stdout.split("\n")[0]) & 0x1).toBe(1);
    expect(r.stdout).toContain("pong");
  });
});

describe("kill", () => {
  test("kill --all of a stopped container succeeds (nothing left to signal), as with runc", async () => {
    const b = env.bundle("killall", (s) => (s.process.args = ["true"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, "killall"]).code).toBe(0);
    for (let i = 0; i < 100 && JSON.parse(env.tsrun(["state", "killall"]).stdout).status !== "stopped"; i++) await Bun.sleep(20);
    const r = env.tsrun(["kill", "--all", "killall", "0"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(env.tsrun(["kill", "killall", "0"]).code).toBe(1);
    expect(env.tsrun(["delete", "killall"]).code).toBe(0);
  });
});

describe("cgroups", () => {
  test("a frozen cgroup refuses create at once (no hang) and nothing is left", () => {
    const { mkdirSync, writeFileSync, rmdirSync, existsSync, readFileSync } = require("node:fs") as typeof import("node:fs");
    const dir = "/sys/fs/cgroup/freezer/tsrun-test-frozen";
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(`${dir}/freezer.state`, "FROZEN");
      const b = env.bundle("frozen", (s) => (s.linux.cgroupsPath = "/tsrun-test-frozen"));
      const t0 = Date.now();
      const r = env.tsrun(["run", "-d", "--bundle", b, "frozen"]);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("frozen");
      expect(existsSync(`${env.root}/frozen`)).toBe(false);
      // The cgroup was the user's: it is left as it was, frozen (as runc leaves it).
      expect(readFileSync(`${dir}/freezer.state`, "utf8").trim()).toBe("FROZEN");
    } finally {
      if (existsSync(dir)) {
        writeFileSync(`${dir}/freezer.state`, "THAWED");
        rmdirSync(dir);
      }
    }
  });
});

describe("--log and --debug", () => {
  test("--log creates the file even when there is nothing to say; --debug writes debug lines there, text or json", () => {
    const { existsSync, readFileSync } = require("node:fs") as typeof import("node:fs");
    const b = env.bundle("logs", (s) => (s.process.args = ["true"]));
    const quiet = `${env.dir}/quiet.log`;
    expect(env.tsrun(["--log", quiet, "run", "--bundle", b, "logs1"]).code).toBe(0);
    expect(existsSync(quiet)).toBe(true);
    expect(readFileSync(quiet, "utf8")).toBe("");
    const text = `${env.dir}/text.log`;
    const r = env.tsrun(["--log", text, "--debug", "run", "--bundle", b, "logs2"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const lines = readFileSync(text, "utf8").trim().split("\n");
    expect(lines.length).toBeGreaterThan(5);
    for (const l of lines) expect(l).toMatch(/^time="[^"]+" level=debug msg=".*"$/);
    const json = `${env.dir}/json.log`;
    expect(env.tsrun(["--log", json, "--log-format", "json", "--debug", "run", "--bundle", b, "logs3"]).code).toBe(0);
    for (const l of readFileSync(json, "utf8").trim().split("\n")) expect(JSON.parse(l)).toMatchObject({ level: "debug" });
  });

  test("--debug without --log writes the debug lines to stderr", () => {
    const b = env.bundle("logs4", (s) => (s.process.args = ["true"]));
    const r = env.tsrun(["--debug", "run", "--bundle", b, "logs4"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/level=debug msg="create: config validated"/);
  });
});

describe("user namespaces", () => {
  test("a bind source the container's root cannot reach is opened before the user namespace, as runc does", () => {
    const { mkdirSync, writeFileSync, chmodSync } = require("node:fs") as typeof import("node:fs");
    const hidden = `${env.dir}/hidden`;
    mkdirSync(`${hidden}/dir`, { recursive: true });
    writeFileSync(`${hidden}/dir/file`, "reachable\n");
    chmodSync(`${hidden}/dir/file`, 0o644);
    chmodSync(`${hidden}/dir`, 0o755);
    chmodSync(hidden, 0o700); // host root only: uid 100000 cannot search it
    const b = env.bundle("usernsbind", (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.mounts.push({ destination: "/mnt", type: "bind", source: `${hidden}/dir`, options: ["rbind", "ro"] });
      s.process.args = ["cat", "/mnt/file"];
    });
    Bun.spawnSync(["chown", "-R", "100000:100000", `${b}/rootfs`]);
    const r = env.tsrun(["run", "--bundle", b, "usernsbind"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("reachable\n");
  });
});

describe("delete", () => {
  test("what an init without a pid namespace leaves running is killed, and its cgroup removed", () => {
    const { existsSync } = require("node:fs") as typeof import("node:fs");
    const b = env.bundle("leftover", (s) => {
      s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== "pid");
      // A duration no other process on the machine is likely to sleep: the check below counts machine-wide.
      s.process.args = ["sh", "-c", "sleep 29491 </dev/null >/dev/null 2>&1 & echo $! > /tmp/sleeper"];
      s.root.readonly = false;
    });
    const r = env.tsrun(["run", "--bundle", b, "leftover"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // run deleted the container: the sleeper must be gone with its cgroup.
    expect(existsSync("/sys/fs/cgroup/pids/leftover")).toBe(false);
    const ps = Bun.spawnSync(["sh", "-c", "ps -eo args | grep -c '^sleep 29491$'"]).stdout.toString().trim();
    expect(ps).toBe("0");
  });
});
