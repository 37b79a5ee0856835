// On a host whose cgroups are all v1 (here: the hybrid host with its cgroup2 `unified` mount
// hidden in a mount namespace of tsrun's own), create makes the container's cgroups before the
// executor starts and stage 1 moves itself into them by writing 0 to each `tasks` file (no global
// migration lock, so no RCU grace period to wait for). The suite's other tests run on the hybrid
// host, where tsrun moves stage 1 itself: this file is what drives the v1-only path end to end.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { capture, TSRUN, type Run } from "./helpers.ts";

describe("a host with cgroup v1 only", () => {
  const env = testEnv();
  /** tsrun in a mount namespace where /sys/fs/cgroup/unified is not mounted: detect() sees pure v1. */
  const v1 = (args: string[]): Run => capture(["unshare", "-m", "sh", "-c", 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh", TSRUN, "--root", env.root, ...args]);
  const v1Hierarchies = () =>
    readFileSync("/proc/self/cgroup", "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(":"))
      .filter(([n]) => n !== "0");

  test("the init moves itself into every cgroup of the container before its cgroup namespace; limits, ps, exec and delete work; nothing left", () => {
    const bundle = env.bundle("b1", (s) => {
      s.process.args = ["sleep", "1000"];
      s.linux.resources = { memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 50 } };
      s.linux.namespaces.push({ type: "cgroup" });
    });
    try {
      const c = v1(["create", "--bundle", bundle, "v1c"]);
      expect(c.stderr).toBe("");
      expect(c.code).toBe(0);
      const pid = JSON.parse(v1(["state", "v1c"]).stdout).pid as number;
      // Seen from the host, in created state: every v1 hierarchy's cgroup is the container's.
      const own = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n").map((l) => l.split(":"));
      const v1Lines = own.filter(([n]) => n !== "0");
      expect(v1Lines.length).toBe(v1Hierarchies().length);
      expect(v1Lines.filter(([, , path]) => !path!.endsWith("/v1c"))).toEqual([]);
      // Below tsrun's own cgroup of each hierarchy (the memory one is not / on this VM).
      const dir = (ctl: string) => join("/sys/fs/cgroup", ctl, v1Lines.find(([, names]) => names!.split(",").includes(ctl))![2]!);
      expect(readFileSync(join(dir("memory"), "memory.limit_in_bytes"), "utf8").trim()).toBe(String(64 * 1024 * 1024));
      expect(readFileSync(join(dir("pids"), "pids.max"), "utf8").trim()).toBe("50");
      expect(readFileSync(join(dir("pids"), "cgroup.procs"), "utf8").trim()).toBe(String(pid));
      expect(v1(["start", "v1c"]).code).toBe(0);
      // Inside, its cgroup namespace was made after the move: its own cgroups are its roots.
      const inside = v1(["exec", "v1c", "cat", "/proc/self/cgroup"]);
      expect(inside.code).toBe(0);
      expect(inside.stdout.trim().split("\n").filter((l) => !l.startsWith("0:") && !l.endsWith(":/"))).toEqual([]);
      const ps = v1(["ps", "--format", "json", "v1c"]);
      expect(JSON.parse(ps.stdout)).toEqual([pid]);
      expect(v1(["delete", "--force", "v1c"]).code).toBe(0);
    } finally {
      // What a failed expectation left goes too.
      v1(["delete", "--force", "v1c"]);
    }
    expect(leftovers(env, "v1c", bundle)).toEqual([]);
  });
});
