// What a user reads when something is off: each message pinned to its exact text, so that a
// change to one is a decision, not an accident (issue 12).
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { helperFailure } from "../src/container/idmap.ts";
import { TSRUN } from "./helpers.ts";

const env = testEnv();

describe("run", () => {
  test("a terminal with nothing to relay it to is refused before anything is made, as runc does", () => {
    const b = env.bundle("notty", (s) => {
      s.process.terminal = true;
      s.process.args = ["sh"];
    });
    // setsid: no controlling terminal either, whatever the test runner has
    const r = Bun.spawnSync(["setsid", "-w", TSRUN, "--root", env.root, "run", "--bundle", b, "notty"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 10_000 });
    expect(r.stderr.toString()).toBe(
      "tsrun: cannot relay the container's terminal: none of stdin, stdout and stderr is a terminal, and there is no controlling terminal (/dev/tty); run tsrun from a terminal, or set process.terminal to false, or use --detach with --console-socket\n",
    );
    expect(r.exitCode).toBe(1);
    expect(existsSync(join(env.root, "notty"))).toBe(false);
    expect(leftovers(env, "notty", b)).toEqual([]);
  });

  test("a command line without the id before it is refused, not run as a container named after the program", () => {
    const r = env.tsrun(["run", "--image", "localhost/busybox:1", "--rm", "--", "echo", "hi"]);
    expect(r.stderr).toBe('tsrun: run: missing argument: ID (it goes before --; what follows -- is the command line); run "tsrun run --help"\n');
    expect(r.code).not.toBe(0);
    expect(existsSync(join(env.root, "echo"))).toBe(false);
  });

  test("run --help shows the id and the command line, and no empty default", () => {
    const r = env.tsrun(["run", "--help"]);
    expect(r.stdout).toContain("$ tsrun run [FLAGS] ID\n");
    expect(r.stdout).toContain("$ tsrun run --image REF [FLAGS] ID [-- ARGS...]\n");
    expect(r.stdout.replace(/\s+/g, " ")).toContain("the container id, unique on this root; with --image, ARGS after -- replace the image's Cmd");
    expect(r.stdout).not.toContain("[default: ]");
    expect(r.stdout).toMatch(/-e, --env=<value>\.\.\.\s+KEY=VALUE/);
  });
});

describe("idmapped mounts", () => {
  // The helper that holds a mapping's user namespace failed: the user learns why, not "unexpected".
  test("the namespace helper's failure names the errno and what it was doing", () => {
    expect(helperFailure({ type: "error", op: 0, errno: 28, text: "unshare 0x10000000" }, "make a user namespace for the mapping").message).toBe(
      "idmapped mount: cannot make a user namespace for the mapping: ENOSPC: No space left on device (unshare CLONE_NEWUSER)",
    );
    expect(helperFailure({ type: "error", op: 0, errno: 28, text: "unshare 0x10000000" }, "make a user namespace for the mapping").fields).toEqual({ op: "unshare", errno: 28, code: "ENOSPC" });
    // No errno (0) is no "errno 0: Success".
    expect(helperFailure({ type: "error", op: 1, errno: 0, text: "sync lost" }, "hold the mapped user namespace").message).toBe("idmapped mount: cannot hold the mapped user namespace: sync lost");
    expect(helperFailure({ type: "eof" }, "hold the mapped user namespace").message).toBe("idmapped mount: cannot hold the mapped user namespace: the helper process exited without a word");
    expect(helperFailure({ type: "pid", pid: 7 }, "hold the mapped user namespace").message).toBe('idmapped mount: cannot hold the mapped user namespace: it sent "pid" instead');
  });
});
