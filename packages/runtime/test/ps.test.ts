// ps with real containers: the pids of the container's cgroup (json), the host's ps(1) cut down to
// them (table, with ps options after the id as runc passes them), compared with Debian's runc on
// the same bundle; and the pure filter of ps output.
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { leftovers, testEnv } from "./containers.ts";
import { haveRunc, runcIn } from "./runc-peer.ts";
import { filterPsOutput } from "../src/container/ps.ts";

const env = testEnv();
const runc = runcIn(env);
afterEach(() => {
  for (const id of env.tsrun(["list", "-q"]).stdout.split("\n").filter(Boolean)) env.tsrun(["delete", "--force", id]);
});
const PROGRAM = ["sh", "-c", "sleep 31 & sleep 32 & wait"];

/** Every pid in the container's cgroup, from the host (the v1 pids controller or cgroup2). */
function hostPids(pid: number): number[] {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const v1 = lines.find((l) => l.split(":")[1] === "pids");
  const dir = v1 ? `/sys/fs/cgroup/pids${v1.split(":")[2]}` : `/sys/fs/cgroup${lines.find((l) => l.startsWith("0::"))!.slice(3)}`;
  return readFileSync(`${dir}/cgroup.procs`, "utf8").trim().split("\n").map(Number).sort((a, b) => a - b);
}

function waitForChildren(id: string, n: number): number[] {
  for (let i = 0; i < 300; i++) {
    const out = env.tsrun(["ps", "--format", "json", id]).stdout.trim();
    const pids = out === "null" ? [] : (JSON.parse(out) as number[]);
    if (pids.length >= n) return pids;
    Bun.sleepSync(10);
  }
  throw new Error(`${id}: fewer than ${n} processes`);
}

describe("ps", () => {
  test("--format json: the pids of the container's cgroup, init first", () => {
    const b = env.bundle("psj", (s) => (s.process.args = PROGRAM));
    expect(env.tsrun(["run", "-d", "--bundle", b, "psj"]).code).toBe(0);
    const init = JSON.parse(env.tsrun(["state", "psj"]).stdout).pid;
    const pids = waitForChildren("psj", 3);
    expect([...pids].sort((a, b) => a - b)).toEqual(hostPids(init));
    expect(pids).toContain(init);
    expect(pids.length).toBe(3);
    expect(env.tsrun(["ps", "-f", "json", "psj"]).stdout).toBe(`${JSON.stringify(pids)}\n`);
    // What each pid runs, seen from the host.
    const cmds = pids.map((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ").trim()).sort();
    expect(cmds).toEqual(["sh -c sleep 31 & sleep 32 & wait", "sleep 31", "sleep 32"]);
    expect(env.tsrun(["delete", "--force", "psj"]).code).toBe(0);
    expect(leftovers(env, "psj", b)).toEqual([]);
  });

  test("the table: ps -ef by default, ps options after the id (with or without --), as runc prints it", () => {
    const b = env.bundle("pst", (s) => (s.process.args = PROGRAM));
    expect(env.tsrun(["run", "-d", "--bundle", b, "pst"]).code).toBe(0);
    const pids = waitForChildren("pst", 3);
    const table = env.tsrun(["ps", "pst"]);
    expect(table.stderr).toBe("");
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
    expect(lines.length).toBe(4);
    expect(lines.slice(1).map((l) => Number(l.trim().split(/\s+/)[1])).sort()).toEqual([...pids].sort());

    const custom = env.tsrun(["ps", "pst", "-o", "pid,stat,args"]);
    expect(custom.stdout.split("\n")[0]).toMatch(/^\s*PID STAT COMMAND$/);
    const args = (out: string) => out.trimEnd().split("\n").slice(1).map((l) => l.trim().split(/\s+/).slice(2).join(" ")).sort();
    expect(args(custom.stdout)).toEqual(["sh -c sleep 31 & sleep 32 & wait", "sleep 31", "sleep 32"]);
    expect(args(env.tsrun(["ps", "pst", "--", "-o", "pid,stat,args"]).stdout)).toEqual(args(custom.stdout));

    if (haveRunc) {
      // The same bundle under runc: the same header and the same processes.
      expect(runc.run(["run", "-d", "--bundle", b, "rcpst"]).code).toBe(0);
      try {
        let theirs = "";
        for (let i = 0; i < 300 && args(theirs).length < 3; i++, Bun.sleepSync(10)) theirs = runc.run(["ps", "rcpst", "-o", "pid,stat,args"]).stdout;
        expect(theirs.split("\n")[0]).toBe(custom.stdout.split("\n")[0]!);
        expect(args(theirs)).toEqual(args(custom.stdout));
        expect(runc.run(["ps", "rcpst"]).stdout.split("\n")[0]).toBe(lines[0]!);
      } finally {
        runc.remove("rcpst");
      }
      expect(leftovers(env, "rcpst")).toEqual([]);
    }
    expect(env.tsrun(["delete", "--force", "pst"]).code).toBe(0);
    expect(leftovers(env, "pst", b)).toEqual([]);
  });

  test("a stopped container: the header alone, json null (as runc)", () => {
    const b = env.bundle("pss", (s) => (s.process.args = ["true"]));
    expect(env.tsrun(["run", "--bundle", b, "--keep", "pss"]).code).toBe(0);
    expect(JSON.parse(env.tsrun(["state", "pss"]).stdout).status).toBe("stopped");
    expect(env.tsrun(["ps", "-f", "json", "pss"]).stdout).toBe("null\n");
    const t = env.tsrun(["ps", "pss"]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD\n$/);
    if (haveRunc) {
      expect(runc.run(["run", "--keep", "--bundle", b, "rcpss"]).code).toBe(0);
      expect(runc.run(["ps", "-f", "json", "rcpss"]).stdout).toBe("null\n");
      expect(runc.run(["ps", "rcpss"]).stdout).toBe(t.stdout);
      runc.run(["delete", "rcpss"]);
      expect(leftovers(env, "rcpss")).toEqual([]);
    }
    expect(env.tsrun(["delete", "pss"]).code).toBe(0);
    expect(leftovers(env, "pss", b)).toEqual([]);
  });

  test("bad input: unknown format, unknown id, ps options without PID, a failing ps", () => {
    const b = env.bundle("psbad", (s) => (s.process.args = ["sleep", "30"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, "psbad"]).code).toBe(0);
    const fmt = env.tsrun(["ps", "--format", "xml", "psbad"]);
    expect(fmt.code).toBe(1);
    expect(fmt.stderr).toContain("invalid format option");
    const none = env.tsrun(["ps", "nosuch"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("container does not exist: nosuch");
    const noPid = env.tsrun(["ps", "psbad", "-o", "stat"]);
    expect(noPid.code).toBe(1);
    expect(noPid.stderr).toContain("couldn't find PID field in ps output");
    const bad = env.tsrun(["ps", "psbad", "--no-such-ps-option"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ps --no-such-ps-option: exit status \d+: .+/);
    expect(env.tsrun(["ps"]).stderr).toContain("missing argument: ID");
    expect(JSON.parse(env.tsrun(["state", "psbad"]).stdout).status).toBe("running");
    expect(env.tsrun(["delete", "--force", "psbad"]).code).toBe(0);
    expect(leftovers(env, "psbad", b)).toEqual([]);
  });
});

describe("filterPsOutput", () => {
  const out = "  PID TTY      STAT   TIME COMMAND\n    1 ?        Ss     0:01 init\n   42 ?        S      0:00 sleep 1\n  420 ?        S      0:00 x 42\n";
  test("keeps the header and the lines of the given pids, by the PID column wherever it is", () => {
    expect(filterPsOutput(out, [42])).toBe("  PID TTY      STAT   TIME COMMAND\n   42 ?        S      0:00 sleep 1\n");
    expect(filterPsOutput("USER PID CMD\nroot 7 a\nroot 8 b\n", [8, 9])).toBe("USER PID CMD\nroot 8 b\n");
    expect(filterPsOutput(out, [])).toBe("  PID TTY      STAT   TIME COMMAND\n");
  });
  test("no PID column, or a line whose PID is not a number, is an error", () => {
    expect(() => filterPsOutput("STAT\nS\n", [1])).toThrow("couldn't find PID field in ps output");
    expect(() => filterPsOutput("PID CMD\nx y\n", [1])).toThrow("unable to parse pid");
  });
});
