// The OCI lifecycle with real containers (root, busybox rootfs): create/start/state/kill/delete,
// run, list; and the promise that a failed or killed command leaves nothing behind.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CONSOLE_RECEIVER as RECEIVER, leftovers, testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const env = testEnv();
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");

describe("create, start, state, kill, delete", () => {
  test("a container goes created → running → stopped and is deleted without a trace", () => {
    const b = env.bundle("life", (s) => (s.process.args = ["sleep", "30"]));
    const pidFile = join(env.dir, "life.pid");
    const c = env.tsrun(["create", "--bundle", b, "--pid-file", pidFile, "life"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const st = JSON.parse(env.tsrun(["state", "life"]).stdout);
    expect(st).toMatchObject({ ociVersion: "1.3.0", id: "life", status: "created", bundle: b, rootfs: join(b, "rootfs") });
    expect(st.pid).toBeGreaterThan(1);
    expect(readFileSync(pidFile, "utf8")).toBe(String(st.pid));
    expect(alive(st.pid)).toBe(true);

    expect(env.tsrun(["start", "life"]).code).toBe(0);
    expect(JSON.parse(env.tsrun(["state", "life"]).stdout).status).toBe("running");
    expect(readFileSync(`/proc/${st.pid}/cmdline`, "utf8")).toBe("sleep\x0030\x00");
    const again = env.tsrun(["start", "life"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("cannot start an already running container");

    const del = env.tsrun(["delete", "life"]);
    expect(del.code).toBe(1);
    expect(del.stderr).toContain("cannot delete container life that is not stopped: running (use `delete --force` to kill and delete it)");
    expect(JSON.parse(env.tsrun(["state", "life"]).stdout).status).toBe("running");

    expect(env.tsrun(["kill", "life", "KILL"]).code).toBe(0);
    for (let i = 0; i < 100 && JSON.parse(env.tsrun(["state", "life"]).stdout).status !== "stopped"; i++) Bun.sleepSync(10);
    expect(JSON.parse(env.tsrun(["state", "life"]).stdout)).toMatchObject({ status: "stopped", pid: 0 });
    expect(env.tsrun(["kill", "life"]).stderr).toContain("container not running");
    expect(env.tsrun(["delete", "life"]).code).toBe(0);
    expect(leftovers(env, "life", b)).toEqual([]);
    const gone = env.tsrun(["state", "life"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("container does not exist");
  });

  test("kill takes signal names with and without SIG, and numbers; delete --force of a running container", () => {
    const b = env.bundle("sig", (s) => (s.process.args = ["sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.05; done"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, "sig"]).code).toBe(0);
    expect(env.tsrun(["kill", "sig", "SIGUSR1"]).code).toBe(0);
    for (let i = 0; i < 200 && JSON.parse(env.tsrun(["state", "sig"]).stdout).status !== "stopped"; i++) Bun.sleepSync(10);
    expect(JSON.parse(env.tsrun(["state", "sig"]).stdout).status).toBe("stopped");
    expect(env.tsrun(["delete", "sig"]).code).toBe(0);

    const b2 = env.bundle("sig2", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["run", "-d", "--bundle", b2, "sig2"]).code).toBe(0);
    expect(env.tsrun(["kill", "sig2", "NOPE"]).stderr).toContain("unknown signal");
    expect(env.tsrun(["kill", "sig2", "0"]).code).toBe(0);
    expect(env.tsrun(["delete", "--force", "sig2"]).code).toBe(0);
    expect(leftovers(env, "sig2", b2)).toEqual([]);
    expect(env.tsrun(["delete", "--force", "sig2"]).code).toBe(0);
    expect(env.tsrun(["delete", "sig2"]).stderr).toContain("container does not exist");
  });

  test("kill --all reaches every process in the container", () => {
    const b = env.bundle("all", (s) => (s.process.args = ["sh", "-c", "trap '' TERM; sleep 30 & sleep 30 & wait"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, "all"]).code).toBe(0);
    expect(env.tsrun(["kill", "--all", "all", "9"]).code).toBe(0);
    for (let i = 0; i < 200 && JSON.parse(env.tsrun(["state", "all"]).stdout).status !== "stopped"; i++) Bun.sleepSync(10);
    expect(env.tsrun(["delete", "all"]).code).toBe(0);
    expect(leftovers(env, "all", b)).toEqual([]);
  });

  // runtime.md asks for an error here, but runc kills and deletes a created container without
  // --force, and containerd's runc shim relies on it (its createdState.Delete runs `runc delete`
  // with no --force): tsrun follows runc (checked by hand against Debian's runc 1.1.5, whose
  // delete of a created container here waits for the bun test runner, a subreaper that does not
  // reap, so it is not repeated in the test).
  test("a created container can be deleted without --force, as with runc", () => {
    const b = env.bundle("cdel", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--bundle", b, "cdel"]).code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", "cdel"]).stdout).pid;
    expect(env.tsrun(["delete", "cdel"]).code).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(leftovers(env, "cdel", b)).toEqual([]);
  });

  test("list: table, json and quiet", () => {
    const b = env.bundle("ls1", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--bundle", b, "ls1"]).code).toBe(0);
    const table = env.tsrun(["list"]).stdout.split("\n");
    expect(table[0]).toMatch(/^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER$/);
    expect(table.some((l) => /^ls1\s+\d+\s+created\s+/.test(l))).toBe(true);
    const json = JSON.parse(env.tsrun(["list", "--format", "json"]).stdout);
    expect(json.find((c: any) => c.id === "ls1")).toMatchObject({ status: "created", bundle: b });
    expect(env.tsrun(["list", "-q"]).stdout.split("\n")).toContain("ls1");
    expect(env.tsrun(["delete", "--force", "ls1"]).code).toBe(0);
  });
});

describe("run", () => {
  test("in the foreground: the container's output and exit status", () => {
    const b = env.bundle("fg", (s) => (s.process.args = ["sh", "-c", "echo hello from $(hostname); exit 3"]));
    const r = env.tsrun(["run", "--bundle", b, "fg"]);
    expect(r.stdout).toBe("hello from tsrun\n");
    expect(r.code).toBe(3);
    expect(leftovers(env, "fg", b)).toEqual([]);
  });

  test("--keep keeps the stopped container", () => {
    const b = env.bundle("keep");
    expect(env.tsrun(["run", "--keep", "--bundle", b, "keep"]).code).toBe(0);
    expect(JSON.parse(env.tsrun(["state", "keep"]).stdout).status).toBe("stopped");
    expect(env.tsrun(["delete", "keep"]).code).toBe(0);
  });

  test("a signal to tsrun run is forwarded to the container", async () => {
    const b = env.bundle("fwd", (s) => (s.process.args = ["sh", "-c", "trap 'exit 9' TERM; while :; do sleep 0.05; done"]));
    const p = Bun.spawn([TSRUN, "--root", env.root, "run", "--bundle", b, "fwd"], { stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 200 && !existsSync(join(env.root, "fwd")); i++) await Bun.sleep(10);
    for (let i = 0; i < 200 && !JSON.parse(env.tsrun(["state", "fwd"]).stdout || "{}").status?.startsWith("running"); i++) await Bun.sleep(10);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(9);
    expect(leftovers(env, "fwd", b)).toEqual([]);
  });
});

describe("terminals", () => {

  test("create --console-socket sends the pty master; the program runs on the terminal", async () => {
    const sock = join(env.dir, "console.sock");
    const rx = Bun.spawn(["python3", "-c", RECEIVER, sock], { stdout: "pipe", stderr: "pipe" });
    const reader = rx.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain("listening");
    const b = env.bundle("tty", (s) => {
      s.process.terminal = true;
      s.process.consoleSize = { height: 30, width: 100 };
      s.process.args = ["sh", "-c", "tty; stty size; test -t 0 && echo stdin-is-tty"];
    });
    const c = env.tsrun(["create", "--console-socket", sock, "--bundle", b, "tty"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    expect(env.tsrun(["start", "tty"]).code).toBe(0);
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await rx.exited;
    expect(text).toContain("name /dev/ptmx");
    expect(text).toContain("/dev/pts/0");
    expect(text).toContain("30 100");
    expect(text).toContain("stdin-is-tty");
    expect(env.tsrun(["delete", "--force", "tty"]).code).toBe(0);
    expect(leftovers(env, "tty", b)).toEqual([]);
  });

  test("run in the foreground relays the container's terminal both ways (under script(1) for a tty)", async () => {
    const b = env.bundle("ttyfg", (s) => {
      s.process.terminal = true;
      s.process.args = ["sh"];
    });
    const cmd = `${TSRUN} --root ${env.root} run --bundle ${b} ttyfg`;
    const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    await Bun.sleep(300);
    p.stdin.write("echo typed-$((40+2)); tty; exit 5\n");
    await p.stdin.flush();
    const code = await p.exited;
    const out = await new Response(p.stdout).text();
    expect(out).toContain("typed-42");
    expect(out).toContain("/dev/pts/0");
    expect(code).toBe(5);
    expect(leftovers(env, "ttyfg", b)).toEqual([]);
  });

  test("a terminal without a console socket is refused when detaching, as runc does", () => {
    const b = env.bundle("ttyno", (s) => (s.process.terminal = true));
    const r = env.tsrun(["create", "--bundle", b, "ttyno"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("console socket");
    expect(leftovers(env, "ttyno", b)).toEqual([]);
  });
});

describe("bad input and faults leave nothing behind", () => {
  test("an invalid config", () => {
    const b = env.bundle("badcfg", (s) => (s.process.cwd = "relative"));
    const r = env.tsrun(["create", "--bundle", b, "badcfg"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/process/cwd");
    expect(leftovers(env, "badcfg", b)).toEqual([]);
  });

  test("a mount that fails names the step, the path and the errno", () => {
    const b = env.bundle("badmount", (s) => s.mounts.push({ destination: "/mnt", type: "nosuchfs", source: "x" }));
    const r = env.tsrun(["create", "--bundle", b, "badmount"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("badmount");
    expect(r.stderr).toContain("/mnt");
    expect(r.stderr).toContain("ENODEV");
    expect(leftovers(env, "badmount", b)).toEqual([]);
  });

  test("a program that does not exist", () => {
    const b = env.bundle("noprog", (s) => (s.process.args = ["/no/such/program"]));
    const r = env.tsrun(["run", "--bundle", b, "noprog"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("/no/such/program");
    expect(leftovers(env, "noprog", b)).toEqual([]);
  });

  test("a missing rootfs and a duplicate id", () => {
    const b = env.bundle("dup", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--bundle", b, "dup"]).code).toBe(0);
    const r = env.tsrun(["create", "--bundle", b, "dup"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("container with id exists: dup");
    expect(JSON.parse(env.tsrun(["state", "dup"]).stdout).status).toBe("created");
    expect(env.tsrun(["delete", "dup"]).code).toBe(0);
    const nr = env.bundle("noroot", (s) => (s.root.path = "nope"));
    expect(env.tsrun(["create", "--bundle", nr, "noroot"]).stderr).toContain("/root/path");
    expect(leftovers(env, "noroot", nr)).toEqual([]);
  });

  test("of N simultaneous creates of one id exactly one wins and stays intact", async () => {
    const b = env.bundle("race", (s) => (s.process.args = ["sleep", "30"]));
    const procs = Array.from({ length: 6 }, () => Bun.spawn([TSRUN, "--root", env.root, "create", "--bundle", b, "race"], { stdout: "pipe", stderr: "pipe" }));
    const codes = await Promise.all(procs.map((p) => p.exited));
    expect(codes.filter((c) => c === 0).length).toBe(1);
    const st = JSON.parse(env.tsrun(["state", "race"]).stdout);
    expect(st.status).toBe("created");
    expect(alive(st.pid)).toBe(true);
    expect(env.tsrun(["delete", "race"]).code).toBe(0);
    expect(leftovers(env, "race", b)).toEqual([]);
  });

  test("tsrun killed with SIGKILL at any moment of create, then delete --force, leaves nothing", async () => {
    const b = env.bundle("killed", (s) => (s.process.args = ["sleep", "30"]));
    for (const delayMs of [0, 2, 5, 10, 15, 20, 30, 45, 60, 90]) {
      const id = `killed${delayMs}`;
      const p = Bun.spawn([TSRUN, "--root", env.root, "create", "--bundle", b, id], { stdout: "ignore", stderr: "ignore" });
      await Bun.sleep(delayMs);
      p.kill("SIGKILL");
      await p.exited;
      const d = env.tsrun(["delete", "--force", id]);
      expect(d.code).toBe(0);
      // the killed create's executor notices its socket close and exits; give it a moment
      for (let i = 0; i < 50 && leftovers(env, id, b).length; i++) await Bun.sleep(10);
      expect(leftovers(env, id, b)).toEqual([]);
    }
  });

  test("delete --force of a container whose state file is truncated or corrupt", () => {
    for (const [id, damage] of [
      ["trunc", (f: string) => writeFileSync(f, readFileSync(f, "utf8").slice(0, 20))],
      ["garbage", (f: string) => writeFileSync(f, "\x00\x01 not json")],
      ["empty", (f: string) => writeFileSync(f, "")],
    ] as const) {
      const b = env.bundle(id, (s) => (s.process.args = ["sleep", "30"]));
      expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
      const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid;
      damage(join(env.root, id, "state.json"));
      expect(env.tsrun(["state", id]).code).toBe(1);
      expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
      for (let i = 0; i < 100 && alive(pid); i++) Bun.sleepSync(10);
      expect(alive(pid)).toBe(false);
      expect(leftovers(env, id, b)).toEqual([]);
    }
  });
});

describe("security", () => {
  test("a created container's init is not the tsrun binary and cannot be written through /proc/<pid>/exe", () => {
    const b = env.bundle("exe", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--bundle", b, "exe"]).code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", "exe"]).stdout).pid;
    const exe = readlinkSync(`/proc/${pid}/exe`);
    expect(exe).toStartWith("/memfd:");
    expect(exe).not.toBe(realpathSync(TSRUN));
    expect(statSync(`/proc/${pid}/exe`).size).toBeLessThan(statSync(TSRUN).size / 10);
    expect(() => writeFileSync(`/proc/${pid}/exe`, "x")).toThrow();
    expect(env.tsrun(["delete", "exe"]).code).toBe(0);
  });

  test("the init is not dumpable until exec; the program is", () => {
    const b = env.bundle("dump", (s) => {
      s.process.args = ["sleep", "30"];
      s.process.user = { uid: 1000, gid: 1000 };
    });
    expect(env.tsrun(["create", "--bundle", b, "dump"]).code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", "dump"]).stdout).pid;
    // The files in /proc/<pid> of a non-dumpable process belong to root, whatever its uid.
    expect(statSync(`/proc/${pid}/environ`).uid).toBe(0);
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\s+1000\s/m);
    expect(env.tsrun(["start", "dump"]).code).toBe(0);
    for (let i = 0; i < 100 && statSync(`/proc/${pid}/environ`).uid !== 1000; i++) Bun.sleepSync(5);
    expect(statSync(`/proc/${pid}/environ`).uid).toBe(1000);
    expect(env.tsrun(["delete", "--force", "dump"]).code).toBe(0);
  });

  test("a root init is not dumpable until exec either; the program is", () => {
    // For a root process /proc/<pid> belongs to root whether dumpable or not, so ask the kernel
    // what dumpability decides: ptrace access to it by a root process without CAP_SYS_PTRACE
    // (holding every other capability, so at least the init's; with fewer the capability check
    // alone refuses). /proc/<pid>/stat shows the code's start and end only to a process with
    // that access ("1 1" otherwise), and needs no tool that a host may lack.
    const b = env.bundle("dumproot", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["create", "--bundle", b, "dumproot"]).code).toBe(0);
    try {
      const pid = JSON.parse(env.tsrun(["state", "dumproot"]).stdout).pid;
      expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\s+0\s/m);
      const codeRange = () => {
        const r = Bun.spawnSync(["setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-all", "--", "cat", `/proc/${pid}/stat`], { stdout: "pipe", stderr: "pipe" });
        expect(r.stderr.toString()).toBe("");
        // fields 26 and 27 (startcode, endcode), counted after the command name in parentheses
        return r.stdout.toString().slice(r.stdout.toString().lastIndexOf(")") + 2).split(" ").slice(23, 25).join(" ");
      };
      expect(codeRange()).toBe("1 1");
      // The check itself can tell: host root, with CAP_SYS_PTRACE, sees the real range.
      expect(readFileSync(`/proc/${pid}/stat`, "utf8")).not.toMatch(/\) (\S+ ){23}1 1 /);
      expect(env.tsrun(["start", "dumproot"]).code).toBe(0);
      let after = codeRange();
      for (let i = 0; i < 100 && after === "1 1"; i++, after = codeRange()) Bun.sleepSync(5);
      expect(after).not.toBe("1 1");
    } finally {
      env.tsrun(["delete", "--force", "dumproot"]);
    }
  });

  test("no fd but 0-2 (and preserved ones) reaches the container", () => {
    const b = env.bundle("fds", (s) => (s.process.args = ["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]));
    const r = env.tsrun(["run", "--bundle", b, "fds"]);
    expect(r.stdout.trim().split(" ").sort()).toEqual(["0", "1", "2", "3"]); // 3 is ls's own directory
  });

  test("a cwd through a leaked fd cannot reach the host (CVE-2024-21626 class)", () => {
    const id = "cwdleak";
    const b = env.bundle(id, (s) => {
      s.process.cwd = "/proc/self/fd/3";
      s.process.args = ["sh", "-c", "pwd; ls"];
    });
    const hostDir = require("node:fs").openSync(env.dir, "r");
    const { TSRUN: bin } = require("./helpers.ts");
    const r = Bun.spawnSync([bin, "--root", env.root, "run", "--preserve-fds", "1", "--bundle", b, id], { stdio: ["ignore", "pipe", "pipe", hostDir] as any });
    require("node:fs").closeSync(hostDir);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout.toString()).toBe("");
    expect(r.stderr.toString()).toContain(id);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("a symlink in the rootfs cannot send a mount outside it", () => {
    // A name of this run's own: a probe left by an earlier failed run must not fail this one.
    const name = `tsrun-escape-probe-${process.pid}-${Date.now()}`;
    const b = env.bundle("escape", (s) => s.mounts.push({ destination: `/evil/${name}`, type: "tmpfs", source: "tmpfs" }));
    Bun.spawnSync(["ln", "-s", "/tmp", join(b, "rootfs/evil")]);
    const probe = `/tmp/${name}`;
    try {
      const r = env.tsrun(["run", "--bundle", b, "escape"]);
      expect(existsSync(probe)).toBe(false);
      expect(r.code).toBe(0);
      expect(existsSync(join(b, `rootfs/tmp/${name}`))).toBe(true);
    } finally {
      // What a failure made on the host goes, mounted or not.
      if (readFileSync("/proc/self/mountinfo", "utf8").includes(` ${probe} `)) Bun.spawnSync(["umount", "-l", probe]);
      rmSync(probe, { recursive: true, force: true });
    }
  });

});
