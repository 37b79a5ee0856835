// Debian's runc beside tsrun on the same bundle, with its own --root in the test's directory, for
// the tests that compare output formats (ps, events). Output goes to files, not pipes, which a
// detached container would hold open.
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Env } from "./containers.ts";
import { hasCommand, type Run } from "./helpers.ts";

export const haveRunc = hasCommand("runc");

export function runcIn(env: Env): { run: (args: string[], cwd?: string) => Run; remove: (id: string) => void } {
  const root = join(env.dir, "runc-state");
  const run = (args: string[], cwd?: string): Run => {
    const [out, err] = [join(env.dir, "runc.out"), join(env.dir, "runc.err")];
    const [o, e] = [openSync(out, "w+"), openSync(err, "w+")];
    try {
      const r = Bun.spawnSync(["runc", "--root", root, ...args], { cwd, stdin: "ignore", stdout: o, stderr: e });
      return { code: r.exitCode ?? -1, stdout: readFileSync(out, "utf8"), stderr: readFileSync(err, "utf8") };
    } finally {
      closeSync(o);
      closeSync(e);
    }
  };
  /**
   * Kills a runc container and deletes it once stopped: runc's own `delete --force` waits up to
   * 10 s for an init that the test runner, its subreaper, may not have reaped yet.
   */
  const remove = (id: string): void => {
    run(["kill", id, "KILL"]);
    for (let i = 0; i < 300; i++) {
      const st = run(["state", id]);
      if (st.code !== 0 || JSON.parse(st.stdout).status === "stopped") break;
      Bun.sleepSync(10);
    }
    run(["delete", id]);
  };
  return { run, remove };
}
