// Rootless: a real unprivileged user (made here with useradd, removed with userdel -r after, even
// when a test fails) runs a busybox bundle made by `tsrun spec --rootless`, with the default root
// under its $XDG_RUNTIME_DIR, as runc does beside it. On this cgroup v1 host the user may write no
// cgroup: the container runs in none (runc's rootless cgroup manager ignores the permission
// errors; tsrun says so), and what needs one is refused with the reason.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLONE_FLAGS, MS } from "@tsrun/ocispec/core";
import { SYNC, type Op } from "../src/plan/ops.ts";
import { defaultRoot, preParse } from "../src/cli/globals.ts";
import { isInitialUidMap, rootlessCgroups } from "../src/container/rootless.ts";
import { compilePlan, type PlanInput } from "../src/plan/compile.ts";
import { defaultSpec } from "@tsrun/ocispec/defaults";
import { busyboxRootfs, leftovers, type Env } from "./containers.ts";
import { capture, TSRUN, tempDir, type Run } from "./helpers.ts";
import { detect } from "../src/cgroups/detect.ts";
import { PR, WNOHANG } from "../src/linux/constants.ts";
import { prctl, waitpid } from "../src/linux/libc.ts";

describe("rootless rules (pure)", () => {
  const host = (euid: number, inUserNS: boolean, env: Record<string, string | undefined>) => ({ euid, inUserNS: () => inUserNS, env });

  test("default root: $XDG_RUNTIME_DIR/tsrun as runc's shouldHonorXDGRuntimeDir decides", () => {
    expect(defaultRoot(host(1000, false, { XDG_RUNTIME_DIR: "/run/user/1000" }))).toEqual({ root: "/run/user/1000/tsrun", xdg: true });
    // Unset or empty: /run/tsrun, which an unprivileged user then cannot create (runc: /run/runc).
    expect(defaultRoot(host(1000, false, {}))).toEqual({ root: "/run/tsrun", xdg: false });
    expect(defaultRoot(host(1000, false, { XDG_RUNTIME_DIR: "" }))).toEqual({ root: "/run/tsrun", xdg: false });
    // The real root ignores its /run/user/0.
    expect(defaultRoot(host(0, false, { XDG_RUNTIME_DIR: "/run/user/0" }))).toEqual({ root: "/run/tsrun", xdg: false });
    // Root in a user namespace honours it unless $USER is root.
    expect(defaultRoot(host(0, true, { XDG_RUNTIME_DIR: "/run/user/5" })).root).toBe("/run/user/5/tsrun");
    expect(defaultRoot(host(0, true, { XDG_RUNTIME_DIR: "/run/user/5", USER: "root" })).root).toBe("/run/tsrun");
    expect(defaultRoot(host(0, true, { XDG_RUNTIME_DIR: "/run/user/5", USER: "me" })).root).toBe("/run/user/5/tsrun");
  });

  test("--root wins over the XDG default, which alone is prepared (xdgRoot)", () => {
    const h = host(1000, false, { XDG_RUNTIME_DIR: "/run/user/1000" });
    expect(preParse(["list"], h).globals).toMatchObject({ root: "/run/user/1000/tsrun", xdgRoot: true });
    const given = preParse(["--root", "/x", "list"], h).globals;
    expect(given.root).toBe("/x");
    expect(given.xdgRoot).toBeUndefined();
  });

  test("--rootless auto|true|false as runc's shouldUseRootlessCgroupManager (cgroupfs)", () => {
    expect(rootlessCgroups("auto", { euid: 1000, inUserNS: () => false })).toBe(true);
    expect(rootlessCgroups("auto", { euid: 0, inUserNS: () => false })).toBe(false);
    expect(rootlessCgroups("auto", { euid: 0, inUserNS: () => true })).toBe(true);
    expect(rootlessCgroups("true", { euid: 0, inUserNS: () => false })).toBe(true);
    expect(rootlessCgroups("false", { euid: 1000, inUserNS: () => true })).toBe(false);
    expect(isInitialUidMap("         0          0 4294967295\n")).toBe(true);
    expect(isInitialUidMap("         0       1000          1\n")).toBe(false);
  });

  test("the plan's privileged steps, done the unprivileged way", () => {
    const spec: any = JSON.parse(JSON.stringify(defaultSpec({ rootless: { uid: 1000, gid: 1000 } })));
    spec.process.terminal = false;
    spec.mounts = [{ destination: "/sys", type: "bind", source: "/sys", options: ["rbind", "ro"] }];
    const input = (s: any): PlanInput => ({ spec: s, bundle: "/b", rootfs: "/b/rootfs", execFifo: "/f", preserveFds: 0, noPivot: false, unprivileged: true, hostPathKind: () => "dir" });
    const ops = compilePlan(input(spec)).ops;
    // In this order, with other steps between them.
    const want: Op[] = [
      { op: "unshare", flags: CLONE_FLAGS.user },
      { op: "prctl", option: 4, arg: 1n },
      { op: "sync", code: SYNC.USERNS },
      { op: "prctl", option: 4, arg: 0n },
      { op: "mount", source: "/sys", target: "sys", fstype: null, flags: MS.BIND | MS.REC, data: null, inRoot: true, targetIsFile: false },
      { op: "mountSetattr", target: "sys", attrSet: 1, attrClr: 0, propagation: 0, recursive: true, inRoot: true },
      { op: "setUser", uid: 0, gid: 0, groups: [], setgroups: false },
    ];
    let at = 0;
    for (const w of want) {
      at = ops.findIndex((o, k) => k >= at && Bun.deepEquals(o, w));
      expect([w, at >= 0]).toEqual([w, true]);
    }
    expect(ops.map((o) => o.op)).not.toContain("openTree");
    expect(ops.map((o) => o.op)).not.toContain("mountTree");
    spec.process.user.additionalGids = [10];
    expect(() => compilePlan(input(spec))).toThrow("cannot set any additional groups in a rootless container");
  });
});

describe("an unprivileged user", () => {
  // Short and unique: useradd limits names to 32 characters.
  const name = `tsrl${process.pid % 100000}`;
  let uid = -1;
  let gid = -1;
  let home = "";
  let xdg = "";
  let madeRunUser = false;
  const dir = tempDir("tsrun-rootless-");
  // The user must reach its bundle: the temporary directory is opened up, its child is the user's.
  chmodSync(dir, 0o755);
  const work = join(dir, "user");
  const bundle = join(work, "bundle");
  const runcBundle = join(work, "runc-bundle");

  /**
   * Runs `argv` as the user in `cwd`, output to files (a detached container keeps them open).
   * With `fromCgroup`, a root shell first moves itself into that cgroup2 cgroup (the user may not),
   * then becomes the user: tsrun then runs where a delegated subtree would have put it.
   */
  function asUser(argv: string[], cwd = bundle, env: Record<string, string> = {}, fromCgroup?: string): Run {
    const vars = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: home, USER: name, XDG_RUNTIME_DIR: xdg, ...env };
    const envArgs = Object.entries(vars)
      .filter(([, v]) => v !== "")
      .map(([k, v]) => `${k}=${v}`);
    const setpriv = ["setpriv", "--reuid", String(uid), "--regid", String(gid), "--init-groups", "env", "-i", ...envArgs, ...argv];
    return capture(fromCgroup === undefined ? setpriv : ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', fromCgroup, ...setpriv], { cwd });
  }
  // The user runs a copy of the binary in the opened-up directory, as it would run an installed
  // one: the repository may be where the user cannot reach it (a root user's clone in /root, 0700).
  const userTsrun = join(dir, "tsrun");
  const tsrun = (args: string[], env: Record<string, string> = {}) => asUser([userTsrun, ...args], bundle, env);
  const tsrunIn = (cgroup: string, args: string[]) => asUser([userTsrun, ...args], bundle, {}, cgroup);

  /** The user's processes on the host, by pid. */
  function userPids(): number[] {
    const pids: number[] = [];
    for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
      try {
        if (statSync(`/proc/${p}`).uid === uid) pids.push(Number(p));
      } catch {
        // gone meanwhile
      }
    }
    return pids;
  }

  function describePid(pid: number): string {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return `${stat.slice(stat.indexOf("(")).split(" ").slice(0, 3).join(" ")} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim()}`;
    } catch {
      return "gone";
    }
  }

  /** What `spec --rootless` wrote, run without a terminal: each test patches a fresh copy. */
  let base: any;
  function setConfig(patch: (spec: any) => void = () => {}): void {
    const spec = structuredClone(base);
    patch(spec);
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
  }

  const stateRoot = () => join(xdg, "tsrun");
  const nothingLeft = (id: string) => {
    const env = { root: stateRoot() } as Env;
    // A zombie holds nothing; pid 1 of this VM reaps late (in the full suite the leftovers
    // script is the subreaper and reaps them).
    return [...leftovers(env, id, bundle), ...userPids().filter((p) => !/^\(.*\) Z /.test(describePid(p))).map((p) => `process ${p} of ${name}: ${describePid(p)}`)];
  };

  beforeAll(() => {
    const add = Bun.spawnSync(["useradd", "--create-home", "--shell", "/bin/sh", name], { stderr: "pipe" });
    if (!add.success) throw new Error(`useradd ${name}: ${add.stderr}`);
    const ids = Bun.spawnSync(["id", "-u", name]).stdout.toString().trim();
    uid = Number(ids);
    gid = Number(Bun.spawnSync(["id", "-g", name]).stdout.toString().trim());
    home = Bun.spawnSync(["sh", "-c", `getent passwd ${name} | cut -d: -f6`]).stdout.toString().trim();
    // What a login manager (pam_systemd) would make: the user's runtime dir, 0700, its own.
    madeRunUser = !existsSync("/run/user");
    mkdirSync("/run/user", { recursive: true, mode: 0o755 });
    xdg = `/run/user/${uid}`;
    mkdirSync(xdg, { mode: 0o700 });
    chownSync(xdg, uid, gid);
    mkdirSync(work);
    chownSync(work, uid, gid);
    copyFileSync(TSRUN, userTsrun);
    chmodSync(userTsrun, 0o755);
    for (const b of [bundle, runcBundle]) {
      mkdirSync(b);
      cpSync(busyboxRootfs(dir), join(b, "rootfs"), { recursive: true, verbatimSymlinks: true });
      Bun.spawnSync(["chown", "-R", `${uid}:${gid}`, b]);
    }
  });

  afterAll(() => {
    // Whatever a failed test left running as the user, by pid, before the user goes.
    for (const pid of userPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    for (let i = 0; i < 100 && userPids().length; i++) Bun.sleepSync(20);
    if (xdg) rmSync(xdg, { recursive: true, force: true });
    if (madeRunUser) rmSync("/run/user", { recursive: true, force: true });
    // -r: the home directory and the mail spool go too.
    if (uid >= 0) Bun.spawnSync(["userdel", "-r", name], { stderr: "ignore" });
    rmSync(dir, { recursive: true, force: true });
  });

  test("spec --rootless writes a config that maps the user to root", () => {
    const r = tsrun(["spec", "--rootless"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(statSync(join(bundle, "config.json")).uid).toBe(uid);
    const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    expect(spec.linux.uidMappings).toEqual([{ containerID: 0, hostID: uid, size: 1 }]);
    expect(spec.linux.gidMappings).toEqual([{ containerID: 0, hostID: gid, size: 1 }]);
    expect(spec.linux.namespaces.map((n: { type: string }) => n.type)).toContain("user");
    spec.process.terminal = false;
    spec.process.args = ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"];
    base = spec;
    setConfig();
  });

  test("run: root in the container, the user on the host; state under $XDG_RUNTIME_DIR/tsrun", () => {
    const r = tsrun(["run", "r1"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("0");
    expect(lines[1]).toBe("0");
    expect(lines[2]!.trim().split(/\s+/)).toEqual(["0", String(uid), "1"]);
    // No cgroup could be made here: said once, as a warning, and the container ran anyway.
    expect(r.stderr).toContain("tsrun: warning: rootless: container r1 runs without any cgroup");
    expect(r.stderr).toContain("EACCES");
    // The default root, made as runc makes its own: the user's, 0700 and sticky.
    const st = statSync(stateRoot());
    expect(st.uid).toBe(uid);
    expect(st.mode & 0o7777).toBe(0o1700);
    expect(nothingLeft("r1")).toEqual([]);
  });

  test("runc runs the same bundle as the same user, with the same answer", () => {
    setConfig();
    cpSync(join(bundle, "config.json"), join(runcBundle, "config.json"));
    chownSync(join(runcBundle, "config.json"), uid, gid);
    const ours = tsrun(["run", "cmp"]);
    const theirs = asUser(["runc", "run", "cmp"], runcBundle);
    expect(theirs.code).toBe(0);
    expect(ours.code).toBe(0);
    expect(ours.stdout).toBe(theirs.stdout);
    // runc's default root is $XDG_RUNTIME_DIR/runc, ours beside it.
    expect(existsSync(join(xdg, "runc"))).toBe(true);
    expect(nothingLeft("cmp")).toEqual([]);
  });

  test("create, state, start, list, kill, delete", () => {
    setConfig((s) => {
      s.process.args = ["sleep", "1000"];
    });
    const c = tsrun(["create", "c1"]);
    expect(c.code).toBe(0);
    const created = JSON.parse(tsrun(["state", "c1"]).stdout);
    expect(created.status).toBe("created");
    // The init is root in its namespace and the user on the host.
    const uids = readFileSync(`/proc/${created.pid}/status`, "utf8").match(/^Uid:\s+(.*)$/m)![1]!.split(/\s+/);
    expect(uids).toEqual([String(uid), String(uid), String(uid), String(uid)]);
    expect(readFileSync(`/proc/${created.pid}/uid_map`, "utf8").trim().split(/\s+/)).toEqual(["0", String(uid), "1"]);
    expect(existsSync(join(stateRoot(), "c1"))).toBe(true);
    expect(tsrun(["start", "c1"]).code).toBe(0);
    expect(JSON.parse(tsrun(["state", "c1"]).stdout).status).toBe("running");
    const list = tsrun(["list", "--format", "json"]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).map((s: { id: string; status: string; owner: string }) => [s.id, s.status, s.owner])).toEqual([["c1", "running", name]]);
    // runc's table: OWNER is the user who made the container, by name.
    expect(tsrun(["list"]).stdout.split("\n")[1]!.trim().split(/\s+/).at(-1)).toBe(name);
    expect(tsrun(["list", "-q"]).stdout).toBe("c1\n");
    // Without a cgroup, what needs one is refused by name (ps too, as runc's fails); kill goes to the init.
    for (const format of ["table", "json"]) {
      const ps = tsrun(["ps", "--format", format, "c1"]);
      expect(ps.code).toBe(1);
      expect(ps.stderr).toContain("unable to get all container pids: container c1 has no cgroup");
      expect(ps.stdout).toBe("");
    }
    const pause = tsrun(["pause", "c1"]);
    expect(pause.code).toBe(1);
    expect(pause.stderr).toContain("has no cgroup");
    expect(tsrun(["kill", "c1", "KILL"]).code).toBe(0);
    for (let i = 0; i < 200 && JSON.parse(tsrun(["state", "c1"]).stdout).status !== "stopped"; i++) Bun.sleepSync(10);
    expect(JSON.parse(tsrun(["state", "c1"]).stdout).status).toBe("stopped");
    expect(tsrun(["delete", "c1"]).code).toBe(0);
    expect(tsrun(["list", "-q"]).stdout).toBe("");
    expect(nothingLeft("c1")).toEqual([]);
  });

  test("kill --all and delete --force of a running container", () => {
    setConfig((s) => {
      s.process.args = ["sleep", "1000"];
    });
    expect(tsrun(["run", "-d", "c2"]).code).toBe(0);
    expect(JSON.parse(tsrun(["state", "c2"]).stdout).status).toBe("running");
    expect(tsrun(["kill", "--all", "c2", "TERM"]).code).toBe(0);
    expect(tsrun(["delete", "--force", "c2"]).code).toBe(0);
    expect(nothingLeft("c2")).toEqual([]);
  });

  test("a cgroup of root's that has the container's name is not the container's: delete leaves it", () => {
    // Root's (a leftover, or another container's at runc's default path for the id): the user's
    // create may not write there, so the container runs in none, and says so in its records.
    const theirs = Object.values(detect().v1).map((h) => join(h.mountpoint, "rc"));
    try {
      for (const d of theirs) mkdirSync(d, { recursive: true });
      setConfig((s) => {
        s.process.args = ["sleep", "1000"];
      });
      const r = tsrun(["run", "-d", "rc"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain("runs without any cgroup");
      const d = tsrun(["delete", "--force", "rc"]);
      expect(d.stderr).toBe("");
      expect(d.code).toBe(0);
      expect(theirs.filter((x) => !existsSync(x))).toEqual([]);
      expect(nothingLeft("rc").filter((x) => !theirs.includes(x.replace(/^cgroup /, "")))).toEqual([]);
    } finally {
      for (const d of theirs) if (existsSync(d)) rmdirSync(d);
    }
  });

  test("exec into a rootless container: root there, the user on the host, no groups to set", () => {
    setConfig((s) => {
      s.process.args = ["sleep", "1000"];
    });
    expect(tsrun(["run", "-d", "c3"]).code).toBe(0);
    const r = tsrun(["exec", "c3", "sh", "-c", "id -u; grep -E '^(Uid|Groups):' /proc/self/status"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0\nUid:\t0\t0\t0\t0\nGroups:\t0 \n");
    expect(tsrun(["exec", "-g", "5", "c3", "true"]).stderr).toContain("cannot set any additional groups in a rootless container");
    expect(tsrun(["delete", "--force", "c3"]).code).toBe(0);
    expect(nothingLeft("c3")).toEqual([]);
  });

  test("a limit needs a cgroup the user may not make: refused, as by runc, and nothing left", () => {
    setConfig((s) => {
      s.process.args = ["true"];
      s.linux.resources = { memory: { limit: 64 * 1024 * 1024 } };
    });
    const r = tsrun(["run", "lim"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/linux/resources/memory/limit: rootless: the container has no memory cgroup");
    expect(nothingLeft("lim")).toEqual([]);
    // runc refuses it too.
    cpSync(join(bundle, "config.json"), join(runcBundle, "config.json"));
    const theirs = asUser(["runc", "run", "lim"], runcBundle);
    expect(theirs.code).not.toBe(0);
    expect(theirs.stderr).toContain("cannot set memory limit: container could not join or create cgroup");
  });

  test("--rootless false: cgroup errors are errors again (runc's words), nothing left", () => {
    setConfig();
    const r = tsrun(["--rootless", "false", "run", "nf"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cgroup mkdir \/sys\/fs\/cgroup\/\S+\/nf: EACCES/);
    expect(nothingLeft("nf")).toEqual([]);
  });

  test("an explicit cgroupsPath the user may not make fails, as with runc", () => {
    setConfig((s) => {
      s.linux.cgroupsPath = "/tsrun-rootless-test/cp";
    });
    const r = tsrun(["run", "cp"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("EACCES");
    expect(nothingLeft("cp")).toEqual([]);
  });

  test("what cannot work unprivileged is refused with the reason", () => {
    // No user namespace: nothing could be set up.
    setConfig((s) => {
      s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== "user");
      delete s.linux.uidMappings;
      delete s.linux.gidMappings;
    });
    let r = tsrun(["run", "bad"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("a rootless container requires a user namespace");
    setConfig((s) => {
      s.linux.uidMappings = [{ containerID: 0, hostID: uid, size: 2 }];
    });
    // More than its own uid: only newuidmap could, which tsrun does not use.
    r = tsrun(["run", "bad"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/linux/uidMappings");
    expect(r.stderr).toContain("an unprivileged user may map only its own uid");
    setConfig((s) => {
      s.process.user.additionalGids = [1];
    });
    r = tsrun(["run", "bad"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot set any additional groups in a rootless container");
    expect(nothingLeft("bad")).toEqual([]);
  });

  test("a cgroup2 subtree delegated to the user: the container gets its cgroup there, and ps, pause, kill --all use it", () => {
    const unified = detect().unified;
    expect(unified).not.toBeNull();
    // What a delegation (systemd's Delegate=yes) gives: a directory and its cgroup.procs and
    // cgroup.subtree_control owned by the user; tsrun runs in a leaf below it.
    const deleg = join(unified!.mountpoint, `tsrun-rootless-${process.pid}`);
    const leaf = join(deleg, "leaf");
    mkdirSync(leaf, { recursive: true });
    // What tsrun leaves to its parent (its cgroup warm-up helper, the container's init once
    // killed) becomes a zombie of pid 1, which on this VM reaps late; a zombie keeps its cgroup2
    // cgroup busy. For this test the test process adopts and reaps them, as an engine would.
    prctl(PR.SET_CHILD_SUBREAPER, 1);
    const reapZombies = () => {
      for (const task of readdirSync("/proc/self/task"))
        for (const pid of readFileSync(`/proc/self/task/${task}/children`, "utf8").split(" ").filter(Boolean).map(Number))
          if (describePid(pid).match(/^\(.*\) Z /)) waitpid(pid, WNOHANG);
    };
    try {
      for (const p of [deleg, join(deleg, "cgroup.procs"), join(deleg, "cgroup.subtree_control"), leaf, join(leaf, "cgroup.procs")]) chownSync(p, uid, gid);
      setConfig((s) => {
        s.process.args = ["sh", "-c", "sleep 1000 & exec sleep 1001"];
      });
      const r = tsrunIn(leaf, ["run", "-d", "dg"]);
      expect(r.code).toBe(0);
      // The v1 hierarchies are root's: dropped, and said so; the cgroup2 one is the user's.
      expect(r.stderr).toContain("runs without its cpu");
      expect(r.stderr).not.toContain("any cgroup");
      const own = join(deleg, "dg");
      const state = JSON.parse(tsrun(["state", "dg"]).stdout);
      expect(readFileSync(join(own, "cgroup.procs"), "utf8")).toContain(String(state.pid));
      const ps = tsrunIn(leaf, ["ps", "--format", "json", "dg"]);
      expect(ps.code).toBe(0);
      expect(JSON.parse(ps.stdout)).toHaveLength(2);
      expect(tsrunIn(leaf, ["pause", "dg"]).code).toBe(0);
      expect(JSON.parse(tsrun(["state", "dg"]).stdout).status).toBe("paused");
      expect(tsrunIn(leaf, ["resume", "dg"]).code).toBe(0);
      expect(tsrunIn(leaf, ["kill", "--all", "dg", "KILL"]).code).toBe(0);
      for (let i = 0; i < 200 && JSON.parse(tsrun(["state", "dg"]).stdout).status !== "stopped"; i++) Bun.sleepSync(10);
      expect(tsrunIn(leaf, ["delete", "dg"]).code).toBe(0);
      expect(existsSync(own)).toBe(false);
      expect(nothingLeft("dg")).toEqual([]);
    } finally {
      prctl(PR.SET_CHILD_SUBREAPER, 0);
      for (const d of [join(deleg, "dg"), leaf, deleg]) {
        // EBUSY while a process still leaves it: retried briefly.
        for (let i = 0; i < 100 && existsSync(d); i++) {
          reapZombies();
          try {
            rmdirSync(d);
          } catch {
            Bun.sleepSync(10);
          }
        }
      }
    }
  });

  test("without XDG_RUNTIME_DIR the default root is /run/tsrun, and the error says what to set", () => {
    setConfig();
    const r = tsrun(["run", "nox"], { XDG_RUNTIME_DIR: "" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot create state directory /run/tsrun");
    expect(r.stderr).toContain("EACCES");
    expect(r.stderr).toContain("set XDG_RUNTIME_DIR");
  });
});
