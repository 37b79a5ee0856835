// delete --force after the container's state directory is damaged: every file in it truncated,
// garbage or missing, in every combination for state.json and cgroup.json. The container must
// still be found (its cgroup, its processes) and nothing of it may be left, for the default
// cgroup (derived from the id) and for a custom linux.cgroupsPath (which cannot be).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const env = testEnv();
const CUSTOM_PARENT = "tsrun-test-custom";

/** The parent the custom cgroupsPaths made in each hierarchy (delete removes only the leaf). */
function removeCustomParent(): void {
  for (const base of ["/sys/fs/cgroup", ...readdirSync("/sys/fs/cgroup").map((c) => join("/sys/fs/cgroup", c))]) {
    const d = join(base, CUSTOM_PARENT);
    if (existsSync(d)) rmdirSync(d);
  }
}

afterAll(removeCustomParent);

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");

type Damage = "truncated" | "garbage" | "missing";
const DAMAGES: Damage[] = ["truncated", "garbage", "missing"];

function damage(file: string, how: Damage): void {
  if (!existsSync(file)) throw new Error(`${file} should exist before it is damaged`);
  if (how === "missing") unlinkSync(file);
  else if (how === "truncated") writeFileSync(file, readFileSync(file, "utf8").slice(0, 7));
  else writeFileSync(file, "\x00\xff{{ not json at all");
}

/** The cgroup directories of a process, as the host sees them (every hierarchy). */
function cgroupDirs(pid: number): string[] {
  const dirs: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n")) {
    const [, ctl, path] = line.split(":") as [string, string, string];
    const name = ctl === "" ? "unified" : ctl.replace(/^name=/, "");
    for (const base of [join("/sys/fs/cgroup", name), "/sys/fs/cgroup"]) {
      const d = join(base, path);
      if (path !== "/" && existsSync(d) && statSync(d).isDirectory() && existsSync(join(d, "cgroup.procs"))) {
        dirs.push(d);
        break;
      }
    }
  }
  return dirs;
}

function runAndDamage(id: string, stateHow: Damage, cgroupHow: Damage, cgroupsPath?: string) {
  const b = env.bundle(id, (s) => {
    s.process.args = ["sh", "-c", "sleep 60 & sleep 60"];
    if (cgroupsPath) s.linux.cgroupsPath = cgroupsPath;
  });
  const r = env.tsrun(["run", "-d", "--bundle", b, id]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid as number;
  const dirs = cgroupDirs(pid);
  expect(dirs.length).toBeGreaterThan(0);
  if (cgroupsPath) for (const d of dirs) expect(d).toEndWith(cgroupsPath);
  const stateDir = join(env.root, id);
  damage(join(stateDir, "state.json"), stateHow);
  damage(join(stateDir, "cgroup.json"), cgroupHow);
  // Anything else the directory holds is garbage too.
  for (const f of readdirSync(stateDir)) if (f !== "state.json" && f !== "cgroup.json") writeFileSync(join(stateDir, f), "garbage");
  return { b, pid, dirs };
}

function expectNothingLeft(id: string, b: string, pid: number, dirs: string[]) {
  for (let i = 0; i < 200 && alive(pid); i++) Bun.sleepSync(5);
  expect(alive(pid)).toBe(false);
  expect(dirs.filter((d) => existsSync(d))).toEqual([]);
  expect(leftovers(env, id, b)).toEqual([]);
  expect(readdirSync(env.root).filter((f) => f.includes(id))).toEqual([]);
}

describe("delete --force after the state directory is damaged", () => {
  for (const stateHow of DAMAGES)
    for (const cgroupHow of DAMAGES)
      for (const custom of [false, true])
        test(`state.json ${stateHow}, cgroup.json ${cgroupHow}, ${custom ? "custom cgroupsPath" : "default cgroup"}`, () => {
          const id = `dmg-${stateHow.slice(0, 4)}-${cgroupHow.slice(0, 4)}${custom ? "-c" : ""}`;
          const { b, pid, dirs } = runAndDamage(id, stateHow, cgroupHow, custom ? `/${CUSTOM_PARENT}/${id}-cg` : undefined);
          expect(env.tsrun(["state", id]).code).toBe(1);
          const d = env.tsrun(["delete", "--force", id]);
          expect(d.stderr).toBe("");
          expect(d.code).toBe(0);
          expectNothingLeft(id, b, pid, dirs);
          if (custom) removeCustomParent();
        });

  test("with every record gone, the cgroup is found from the id: derived, or from a process in it", () => {
    for (const elsewhere of [false, true]) {
      const id = `dmg-none${elsewhere ? "-elsewhere" : ""}`;
      const { b, pid, dirs } = runAndDamage(id, "missing", "missing");
      rmSync(join(env.root, `cgroup@${id}.json`));
      let argv = [TSRUN, "--root", env.root, "delete", "--force", id];
      // Run from another cgroup than the create: the default path derived from the id (relative
      // to tsrun's own cgroup) then names nothing, and only the process scan finds the container.
      const other = existsSync("/sys/fs/cgroup/freezer") ? "/sys/fs/cgroup/freezer/tsrun-test-other" : "/sys/fs/cgroup/tsrun-test-other";
      if (elsewhere) {
        mkdirSync(other);
        argv = ["sh", "-c", `echo $$ > ${other}/cgroup.procs && exec "$@"`, "sh", ...argv];
      }
      try {
        const d = Bun.spawnSync(argv, { stderr: "pipe" });
        expect(d.stderr.toString()).toBe("");
        expect(d.exitCode).toBe(0);
      } finally {
        if (elsewhere) rmdirSync(other);
      }
      expectNothingLeft(id, b, pid, dirs);
    }
  });

  test("a paused container with both records garbage is thawed, killed and removed", () => {
    const id = "dmg-paused";
    const b = env.bundle(id, (s) => (s.process.args = ["sleep", "60"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid as number;
    const dirs = cgroupDirs(pid);
    expect(env.tsrun(["pause", id]).code).toBe(0);
    damage(join(env.root, id, "state.json"), "garbage");
    damage(join(env.root, id, "cgroup.json"), "garbage");
    expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
    expectNothingLeft(id, b, pid, dirs);
  });

  test("a record that names a hierarchy's root is not trusted: nothing outside the container is touched", () => {
    const id = "dmg-root";
    const b = env.bundle(id, (s) => (s.process.args = ["sleep", "60"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid as number;
    const dirs = cgroupDirs(pid);
    const freezer = "/sys/fs/cgroup/freezer";
    const hostile = existsSync(freezer) ? { version: 1, mode: "v1", paths: { freezer } } : { version: 1, mode: "v2", paths: { "": "/sys/fs/cgroup" } };
    damage(join(env.root, id, "state.json"), "garbage");
    writeFileSync(join(env.root, id, "cgroup.json"), JSON.stringify(hostile));
    writeFileSync(join(env.root, `cgroup@${id}.json`), JSON.stringify(hostile));
    // A process of this test run, in the hierarchy's root cgroup like most of the host.
    const bystander = Bun.spawn(["sleep", "30"]);
    try {
      expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
      expect(alive(bystander.pid)).toBe(true);
      expectNothingLeft(id, b, pid, dirs);
    } finally {
      bystander.kill(9);
    }
  });
});
