// pause and resume with real containers (root, busybox): the freezer seen from the host, a
// counter inside that stops and goes on, `state`/`list` showing paused, and kill/delete of a
// paused container as runc 1.1.5 does them (compared by hand: a catchable signal waits for
// resume, SIGKILL thaws; delete needs --force and then leaves nothing).
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";

const env = testEnv();
// A failed assertion must not leave its container running.
afterEach(() => {
  for (const id of env.tsrun(["list", "-q"]).stdout.split("\n").filter(Boolean)) env.tsrun(["delete", "--force", id]);
});
const COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done"];
const state = (id: string) => JSON.parse(env.tsrun(["state", id]).stdout);
const count = (b: string) => Number(readFileSync(join(b, "rootfs/tmp/count"), "utf8").trim() || "0");

/** The container's v1 freezer directory (or its cgroup2 one), from the init's /proc/<pid>/cgroup. */
function freezerFile(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const v1 = lines.find((l) => l.split(":")[1] === "freezer");
  if (v1) return `/sys/fs/cgroup/freezer${v1.split(":")[2]}/freezer.state`;
  return `/sys/fs/cgroup${lines.find((l) => l.startsWith("0::"))!.slice(3)}/cgroup.freeze`;
}

function waitFor(what: () => boolean, ms = 3000): boolean {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) return false;
    Bun.sleepSync(10);
  }
  return true;
}

function runCounter(id: string): { b: string; pid: number } {
  const b = env.bundle(id, (s) => {
    s.process.args = COUNTER;
    s.root.readonly = false;
  });
  expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
  expect(waitFor(() => existsSync(join(b, "rootfs/tmp/count")) && count(b) > 0)).toBe(true);
  return { b, pid: state(id).pid };
}

describe("pause and resume", () => {
  test("pause freezes every process (the counter stops, the host sees the freezer frozen); resume goes on", () => {
    const { b, pid } = runCounter("pz");
    const p = env.tsrun(["pause", "pz"]);
    expect(p.stderr).toBe("");
    expect(p.code).toBe(0);
    expect(state("pz")).toMatchObject({ status: "paused", pid });
    expect(env.tsrun(["list"]).stdout).toMatch(/^pz\s+\d+\s+paused\s/m);
    expect(JSON.parse(env.tsrun(["list", "--format", "json"]).stdout)[0].status).toBe("paused");
    const file = freezerFile(pid);
    expect(readFileSync(file, "utf8").trim()).toBe(file.endsWith("freezer.state") ? "FROZEN" : "1");
    // A frozen task sleeps in the freezer (D on v1): state letter from the host's /proc.
    expect(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]![0]).toMatch(/[DS]/);
    const frozenAt = count(b);
    Bun.sleepSync(300);
    expect(count(b)).toBe(frozenAt);

    expect(env.tsrun(["resume", "pz"]).code).toBe(0);
    expect(state("pz").status).toBe("running");
    expect(readFileSync(file, "utf8").trim()).toBe(file.endsWith("freezer.state") ? "THAWED" : "0");
    expect(waitFor(() => count(b) > frozenAt + 3)).toBe(true);
    expect(env.tsrun(["delete", "--force", "pz"]).code).toBe(0);
    expect(leftovers(env, "pz", b)).toEqual([]);
  });

  test("errors as runc's: pause of a paused or stopped container, resume of a running or stopped one, unknown ids", () => {
    const { b } = runCounter("pzerr");
    const resumeRunning = env.tsrun(["resume", "pzerr"]);
    expect(resumeRunning.code).toBe(1);
    expect(resumeRunning.stderr).toContain("container not paused");
    expect(env.tsrun(["pause", "pzerr"]).code).toBe(0);
    const twice = env.tsrun(["pause", "pzerr"]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("container pzerr is already paused");
    expect(state("pzerr").status).toBe("paused");
    expect(env.tsrun(["resume", "pzerr"]).code).toBe(0);
    expect(env.tsrun(["kill", "pzerr", "KILL"]).code).toBe(0);
    expect(waitFor(() => state("pzerr").status === "stopped")).toBe(true);
    const pauseStopped = env.tsrun(["pause", "pzerr"]);
    expect(pauseStopped.code).toBe(1);
    expect(pauseStopped.stderr).toContain("container not running");
    const resumeStopped = env.tsrun(["resume", "pzerr"]);
    expect(resumeStopped.code).toBe(1);
    expect(resumeStopped.stderr).toContain("container not paused");
    expect(env.tsrun(["delete", "pzerr"]).code).toBe(0);
    expect(leftovers(env, "pzerr", b)).toEqual([]);
    for (const cmd of ["pause", "resume"]) {
      const r = env.tsrun([cmd, "nosuch"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("container does not exist: nosuch");
      expect(env.tsrun([cmd]).code).not.toBe(0);
    }
  });

  test("a created container can be paused (as runc): resume gives it back created, and it starts", () => {
    const b = env.bundle("pzc", (s) => {
      s.process.args = COUNTER;
      s.root.readonly = false;
    });
    expect(env.tsrun(["create", "--bundle", b, "pzc"]).code).toBe(0);
    expect(env.tsrun(["pause", "pzc"]).code).toBe(0);
    expect(state("pzc").status).toBe("paused");
    expect(env.tsrun(["resume", "pzc"]).code).toBe(0);
    expect(state("pzc").status).toBe("created");
    expect(env.tsrun(["start", "pzc"]).code).toBe(0);
    expect(waitFor(() => existsSync(join(b, "rootfs/tmp/count")) && count(b) > 0)).toBe(true);
    expect(env.tsrun(["delete", "--force", "pzc"]).code).toBe(0);
    expect(leftovers(env, "pzc", b)).toEqual([]);
  });

  test("kill of a paused container: a catchable signal is delivered on resume, SIGKILL thaws and kills at once", () => {
    const b = env.bundle("pzk", (s) => (s.process.args = ["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.02; done"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, "pzk"]).code).toBe(0);
    Bun.sleepSync(100); // the trap is set
    expect(env.tsrun(["pause", "pzk"]).code).toBe(0);
    expect(env.tsrun(["kill", "pzk", "TERM"]).code).toBe(0);
    Bun.sleepSync(300);
    expect(state("pzk").status).toBe("paused");
    expect(env.tsrun(["resume", "pzk"]).code).toBe(0);
    expect(waitFor(() => state("pzk").status === "stopped")).toBe(true);
    expect(env.tsrun(["delete", "pzk"]).code).toBe(0);

    const { b: b2, pid } = runCounter("pzk9");
    expect(env.tsrun(["pause", "pzk9"]).code).toBe(0);
    expect(env.tsrun(["kill", "pzk9", "KILL"]).code).toBe(0);
    expect(waitFor(() => state("pzk9").status === "stopped")).toBe(true);
    expect(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ")).toBe(false);
    expect(env.tsrun(["delete", "pzk9"]).code).toBe(0);
    expect(leftovers(env, "pzk", b)).toEqual([]);
    expect(leftovers(env, "pzk9", b2)).toEqual([]);
  });

  test("kill --all of a paused container with SIGKILL empties it", () => {
    const { b } = runCounter("pzka");
    expect(env.tsrun(["pause", "pzka"]).code).toBe(0);
    expect(env.tsrun(["kill", "--all", "pzka", "KILL"]).code).toBe(0);
    expect(waitFor(() => state("pzka").status === "stopped")).toBe(true);
    expect(env.tsrun(["delete", "pzka"]).code).toBe(0);
    expect(leftovers(env, "pzka", b)).toEqual([]);
  });

  test("delete of a paused container needs --force (the message says so; nothing changes); --force leaves nothing", () => {
    const { b, pid } = runCounter("pzd");
    expect(env.tsrun(["pause", "pzd"]).code).toBe(0);
    const del = env.tsrun(["delete", "pzd"]);
    expect(del.code).toBe(1);
    expect(del.stderr).toContain("cannot delete container pzd that is not stopped: paused (use `delete --force` to kill and delete it)");
    expect(state("pzd")).toMatchObject({ status: "paused", pid });
    const t0 = Date.now();
    const force = env.tsrun(["delete", "--force", "pzd"]);
    expect(force.stderr).toBe("");
    expect(force.code).toBe(0);
    // Thawed to die, not left to the 10 s wait for a process that cannot exit.
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(leftovers(env, "pzd", b)).toEqual([]);
  });
});
