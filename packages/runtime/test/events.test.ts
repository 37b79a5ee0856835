// events with real containers: --stats in runc's shape (compared key by key with Debian's runc
// events --stats on the same bundle), values that match the host's cgroup files and follow an
// update, the stream at --interval that ends when the container stops, an oom event from the v1
// eventfd (or v2 memory.events), and bad input.
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { leftovers, testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";
import { haveRunc, runcIn } from "./runc-peer.ts";
import { parseDuration } from "../src/container/events.ts";

const env = testEnv();
const runc = runcIn(env);
afterEach(() => {
  for (const id of env.tsrun(["list", "-q"]).stdout.split("\n").filter(Boolean)) env.tsrun(["delete", "--force", id]);
});
const MiB = 1024 * 1024;

/** Every key path of a JSON value, raw memory counters left out (compared separately). */
function shape(x: unknown, p = ""): string[] {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return [];
  return Object.entries(x).flatMap(([k, v]) => (p.endsWith("/raw") ? [] : [`${p}/${k}`, ...shape(v, `${p}/${k}`)]));
}

/** Waits (up to 5 s) until `pids` lists two processes. */
function untilTwo(pids: () => number[]): void {
  for (let i = 0; i < 250 && pids().length < 2; i++) Bun.sleepSync(20);
}

describe("events", () => {
  test("--stats: one line in runc's shape, with the host's numbers; it follows update", () => {
    const b = env.bundle("evs", (s) => {
      s.process.args = ["sh", "-c", "sleep 30 & wait"];
      s.linux.resources = { memory: { limit: 64 * MiB }, pids: { limit: 20 } };
    });
    expect(env.tsrun(["run", "-d", "--bundle", b, "evs"]).code).toBe(0);
    // Both processes, the shell and its sleep, before the numbers are read (not a fixed wait:
    // under load the fork takes longer).
    untilTwo(() => JSON.parse(env.tsrun(["ps", "--format", "json", "evs"]).stdout) ?? []);
    const r = env.tsrun(["events", "--stats", "evs"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.endsWith("}\n") && r.stdout.split("\n").length).toBe(2);
    const ev = JSON.parse(r.stdout);
    expect(Object.keys(ev)).toEqual(["type", "id", "data"]);
    expect(ev).toMatchObject({ type: "stats", id: "evs" });
    expect(Object.keys(ev.data)).toEqual(["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]);
    expect(ev.data.pids).toEqual({ current: 2, limit: 20 });
    expect(ev.data.memory.usage.limit).toBe(64 * MiB);
    expect(ev.data.memory.usage.usage).toBeGreaterThan(0);
    expect(ev.data.cpu.usage.total).toBeGreaterThan(0);
    // A uint64 beyond 2^53 is printed exactly (runc prints the kernel's number as is).
    const pid = JSON.parse(env.tsrun(["state", "evs"]).stdout).pid;
    const memLine = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => l.split(":")[1] === "memory");
    if (memLine) {
      const swapLimit = readFileSync(`/sys/fs/cgroup/memory${memLine.split(":")[2]}/memory.memsw.limit_in_bytes`, "utf8").trim();
      expect(r.stdout).toContain(`"swap":{"limit":${swapLimit},`);
    }
    expect(env.tsrun(["update", "--memory", "96m", "--pids-limit", "30", "evs"]).code).toBe(0);
    const after = JSON.parse(env.tsrun(["events", "--stats", "evs"]).stdout);
    expect(after.data.memory.usage.limit).toBe(96 * MiB);
    expect(after.data.pids.limit).toBe(30);

    if (haveRunc) {
      expect(runc.run(["run", "-d", "--bundle", b, "rcevs"]).code).toBe(0);
      try {
        untilTwo(() => JSON.parse(runc.run(["ps", "--format", "json", "rcevs"]).stdout) ?? []);
        const theirs = runc.run(["events", "--stats", "rcevs"]);
        expect(theirs.code).toBe(0);
        const t = JSON.parse(theirs.stdout);
        expect(Object.keys(t)).toEqual(Object.keys(ev));
        expect(Object.keys(t.data)).toEqual(Object.keys(ev.data));
        // Same keys everywhere (Go's omitempty leaves out the same zero values here), same raw counters.
        expect(shape(after)).toEqual(shape(t));
        expect(Object.keys(after.data.memory.raw)).toEqual(Object.keys(t.data.memory.raw));
        expect(t.data.pids).toEqual({ current: 2, limit: 20 });
        expect(t.data.memory.usage.limit).toBe(64 * MiB);
      } finally {
        runc.remove("rcevs");
      }
      expect(leftovers(env, "rcevs")).toEqual([]);
    }
    expect(env.tsrun(["delete", "--force", "evs"]).code).toBe(0);
    expect(leftovers(env, "evs", b)).toEqual([]);
  });

  test("without --stats: a stats line every --interval until the container stops, then exit 0", async () => {
    const b = env.bundle("evi", (s) => (s.process.args = ["sleep", "1"]));
    expect(env.tsrun(["run", "-d", "--bundle", b, "evi"]).code).toBe(0);
    const t0 = Date.now();
    const p = Bun.spawn([TSRUN, "--root", env.root, "events", "--interval", "100ms", "evi"], { stdout: "pipe", stderr: "pipe" });
    const code = await Promise.race([p.exited, Bun.sleep(5000).then(() => "timeout")]);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    const lines = (await new Response(p.stdout).text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines.length).toBeLessThanOrEqual(12);
    for (const l of lines) expect(l).toMatchObject({ type: "stats", id: "evi" });
    expect(env.tsrun(["delete", "evi"]).code).toBe(0);
    expect(leftovers(env, "evi", b)).toEqual([]);
  });

  test("an oom event when the OOM killer acts in the container", async () => {
    // The inner shell grows past the limit and is killed; the container's init goes on.
    const hog = "sleep 0.3; while :; do sh -c 'x=$(head -c 50000000 /dev/zero | tr \"\\0\" a)'; sleep 0.2; done";
    const b = env.bundle("evo", (s) => {
      s.process.args = ["sh", "-c", hog];
      s.linux.resources = { memory: { limit: 16 * MiB, swap: 16 * MiB } };
    });
    expect(env.tsrun(["run", "-d", "--bundle", b, "evo"]).code).toBe(0);
    const p = Bun.spawn([TSRUN, "--root", env.root, "events", "--interval", "10s", "evo"], { stdout: "pipe", stderr: "pipe" });
    const reader = p.stdout.getReader();
    let text = "";
    const deadline = Date.now() + 8000;
    while (!text.includes('"oom"') && Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => undefined)]);
      if (!chunk || chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text.split("\n")[0]).toBe('{"type":"oom","id":"evo"}');
    expect(env.tsrun(["delete", "--force", "evo"]).code).toBe(0);
    // The container gone, the stream ends by itself.
    expect(await Promise.race([p.exited, Bun.sleep(5000).then(() => "timeout")])).toBe(0);
    expect(leftovers(env, "evo", b)).toEqual([]);
  });

  test("bad input: a stopped or unknown container, a bad interval", () => {
    const b = env.bundle("evbad", (s) => (s.process.args = ["true"]));
    expect(env.tsrun(["run", "--keep", "--bundle", b, "evbad"]).code).toBe(0);
    for (const args of [["--stats"], []]) {
      const r = env.tsrun(["events", ...args, "evbad"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("container with id evbad is not running");
    }
    expect(env.tsrun(["events", "--stats", "nosuch"]).stderr).toContain("container does not exist: nosuch");
    expect(env.tsrun(["events", "--interval", "abc", "evbad"]).stderr).toContain('invalid value "abc" for flag -interval');
    expect(env.tsrun(["events", "--interval", "0s", "evbad"]).stderr).toContain("duration interval must be greater than 0");
    expect(env.tsrun(["delete", "evbad"]).code).toBe(0);
    expect(leftovers(env, "evbad", b)).toEqual([]);
  });

  test("Go durations", () => {
    expect(parseDuration("5s")).toBe(5000);
    expect(parseDuration("100ms")).toBe(100);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("0")).toBe(0);
    expect(() => parseDuration("5")).toThrow("parse error");
    expect(() => parseDuration("")).toThrow("parse error");
  });
});
