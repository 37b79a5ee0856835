// The device allow-list on a cgroup v2 host, with real containers: tsrun runs in a private
// mount namespace where /sys/fs/cgroup is the host's cgroup2 hierarchy alone (what a v2-only
// host looks like), so the rules become an eBPF program on the container's cgroup.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { TSRUN } from "./helpers.ts";
import { testEnv } from "./containers.ts";

const env = testEnv();

function runOnV2(bundle: string, id: string): { code: number; stdout: string; stderr: string } {
  const inner = `umount -l /sys/fs/cgroup/unified && umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$0" --root "$1" run --bundle "$2" "$3"`;
  const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", inner, TSRUN, env.root, bundle, id], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("v2 only: devices outside the allow-list cannot be read or written, allowed ones can; nothing left", () => {
  const b = env.bundle("v2dev", (s) => {
    for (const set of ["bounding", "effective", "permitted"]) s.process.capabilities[set].push("CAP_MKNOD");
    s.process.args = ["sh", "-c", "mknod /dev/mem c 1 1 && echo mknod ok; head -c1 /dev/mem >/dev/null 2>&1 || echo mem refused; echo x >/dev/null && echo null ok; head -c1 /dev/zero | wc -c"];
  });
  const r = runOnV2(b, "v2dev");
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("mknod ok\nmem refused\nnull ok\n1\n");
  expect(r.code).toBe(0);
  // The cgroup2 hierarchy is the host's /sys/fs/cgroup/unified: the container's cgroup is gone.
  expect(existsSync("/sys/fs/cgroup/unified/v2dev")).toBe(false);
  expect(existsSync(join(env.root, "v2dev"))).toBe(false);
});

test("v2 only: a config rule allowing a device opens it; without the rule it stays closed", () => {
  const script = "mknod /dev/kmsg c 1 11 && (echo tsrun-devices-v2-test >/dev/kmsg) 2>/dev/null && echo kmsg writable || echo kmsg refused";
  const withCap = (s: any) => {
    for (const set of ["bounding", "effective", "permitted"]) s.process.capabilities[set].push("CAP_MKNOD");
    s.process.args = ["sh", "-c", script];
  };
  const closed = runOnV2(env.bundle("v2closed", withCap), "v2closed");
  expect(closed.stdout).toBe("kmsg refused\n");
  const open = runOnV2(
    env.bundle("v2open", (s) => {
      withCap(s);
      s.linux.resources = { devices: [{ allow: true, type: "c", major: 1, minor: 11, access: "w" }] };
    }),
    "v2open",
  );
  expect(open.stderr).toBe("");
  expect(open.stdout).toBe("kmsg writable\n");
});
