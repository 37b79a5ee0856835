// checkpoint and restore: runc's flags parse, and the command fails with what is missing (CRIU,
// the kernel features `criu check` wants, or tsrun's support), leaving the container as it was.
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const env = testEnv();
// Cgroups are named after the ids and shared by the whole host: a run beside another of this file
// must not meet its containers.
const S = process.pid.toString(36);
const ids: string[] = [];
// After each test, not all: testEnv's own afterAll removes the state root, which would leave the
// containers running with nothing to find them by.
afterEach(() => {
  for (const id of ids.splice(0)) expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
});

/** A stand-in for criu whose `check` answers as told: the real one is not installed here. */
function fakeCriu(name: string, script: string): string {
  const dir = join(env.dir, `criu-${name}`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "criu");
  writeFileSync(path, `#!/bin/sh\n${script}\n`);
  chmodSync(path, 0o755);
  return path;
}

const FAILS_CHECK = fakeCriu("fails", `[ "$1" = check ] || exit 9\necho "Error (criu/cr-check.c:1234): Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP" >&2\necho "Looks bad." >&2\nexit 1`);
const PASSES_CHECK = fakeCriu("passes", `[ "$1" = check ] || exit 9\necho "Looks good."`);

function running(id: string): { pid: number; b: string } {
  const b = env.bundle(id, (s) => (s.process.args = ["sleep", "60"]));
  expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
  ids.push(id);
  return { pid: JSON.parse(env.tsrun(["state", id]).stdout).pid, b };
}

function expectUntouched(id: string, pid: number): void {
  const st = JSON.parse(env.tsrun(["state", id]).stdout);
  expect(st.status).toBe("running");
  expect(st.pid).toBe(pid);
  expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\x0060\x00");
}

describe("checkpoint", () => {
  test("without CRIU: says it is not installed and how to get it; the container runs on, same pid", () => {
    const { pid } = running(`cp-none-${S}`);
    const img = join(env.dir, "cp-none-img");
    for (const criu of [["--criu", join(env.dir, "no-such-criu")], ["--criu", "no-such-criu-anywhere"]]) {
      const r = env.tsrun([...criu, "checkpoint", "--image-path", img, "--leave-running", "--tcp-established", "--manage-cgroups-mode", "soft", "--empty-ns", "network", `cp-none-${S}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("cannot checkpoint: CRIU is not installed");
      expect(r.stderr).toContain("apt-get install criu");
      expectUntouched(`cp-none-${S}`, pid);
    }
    expect(existsSync(img)).toBe(false);
  });

  test("when `criu check` fails: says so with CRIU's own words; the container runs on", () => {
    const { pid } = running(`cp-check-${S}`);
    const r = env.tsrun(["--criu", FAILS_CHECK, "checkpoint", `cp-check-${S}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot checkpoint: \`${FAILS_CHECK} check\` exited with status 1: this kernel lacks what CRIU needs`);
    expect(r.stderr).toContain("Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP");
    expectUntouched(`cp-check-${S}`, pid);
  });

  test("when CRIU passes its check: refused as not implemented, never a fake success; the container runs on", () => {
    const { pid } = running(`cp-ok-${S}`);
    const r = env.tsrun(["--criu", PASSES_CHECK, "checkpoint", "--pre-dump", `cp-ok-${S}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("tsrun does not implement checkpoint with CRIU");
    expectUntouched(`cp-ok-${S}`, pid);
  });

  test("the container's state is checked first, as runc does; unknown flags are refused", () => {
    const b = env.bundle(`cp-created-${S}`, (s) => (s.process.args = ["sleep", "60"]));
    expect(env.tsrun(["create", "--bundle", b, `cp-created-${S}`]).code).toBe(0);
    ids.push(`cp-created-${S}`);
    const r = env.tsrun(["--criu", PASSES_CHECK, "checkpoint", `cp-created-${S}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`container cp-created-${S} cannot be checkpointed in created state`);
    expect(JSON.parse(env.tsrun(["state", `cp-created-${S}`]).stdout).status).toBe("created");
    expect(env.tsrun(["checkpoint", "cp-nope"]).stderr).toContain("container does not exist: cp-nope");
    expect(env.tsrun(["checkpoint", "--bogus", `cp-created-${S}`]).code).not.toBe(0);
  });

  test("the help lists runc's flags", () => {
    const r = env.tsrun(["checkpoint", "--help"]);
    expect(r.code).toBe(0);
    for (const f of ["--image-path", "--work-path", "--parent-path", "--leave-running", "--tcp-established", "--ext-unix-sk", "--shell-job", "--lazy-pages", "--status-fd", "--page-server", "--file-locks", "--pre-dump", "--manage-cgroups-mode", "--empty-ns", "--auto-dedup"])
      expect(r.stdout).toContain(f);
  });
});

describe("restore", () => {
  test("refused with the reason before anything is created", () => {
    const b = env.bundle(`rs-${S}`, (s) => (s.process.args = ["sleep", "60"]));
    const img = join(env.dir, "rs-img");
    for (const [criu, want] of [
      [join(env.dir, "no-such-criu"), "cannot restore: CRIU is not installed"],
      [FAILS_CHECK, "this kernel lacks what CRIU needs"],
      [PASSES_CHECK, "tsrun does not implement restore with CRIU"],
    ] as const) {
      const r = env.tsrun(["--criu", criu, "restore", "--image-path", img, "--bundle", b, "-d", "--pid-file", join(env.dir, "rs.pid"), `rs-${S}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(want);
      expect(env.tsrun(["state", `rs-${S}`]).stderr).toContain(`container does not exist: rs-${S}`);
      expect(existsSync(join(env.dir, "rs.pid"))).toBe(false);
      expect(leftovers(env, `rs-${S}`, b)).toEqual([]);
    }
  });

  test("an id in use is refused as runc refuses it, and the container is untouched", () => {
    const { pid } = running(`rs-used-${S}`);
    const r = env.tsrun(["--criu", PASSES_CHECK, "restore", `rs-used-${S}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`container with id exists: rs-used-${S}`);
    expectUntouched(`rs-used-${S}`, pid);
  });

  test("the help lists runc's flags", () => {
    const r = env.tsrun(["restore", "--help"]);
    expect(r.code).toBe(0);
    for (const f of ["--console-socket", "--image-path", "--work-path", "--bundle", "--detach", "--pid-file", "--no-subreaper", "--no-pivot", "--empty-ns", "--lsm-profile", "--lsm-mount-context"]) expect(r.stdout).toContain(f);
  });
});

test("the binary under test is tsrun's", () => expect(existsSync(TSRUN)).toBe(true));
