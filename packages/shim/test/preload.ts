// Loaded before every test file (bunfig.toml). Containers run from an image get the cgroupsPath
// "/tsrun/<id>" (image/spec.ts, as containerd gives "/<namespace>/<id>"), and the runtime removes
// the container's cgroup but, as runc does, not the parent it made: on a host that parent is
// reused by the next container, but a test run must not leave it behind. Many test files run
// image containers, so the parent goes after the last of them, when the run made it and it is
// empty (rmdir refuses a cgroup with children or processes: another run's containers keep it).
import { afterAll } from "bun:test";
import { existsSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";

const IMAGE_CGROUP_PARENT = "tsrun";

function parents(): string[] {
  try {
    return readdirSync("/sys/fs/cgroup", { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join("/sys/fs/cgroup", e.name, IMAGE_CGROUP_PARENT));
  } catch {
    return []; // No cgroup fs: nothing to make or remove.
  }
}

const madeByThisRun = parents().filter((p) => !existsSync(p));

afterAll(() => {
  for (const p of madeByThisRun) {
    try {
      rmdirSync(p);
    } catch {
      // Not there, or in use: not ours to take.
    }
  }
});
