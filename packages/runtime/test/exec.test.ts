// tsrun exec with real containers (root, busybox): the process joins the init's namespaces and
// cgroups, gets its set-up or what the flags and process.json say, and has the init's
// guarantees; the foreground waits, relays and returns the status; bad input leaves nothing.
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CONSOLE_RECEIVER as RECEIVER, testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const started: string[] = [];
// Registered before testEnv()'s own clean-up, which removes the state root: hooks run in order.
// A dozen deletes: more than the default 5 s hook timeout on a loaded machine.
afterAll(() => {
  for (const id of started) expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
}, 60_000);
const env = testEnv();

/** A running container whose init sleeps; `patch` edits its config. */
function running(id: string, patch?: (s: any) => void): number {
  const b = env.bundle(id, (s) => {
    s.process.args = ["sleep", "300"];
    patch?.(s);
  });
  const r = env.tsrun(["run", "-d", "--bundle", b, id]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  started.push(id);
  return JSON.parse(env.tsrun(["state", id]).stdout).pid;
}

const NS = ["ipc", "mnt", "net", "pid", "uts", "cgroup"];

describe("exec", () => {
  test("joins every namespace and the cgroups of the init, as a new pid inside its pid namespace", () => {
    const init = running("ex1");
    const script = `for n in ${NS.join(" ")}; do echo $n=$(readlink /proc/self/ns/$n); done; echo me=$$; echo one=$(cat /proc/1/cmdline | tr '\\0' ' '); echo host=$(hostname); echo fds=$(ls /proc/self/fd | tr '\\n' ' ')`;
    const r = env.tsrun(["exec", "ex1", "sh", "-c", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const kv = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    for (const n of NS) expect(kv[n]).toBe(readlinkSync(`/proc/${init}/ns/${n}`));
    expect(Number(kv.me)).toBeGreaterThan(1);
    expect(kv.one!.trim()).toBe("sleep 300");
    expect(kv.host).toBe("tsrun");
    // 0-2, and the directory ls reads: nothing of tsrun's
    expect(kv.fds!.trim().split(" ").sort()).toEqual(["0", "1", "2", "3"]);
  });

  test("detached with --pid-file: the process is in the init's cgroups and is not the tsrun binary", () => {
    const init = running("ex2");
    const pidFile = join(env.dir, "ex2.pid");
    const r = env.tsrun(["exec", "-d", "--pid-file", pidFile, "ex2", "sleep", "60"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(readFileSync(`/proc/${pid}/cgroup`, "utf8")).toBe(readFileSync(`/proc/${init}/cgroup`, "utf8"));
    expect(readlinkSync(`/proc/${pid}/exe`)).not.toBe(TSRUN);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\x0060\x00");
    expect(readlinkSync(`/proc/${pid}/root`)).toBe("/");
    expect(readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(readlinkSync(`/proc/${init}/ns/mnt`));
    // kill --all reaches it: it is one of the container's processes
    expect(env.tsrun(["kill", "--all", "ex2", "KILL"]).code).toBe(0);
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, "utf8") !== ""; i++) Bun.sleepSync(5);
    expect(existsSync(`/proc/${pid}`) ? readFileSync(`/proc/${pid}/cmdline`, "utf8") : "").toBe("");
  });

  test("the exit status, and 128+n for a signal", () => {
    running("ex3");
    expect(env.tsrun(["exec", "ex3", "sh", "-c", "exit 7"]).code).toBe(7);
    expect(env.tsrun(["exec", "ex3", "sh", "-c", "kill -TERM $$"]).code).toBe(128 + 15);
  });

  test("the init's set-up by default: user, capabilities, no_new_privs, rlimits, environment, cwd", () => {
    const init = running("ex4", (s) => {
      s.process.user = { uid: 1000, gid: 1000, additionalGids: [20] };
      s.process.env.push("FROM_CONFIG=yes");
      s.process.cwd = "/tmp";
      s.process.noNewPrivileges = true;
      s.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 512, hard: 1024 }];
    });
    const r = env.tsrun(["exec", "ex4", "sh", "-c", "id; pwd; echo $FROM_CONFIG; ulimit -n; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"]);
    expect(r.stderr).toBe("");
    const status = readFileSync(`/proc/${init}/status`, "utf8");
    const field = (name: string) => status.match(new RegExp(`^${name}:\\s+(\\S+)`, "m"))![1];
    expect(r.stdout).toBe(
      `uid=1000 gid=1000 groups=20\n/tmp\nyes\n512\nCapEff:\t${field("CapEff")}\nCapBnd:\t${field("CapBnd")}\nNoNewPrivs:\t1\n`,
    );
  });

  test("flags change the process: -u, -g, --cwd, -e, --cap, --no-new-privs", () => {
    running("ex5");
    const r = env.tsrun(["exec", "-u", "7:8", "-g", "30", "-g", "31", "--cwd", "/etc", "-e", "A=1", "-e", "B=2", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", "ex5", "sh", "-c", "id; pwd; echo $A$B; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status"]);
    expect(r.stderr).toBe("");
    // CAP_SYS_ADMIN (21) added to the default bounding set of runc's spec (AUDIT_WRITE, KILL, NET_BIND_SERVICE)
    expect(r.stdout).toBe("uid=7 gid=8 groups=30,31\n/etc\n12\nCapBnd:\t0000000020200420\nNoNewPrivs:\t1\n");
  });

  test("-p process.json is the whole process; a bad one is refused by pointer, nothing run", () => {
    running("ex6");
    const file = join(env.dir, "process.json");
    writeFileSync(file, JSON.stringify({ args: ["sh", "-c", "echo $X; pwd; id -u"], env: ["X=from-file", "PATH=/bin"], cwd: "/dev", user: { uid: 5, gid: 5 } }));
    const r = env.tsrun(["exec", "-p", file, "ex6"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from-file\n/dev\n5\n");
    writeFileSync(file, JSON.stringify({ args: ["true"], cwd: "relative", user: { uid: 0, gid: 0 } }));
    const bad = env.tsrun(["exec", "-p", file, "ex6"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(`invalid ${file} (1 problem): /process/cwd:`);
  });

  test("the container's seccomp filter applies to the exec'd process", () => {
    running("ex7", (s) => {
      s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64"], syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" }] };
    });
    const r = env.tsrun(["exec", "ex7", "sh", "-c", "mkdir /tmp/x 2>&1; grep ^Seccomp: /proc/self/status"]);
    expect(r.stdout).toBe("mkdir: can't create directory '/tmp/x': Operation not permitted\nSeccomp:\t2\n");
  });

  test("a user namespace container: the process is its root, mapped on the host", () => {
    const init = running("ex8", (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
    });
    const pidFile = join(env.dir, "ex8.pid");
    const r = env.tsrun(["exec", "-d", "--pid-file", pidFile, "ex8", "sleep", "30"]);
    expect(r.stderr).toBe("");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(readlinkSync(`/proc/${pid}/ns/user`)).toBe(readlinkSync(`/proc/${init}/ns/user`));
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\s+300000\s/m);
    expect(env.tsrun(["exec", "ex8", "id", "-u"]).stdout).toBe("0\n");
  });

  test("into a created, not yet started user namespace container (its init not dumpable yet), as runc does", () => {
    const b = env.bundle("ex8c", (s) => {
      s.process.args = ["sleep", "300"];
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
    });
    expect(env.tsrun(["create", "--bundle", b, "ex8c"]).code).toBe(0);
    started.push("ex8c");
    const init = JSON.parse(env.tsrun(["state", "ex8c"]).stdout).pid as number;
    const pidFile = join(env.dir, "ex8c.pid");
    const r = env.tsrun(["exec", "-d", "--pid-file", pidFile, "ex8c", "sleep", "30"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const pid = Number(readFileSync(pidFile, "utf8"));
    for (const ns of ["user", ...NS]) expect(`${ns}: ${readlinkSync(`/proc/${pid}/ns/${ns}`)}`).toBe(`${ns}: ${readlinkSync(`/proc/${init}/ns/${ns}`)}`);
    // Only 0-2 reach the process: the init's pidfd the join went through is closed before exec.
    // (sh forks ls: the "; true" keeps it from exec-ing ls in its place, whose own dir fd is 3.)
    expect(env.tsrun(["exec", "ex8c", "sh", "-c", "id -u; ls /proc/$$/fd; true"]).stdout).toBe("0\n0\n1\n2\n");
    expect(env.tsrun(["start", "ex8c"]).code).toBe(0);
    expect(JSON.parse(env.tsrun(["state", "ex8c"]).stdout).status).toBe("running");
  });

  test("--preserve-fds passes fd 3 on", () => {
    running("ex9");
    const file = join(env.dir, "ex9.data");
    writeFileSync(file, "through fd 3\n");
    const fd = openSync(file, "r");
    try {
      const r = Bun.spawnSync([TSRUN, "--root", env.root, "exec", "--preserve-fds", "1", "ex9", "sh", "-c", "cat <&3"], { stdio: ["ignore", "pipe", "pipe", fd] as any });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toBe("through fd 3\n");
    } finally {
      closeSync(fd);
    }
  });

  test("with a terminal, relayed in the foreground (under script(1) for a tty)", () => {
    running("ex10");
    const r = Bun.spawnSync(["script", "-qec", `${TSRUN} --root ${env.root} exec -t ex10 sh -c 'tty; test -t 0 && echo stdin-is-tty'`, "/dev/null"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString()).toContain("/dev/pts/");
    expect(r.stdout.toString()).toContain("stdin-is-tty");
    expect(r.exitCode).toBe(0);
  });
});

describe("exec with a console socket", () => {
  test("-d -t --console-socket sends the pty master; the process runs on that terminal", async () => {
    running("excons");
    const sock = join(env.dir, "exec-console.sock");
    const rx = Bun.spawn(["python3", "-c", RECEIVER, sock], { stdout: "pipe", stderr: "pipe" });
    const reader = rx.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("listening");
    const r = env.tsrun(["exec", "-d", "-t", "--console-socket", sock, "excons", "sh", "-c", "tty; test -t 0 && echo stdin-is-tty"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await rx.exited;
    expect(text).toContain("name /dev/ptmx");
    expect(text).toMatch(/tty \/dev\/pts\/\d+\n/);
    expect(text).toContain("stdin-is-tty");
  });

  test("-t detached without a console socket is refused, as runc does", () => {
    running("exnocons");
    const r = env.tsrun(["exec", "-d", "-t", "exnocons", "true"]);
    expect(r.stderr).toBe("tsrun: cannot allocate tty if tsrun will detach without setting console socket\n");
    expect(r.code).toBe(255);
  });
});

describe("exec --cgroup", () => {
  test("an existing sub-cgroup, for every controller or for the ones named; a missing or escaping one is refused", () => {
    const init = running("excg");
    const mine = Object.fromEntries(
      readFileSync(`/proc/${init}/cgroup`, "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(":"))
        .map(([, ctl, path]) => [ctl || "unified", path!]),
    );
    const dirOf = (ctl: string) => (ctl === "unified" ? `/sys/fs/cgroup/unified${mine.unified}` : `/sys/fs/cgroup/${ctl.replace(/^name=/, "")}${mine[ctl]}`);
    const ctls = Object.keys(mine).filter((c) => existsSync(dirOf(c)));
    for (const c of ctls) Bun.spawnSync(["mkdir", "-p", `${dirOf(c)}/sub`]);
    // An empty cpuset takes no process: refused with the reason, then filled in from its parent.
    const cpuset = dirOf("cpuset");
    expect(env.tsrun(["exec", "--cgroup", "cpuset:sub", "excg", "true"]).stderr).toBe(
      `tsrun: --cgroup: cannot move the process into ${cpuset}/sub: ENOSPC (a cpuset cgroup takes processes once its cpuset.cpus and cpuset.mems are set)\n`,
    );
    for (const f of ["cpuset.cpus", "cpuset.mems"]) writeFileSync(`${cpuset}/sub/${f}`, readFileSync(`${cpuset}/${f}`));
    const pidOf = (args: string[]) => {
      const f = join(env.dir, `excg-${args.join("-").replace(/\W/g, "")}.pid`);
      const r = env.tsrun(["exec", "-d", "--pid-file", f, ...args, "excg", "sleep", "30"]);
      expect(r.stderr).toBe("");
      return Number(readFileSync(f, "utf8"));
    };
    const cgroupsOf = (pid: number) => Object.fromEntries(readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n").map((l) => l.split(":")).map(([, c, p]) => [c || "unified", p]));
    const all = cgroupsOf(pidOf(["--cgroup", "sub"]));
    for (const c of ctls) expect([c, all[c]]).toEqual([c, `${mine[c]}/sub`]);
    const some = cgroupsOf(pidOf(["--cgroup", "pids,memory:sub"]));
    expect(some.pids).toBe(`${mine.pids}/sub`);
    expect(some.memory).toBe(`${mine.memory}/sub`);
    expect(some.cpu ?? some["cpu,cpuacct"]).toBe(mine.cpu ?? mine["cpu,cpuacct"]);
    expect(env.tsrun(["exec", "--cgroup", "nosuch", "excg", "true"]).stderr).toMatch(/--cgroup nosuch: adding pid to \/sys\/fs\/cgroup\/.+\/nosuch\/cgroup\.procs: no such file or directory \(the sub-cgroup must exist\)/);
    expect(env.tsrun(["exec", "--cgroup", "../..", "excg", "true"]).stderr).toContain("invalid --cgroup argument: ../.. is not a sub cgroup path (it leads out of the container's cgroup)");
    expect(env.tsrun(["exec", "--cgroup", "a", "--cgroup", "b", "excg", "true"]).stderr).toContain("invalid --cgroup argument: a (missing <controller>: prefix)");
    expect(env.tsrun(["exec", "--cgroup", "nope:sub", "excg", "true"]).stderr).toContain("invalid --cgroup argument: nope:sub: unknown controller nope: the container has no nope cgroup");
  });
});

describe("exec and pause", () => {
  test("refused in a paused container; with --ignore-paused it runs once the container is resumed", async () => {
    running("exp");
    expect(env.tsrun(["pause", "exp"]).code).toBe(0);
    const refused = env.tsrun(["exec", "exp", "true"]);
    expect(refused.stderr).toBe("tsrun: cannot exec in a paused container exp (use --ignore-paused to override)\n");
    expect(refused.code).toBe(255);
    const p = Bun.spawn([TSRUN, "--root", env.root, "exec", "--ignore-paused", "exp", "echo", "ran"], { stdout: "pipe", stderr: "pipe" });
    await Bun.sleep(300);
    // still waiting, frozen with the container
    expect(p.exitCode).toBeNull();
    expect(env.tsrun(["resume", "exp"]).code).toBe(0);
    expect(await p.exited).toBe(0);
    expect(await new Response(p.stdout).text()).toBe("ran\n");
  });
});

describe("exec: bad input leaves nothing", () => {
  test("a stopped container, a missing program, a missing command, an unknown container", () => {
    const b = env.bundle("exstop", (s) => (s.process.args = ["true"]));
    expect(env.tsrun(["run", "--keep", "--bundle", b, "exstop"]).code).toBe(0);
    started.push("exstop");
    const stopped = env.tsrun(["exec", "exstop", "true"]);
    expect(stopped.stderr).toBe("tsrun: cannot exec in a stopped container: exstop\n");
    expect(stopped.code).toBe(255);

    const init = running("exbad");
    const before = readFileSync(`/proc/${init}/task/${init}/children`, "utf8");
    const missing = env.tsrun(["exec", "exbad", "no-such-program"]);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toContain("exec in exbad: exec no-such-program failed: ENOENT");
    expect(env.tsrun(["exec", "exbad"]).stderr).toBe("tsrun: exec: the command to run is missing (tsrun exec ID COMMAND [ARGS...])\n");
    expect(env.tsrun(["exec", "-u", "x", "exbad", "true"]).stderr).toBe('tsrun: invalid uid "x": expected a number\n');
    const nosuch = env.tsrun(["exec", "nosuch", "true"]);
    expect(nosuch.stderr).toBe("tsrun: container does not exist: nosuch\n");
    // exec's own failures exit 255, as runc's: told apart from the process's own status 1
    expect(nosuch.code).toBe(255);
    const badPid = env.tsrun(["exec", "-d", "--pid-file", "/nonexistent/dir/p.pid", "exbad", "sleep", "77"]);
    expect(badPid.stderr).toBe("tsrun: exec in exbad: cannot write the pid file /nonexistent/dir/p.pid: ENOENT\n");
    expect(badPid.code).toBe(255);
    expect(readFileSync(`/proc/${init}/task/${init}/children`, "utf8")).toBe(before);
    // nothing of the failed execs is left in the container's cgroup
    const procs = readFileSync(`/proc/${init}/cgroup`, "utf8").match(/^\d+:pids:(.*)$/m)![1];
    expect(readFileSync(`/sys/fs/cgroup/pids${procs}/cgroup.procs`, "utf8").trim()).toBe(String(init));
    expect(readFileSync(`/proc/${init}/task/${init}/children`, "utf8")).toBe(before);
  });
});
