// An error's fields (JSON pointer, path, errno) reach the --log-format json error line beside
// runc's three keys, and the library's callers as TsrunError.fields; the messages stay as they were.
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { errorFields, TsrunError } from "../src/errors.ts";
import { CgroupError } from "../src/cgroups/errors.ts";
import { ContainerError, executorErrorFields } from "../src/container/errors.ts";
import { PlanError } from "../src/plan/compile.ts";
import { executorFailure } from "../src/container/errors.ts";
import { leftovers, testEnv } from "./containers.ts";

const env = testEnv();

/** Runs a create that must fail, with a JSON log; returns its one error line, parsed. */
function failedCreate(id: string, patch: (spec: any) => void): { line: Record<string, unknown>; stderr: string } {
  const b = env.bundle(id, patch);
  const log = join(env.dir, `${id}.log`);
  const r = env.tsrun(["--log", log, "--log-format", "json", "create", "--bundle", b, id]);
  expect(r.code).toBe(1);
  const lines = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  const errors = lines.filter((l) => l.level === "error");
  expect(errors).toHaveLength(1);
  expect(leftovers(env, id, b)).toEqual([]);
  return { line: errors[0]!, stderr: r.stderr };
}

describe("--log-format json: the error line carries the error's fields", () => {
  test("a plan error names the config field by its JSON pointer", () => {
    const { line, stderr } = failedCreate("f-plan", (s) => (s.process.selinuxLabel = "system_u:system_r:container_t:s0"));
    expect(line).toMatchObject({ level: "error", id: "f-plan", pointer: "/process/selinuxLabel" });
    expect(Object.keys(line).slice(0, 3)).toEqual(["level", "msg", "time"]);
    // The text is what it was: the pointer is in it too.
    expect(line.msg).toBe("container f-plan: /process/selinuxLabel: SELinux is not enabled on this host");
    expect(stderr).toBe(`tsrun: ${line.msg}\n`);
  });

  test("an executor failure names the step, the path and the errno", () => {
    const { line } = failedCreate("f-exec", (s) => s.mounts.push({ destination: "/mnt/t", type: "tmpfs", source: "tmpfs", options: ["size=not-a-size"] }));
    expect(line).toMatchObject({ level: "error", id: "f-exec", op: "mount", path: "/mnt/t", errno: 22, code: "EINVAL" });
    expect(String(line.msg)).toStartWith("container f-exec: mount tmpfs on /mnt/t (type tmpfs) failed: EINVAL: Invalid argument");
  });

  test("a cgroup error names the cgroup path and the errno", () => {
    // A cgroupsPath through a file of cgroupfs: mkdir fails with ENOTDIR there.
    const { line } = failedCreate("f-cg", (s) => (s.linux.cgroupsPath = "/cgroup.procs/f-cg"));
    expect(line).toMatchObject({ level: "error", op: "cgroup mkdir", code: "ENOTDIR", errno: 20 });
    expect(String(line.path)).toMatch(/^\/sys\/fs\/cgroup\/.+\/cgroup\.procs\/f-cg$/);
    expect(String(line.msg)).toBe(`cgroup mkdir ${line.path}: ENOTDIR: not a directory`);
  });

  test("a missing container and a corrupt state file are named by id, path and code", () => {
    const log = join(env.dir, "f-state.log");
    expect(env.tsrun(["--log", log, "--log-format", "json", "state", "f-none"]).code).toBe(1);
    const missing = JSON.parse(readFileSync(log, "utf8").trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(missing).toMatchObject({ level: "error", msg: "container does not exist: f-none", id: "f-none", code: "ENOENT", errno: 2 });
    mkdirSync(join(env.root, "f-bad"), { recursive: true });
    writeFileSync(join(env.root, "f-bad", "state.json"), '{"id":"f-bad","pi');
    try {
      expect(env.tsrun(["--log", log, "--log-format", "json", "state", "f-bad"]).code).toBe(1);
      const corrupt = JSON.parse(readFileSync(log, "utf8").trim().split("\n").at(-1)!) as Record<string, unknown>;
      expect(corrupt).toMatchObject({ level: "error", id: "f-bad", op: "parse", path: join(env.root, "f-bad", "state.json") });
      expect(String(corrupt.msg)).toStartWith("container f-bad: state.json is corrupt (");
    } finally {
      expect(env.tsrun(["delete", "--force", "f-bad"]).code).toBe(0);
    }
  });

  test("the text format gets them as key=value pairs after msg", () => {
    const b = env.bundle("f-text", (s) => (s.process.selinuxLabel = "system_u:system_r:container_t:s0"));
    const log = join(env.dir, "f-text.log");
    expect(env.tsrun(["--log", log, "create", "--bundle", b, "f-text"]).code).toBe(1);
    expect(readFileSync(log, "utf8")).toMatch(/^time="[^"]+" level=error msg="container f-text: \/process\/selinuxLabel: [^"]+" id=f-text pointer=\/process\/selinuxLabel\n$/);
  });
});

describe("the error type's fields, for the library's callers", () => {
  test("each kind of error carries its fields; errno and its name go together", () => {
    expect(new PlanError("/linux/sysctl/x", "bad").fields).toEqual({ pointer: "/linux/sysctl/x" });
    expect(new PlanError("/linux/sysctl/x", "bad").message).toBe("/linux/sysctl/x: bad");
    expect(new CgroupError("rmdir", "/sys/fs/cgroup/x", "EBUSY").fields).toEqual({ op: "cgroup rmdir", path: "/sys/fs/cgroup/x", code: "EBUSY", errno: 16 });
    expect(new ContainerError("x", { id: "c", errno: 2 }).fields).toEqual({ id: "c", errno: 2, code: "ENOENT" });
    expect(new ContainerError("x", { errno: 0 }).fields).toEqual({});
    expect(new TsrunError("x").fields).toEqual({});
    expect(executorErrorFields({ op: "mkdir", path: "dev/x", mode: 0o755, inRoot: true }, 13)).toEqual({ op: "mkdir", path: "/dev/x", errno: 13 });
    expect(executorErrorFields({ op: "exec", file: "/bin/nope", argv: [], env: [], path: "" }, 2)).toEqual({ op: "exec", path: "/bin/nope", errno: 2 });
  });

  test("an executor report without an errno never reads \"errno 0: Success\"; unshare flags are named", () => {
    const mount = { op: "mount", source: "tmpfs", target: "mnt", fstype: "tmpfs", flags: 0, data: null, inRoot: true } as const;
    expect(executorFailure("c", [mount], { op: 0, errno: 0, text: "refused" })).toBe("container c: mount tmpfs on /mnt (type tmpfs) failed: refused");
    expect(executorFailure("c", [{ op: "unshare", flags: 0x10000000 }], { op: 0, errno: 1, text: "unshare 0x10000000" })).toStartWith("container c: unshare CLONE_NEWUSER failed: EPERM: Operation not permitted");
  });

  test("a failed system call outside the type still gives its errno, name and path", () => {
    let caught: unknown;
    try {
      readFileSync("/nonexistent/tsrun-error-fields");
    } catch (e) {
      caught = e;
    }
    expect(errorFields(caught)).toEqual({ errno: 2, code: "ENOENT", path: "/nonexistent/tsrun-error-fields", op: "open" });
    expect(errorFields(new Error("plain"))).toEqual({});
  });
});
