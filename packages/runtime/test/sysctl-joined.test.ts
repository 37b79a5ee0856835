// A namespaced sysctl with the namespace joined by path: when that namespace is tsrun's own (the
// host's), the write would change the host and create refuses it. The key's two spellings go
// through separate code (validation, this check, the plan's write): each must be judged as the
// same sysctl, or the slash form slips past the check and the plan still writes it. Run as
// root with real containers; the value is the host's own, so even a failure changes nothing.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { leftovers, testEnv } from "./containers.ts";

const env = testEnv();

test("net.ipv4.ip_forward and net/ipv4/ip_forward are both refused in the host's network namespace joined by path", () => {
  const value = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
  const netns = `/proc/${process.pid}/ns/net`;
  for (const [id, key] of [
    ["joined-dot", "net.ipv4.ip_forward"],
    ["joined-slash", "net/ipv4/ip_forward"],
  ] as const) {
    const b = env.bundle(id, (s) => {
      s.linux.namespaces = s.linux.namespaces.map((n: { type: string }) => (n.type === "network" ? { type: "network", path: netns } : n));
      s.linux.sysctl = { [key]: value };
    });
    const r = env.tsrun(["run", "--bundle", b, id]);
    expect([id, r.code, r.stderr]).toEqual([id, 1, expect.stringContaining(`the network namespace joined at ${netns} is the host's`)]);
    expect(r.stderr).toContain(`/linux/sysctl/${key}`);
    expect(leftovers(env, id, b)).toEqual([]);
  }
});
