// createContainer and startContainer hooks, which tsrun runs through the executor in the init's
// namespaces (hooks/container.ts): where they run, as whom, what they get, and what a failure
// or a timeout leaves (nothing, and a clear message).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";

const env = testEnv();
const NS = ["mnt", "pid", "net", "uts", "ipc", "user", "cgroup"];
const sh = (script: string, timeout?: number) => ({ path: "/bin/sh", args: ["sh", "-c", script], ...(timeout ? { timeout } : {}) });
const initPid = (id: string): number => JSON.parse(env.tsrun(["state", id]).stdout).pid;

describe("createContainer", () => {
  test("runs in every namespace and the cgroups of the init, before pivot_root, with only fds 0-2, the state on stdin", () => {
    const id = "cc-where";
    // cwd: the rootfs at its host path, so these land in it
    const script = `for n in ${NS.join(" ")}; do echo $n $(readlink /proc/self/ns/$n); done > ./ns; cat /proc/self/cgroup > ./cg; ls /proc/self/fd > ./fds; cat > ./state; echo $$ > ./pid`;
    const b = env.bundle(id, (s) => (s.hooks = { createContainer: [sh(script)] }));
    const r = env.tsrun(["create", "--bundle", b, id]);
    expect([r.stderr, r.code]).toEqual(["", 0]);
    try {
      const pid = initPid(id);
      const rootfs = join(b, "rootfs");
      const mine = Object.fromEntries(readFileSync(join(rootfs, "ns"), "utf8").trim().split("\n").map((l) => l.split(" ")));
      expect(mine).toEqual(Object.fromEntries(NS.map((n) => [n, readlinkSync(`/proc/${pid}/ns/${n}`)])));
      expect(readFileSync(join(rootfs, "cg"), "utf8")).toBe(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
      // ls's own directory fd is the 3
      expect(readFileSync(join(rootfs, "fds"), "utf8").trim().split("\n")).toEqual(["0", "1", "2", "3"]);
      const state = JSON.parse(readFileSync(join(rootfs, "state"), "utf8"));
      expect([state.id, state.status, state.pid, state.bundle]).toEqual([id, "creating", pid, b]);
      // a process of the container's pid namespace, beside its init (pid 1)
      expect(Number(readFileSync(join(rootfs, "pid"), "utf8"))).toBeGreaterThan(1);
    } finally {
      env.tsrun(["delete", "--force", id]);
    }
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("in a user namespace: root of the container's, with its mapping (startContainer: the process's user)", () => {
    const id = "cc-userns";
    const b = env.bundle(id, (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.mounts = s.mounts.filter((m: any) => m.type !== "cgroup" && m.type !== "sysfs");
      s.root.readonly = false;
      s.process.user = { uid: 7, gid: 7 };
      s.hooks = { createContainer: [sh("{ id -u; id -g; cat /proc/self/uid_map; } > ./who")], startContainer: [sh("{ id -u; cat /proc/self/uid_map; } > /tmp/who")] };
    });
    Bun.spawnSync(["chown", "-R", "100000:100000", join(b, "rootfs")]);
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect([r.stderr, r.code]).toEqual(["", 0]);
    const lines = (f: string) => readFileSync(join(b, "rootfs", f), "utf8").split("\n").map((l) => l.trim().split(/\s+/).join(" "));
    expect(lines("who")).toEqual(["0", "0", "0 100000 65536", ""]);
    expect(lines("tmp/who")).toEqual(["7", "0 100000 65536", ""]);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("a hook past its timeout is killed; a missing hook is named; create fails and leaves nothing", () => {
    for (const [id, hook, message] of [
      ["cc-slow", { path: "/bin/sleep", args: ["sleep", "30"], timeout: 1 }, "container cc-slow: error running hook #0 (createContainer /bin/sleep): killed after 1 s (its timeout)"],
      ["cc-missing", { path: "/no/such/hook" }, "container cc-missing: error running hook #0 (createContainer /no/such/hook): exec /no/such/hook failed: ENOENT"],
      // A signal by name and the C library's words for it, as runc's "signal: bad system call".
      ["cc-sys", sh("echo dying >&2; kill -SYS $$"), "container cc-sys: error running hook #0 (createContainer /bin/sh): killed by SIGSYS (bad system call): dying"],
    ] as const) {
      const b = env.bundle(id, (s) => (s.hooks = { createContainer: [hook] }));
      const t0 = Date.now();
      const r = env.tsrun(["create", "--bundle", b, id]);
      expect(r.code).toBe(1);
      expect(r.stderr).toStartWith(`tsrun: ${message}`);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(leftovers(env, id, b)).toEqual([]);
    }
  });
});

describe("runtime-namespace hooks", () => {
  test("a prestart hook killed by a signal: the signal by name and its words, then its output", () => {
    const id = "pre-sys";
    const b = env.bundle(id, (s) => (s.hooks = { prestart: [sh("echo dying >&2; kill -SYS $$")] }));
    const r = env.tsrun(["create", "--bundle", b, id]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("prestart hook #0 (/bin/sh) failed: killed by SIGSYS (bad system call): dying");
    expect(leftovers(env, id, b)).toEqual([]);
  });
});

describe("startContainer", () => {
  test("runs as the container's process will: its user, cwd and root, after create, before the program", () => {
    const id = "sc-who";
    const b = env.bundle(id, (s) => {
      s.root.readonly = false;
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.cwd = "/tmp";
      s.process.args = ["sh", "-c", "echo program >> /tmp/order"];
      // the paths are the container's: /tmp is the rootfs's
      s.hooks = { startContainer: [sh("{ id -u; pwd; cat; echo; } > /tmp/who; echo hook >> /tmp/order")] };
    });
    expect(env.tsrun(["create", "--bundle", b, id]).code).toBe(0);
    const pid = initPid(id);
    expect(existsSync(join(b, "rootfs/tmp/who"))).toBe(false);
    const r = env.tsrun(["start", id]);
    expect([r.stderr, r.code]).toEqual(["", 0]);
    for (let i = 0; i < 200 && !readFileSync(join(b, "rootfs/tmp/order"), "utf8").includes("program"); i++) Bun.sleepSync(10);
    expect(readFileSync(join(b, "rootfs/tmp/order"), "utf8")).toBe("hook\nprogram\n");
    const [uid, cwd, state] = readFileSync(join(b, "rootfs/tmp/who"), "utf8").split("\n");
    expect([uid, cwd]).toEqual(["1000", "/tmp"]);
    expect(JSON.parse(state!)).toMatchObject({ id, status: "created", pid });
    env.tsrun(["delete", "--force", id]);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("a hook past its timeout fails start, the container stops, and delete leaves nothing", () => {
    const id = "sc-slow";
    const b = env.bundle(id, (s) => (s.hooks = { startContainer: [{ path: "/bin/sleep", args: ["sleep", "30"], timeout: 1 }] }));
    expect(env.tsrun(["create", "--bundle", b, id]).code).toBe(0);
    const r = env.tsrun(["start", id]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("tsrun: container sc-slow: error running hook #0 (startContainer /bin/sleep): killed after 1 s (its timeout)\n");
    expect(JSON.parse(env.tsrun(["state", id]).stdout).status).toBe("stopped");
    expect(env.tsrun(["delete", id]).code).toBe(0);
    expect(leftovers(env, id, b)).toEqual([]);
  });
});
