// Every Task call that waits for the runtime is bounded, and none blocks the shim: a shim
// daemon (`shim start`, as containerd starts it) with its bound set to 1 s through the
// environment, and containers whose hooks (no timeout of their own) take 3 s. Create and Start
// answer DEADLINE_EXCEEDED at the bound; meanwhile the daemon answers other calls, among them
// calls on the same container that the runtime library would otherwise block on (its per-container
// lock, held by the slow call in the same process); what the slow call makes late is undone.
// Needs root and dist/tsrun (`bun scripts/build.ts`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "../src/ttrpc/status.ts";
import { taskProto } from "../src/task/proto.ts";
import { CALL_TIMEOUT_ENV } from "../src/task/service.ts";
import { failure, mountedUnder, runcOptions, ShimDaemon, specBundle } from "./daemon-fixture.ts";
import { alive, until as waitUntil } from "../../../test/wait.ts";

const repo = join(import.meta.dir, "../../..");
const TSRUN = process.env.TSRUN ?? join(repo, "dist/tsrun");
const NS = "tsrun-timeout-test";
const BOUND_MS = 1000;
const HOOK_S = 3;
const canRun = process.getuid?.() === 0 && existsSync(TSRUN);

const p = taskProto();
const daemon = new ShimDaemon(NS, "tsrun-timeout-", TSRUN);
const { dir, stateRoot, layer, call } = daemon;
const start = (id: string) => call("Start", { id }, p.startRequest, p.startResponse);
const wait = (id: string) => call("Wait", { id }, p.waitRequest, p.waitResponse);
const del = (id: string) => call("Delete", { id }, p.deleteRequest, p.deleteResponse);
const pause = (id: string) => call("Pause", { id }, p.idRequest, p.empty);
const connect = (id: string) => call("Connect", { id }, p.connectRequest, p.connectResponse);
/** How long a call took, with its outcome. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await promise;
  return { ms: performance.now() - t0, value };
}

let seq = 0;
/** A bundle running `args` on a read-only bind of the busybox layer; `hooks` goes to config.json. */
function makeBundle(args: string[], hooks: Record<string, unknown>, binaryName = TSRUN) {
  const id = `timeout-${process.pid}-${seq++}`;
  const { bundle, rootfs } = specBundle(TSRUN, join(dir, id), args, true, (config) => (config.hooks = hooks));
  const options = runcOptions(binaryName, stateRoot);
  const request = { id, bundle, rootfs: [{ type: "bind", source: layer, target: "", options: ["ro", "rbind"] }], stdin: "", stdout: "", stderr: "", options };
  return { id, bundle, rootfs, request };
}

/** Processes whose command line is exactly `argv`. */
function processesRunning(argv: string[]): number[] {
  const want = `${argv.join("\0")}\0`;
  const out: number[] = [];
  for (const entry of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8") === want) out.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** A hook (no timeout of its own) that takes HOOK_S seconds, then leaves `marker`. */
const slowHook = (marker: string) => [{ path: "/bin/sh", args: ["sh", "-c", `sleep ${HOOK_S}; touch ${marker}`] }];

/** The hooks and the late clean-ups take seconds: waits here allow 15 s unless told. */
const until = (what: string, cond: () => boolean, ms = 15_000) => waitUntil(what, cond, ms);

test("requirements: root and dist/tsrun (bun scripts/build.ts)", () => {
  expect(canRun).toBe(true);
});

describe(`Task calls bounded at ${BOUND_MS} ms (${CALL_TIMEOUT_ENV}) with hooks that take ${HOOK_S} s (root)`, () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    await daemon.start({ [CALL_TIMEOUT_ENV]: String(BOUND_MS) });
  }, 60_000);

  // Whatever a failure left: the daemon, the containers (tsrun's own delete), mounts, the socket, the dir.
  afterAll(() => daemon.stop(), 30_000);

  test("Create held up by a createRuntime hook: DEADLINE_EXCEEDED at the bound, other calls answered meanwhile, the id kept until the late container is killed and removed", async () => {
    const marker = join(dir, "create-hook-done");
    const b = makeBundle(["sleep", "100"], { createRuntime: slowHook(marker) });
    const creating = timed(failure(call("Create", b.request, p.createRequest, p.createResponse)));
    await Bun.sleep(200);
    // The daemon's event loop is free while the hook runs.
    const c = await timed(connect(b.id));
    expect(c.value.shimPid).toBe(daemon.pid);
    expect(c.ms).toBeLessThan(500);
    // The id stays taken while the runtime's create goes on.
    expect((await failure(call("Create", b.request, p.createRequest, p.createResponse))).code).toBe(Code.ALREADY_EXISTS);
    const created = await creating;
    expect(created.value.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(created.value.message).toContain(`OCI runtime create failed: the runtime did not answer within ${BOUND_MS} ms`);
    expect(created.ms).toBeGreaterThanOrEqual(BOUND_MS - 50);
    expect(created.ms).toBeLessThan(HOOK_S * 1000);
    expect(existsSync(marker)).toBe(false);
    // Once the hook ends, the container the create made late is killed and deleted, the rootfs unmounted.
    await until("the hook to end", () => existsSync(marker));
    await until("the late container to be deleted", () => !existsSync(join(stateRoot, NS, b.id)));
    await until("the rootfs to be unmounted", () => mountedUnder(b.rootfs).length === 0);
    const pid = Number(readFileSync(join(b.bundle, "init.pid"), "utf8"));
    expect(pid).toBeGreaterThan(0);
    await until("the late init to die", () => !alive(pid));
    // The id is free again: a Create now fails only on what it asks (here: the same slow hook).
    expect((await failure(call("Create", b.request, p.createRequest, p.createResponse))).code).toBe(Code.DEADLINE_EXCEEDED);
    rmSync(marker);
    await until("the second late container to be deleted", () => existsSync(marker) && !existsSync(join(stateRoot, NS, b.id)) && mountedUnder(b.rootfs).length === 0);
  }, 60_000);

  test("Start held up by a poststart hook: DEADLINE_EXCEEDED at the bound, the init killed and its exit reported; a Pause on it meanwhile is bounded too and does not stop the daemon; Delete after", async () => {
    const marker = join(dir, "start-hook-done");
    const b = makeBundle(["sleep", "100"], { poststart: slowHook(marker) });
    const { pid } = await call("Create", b.request, p.createRequest, p.createResponse);
    expect(pid).toBeGreaterThan(0);
    const starting = timed(failure(start(b.id)));
    await Bun.sleep(200);
    // Pause takes the container's lock in the runtime library, which the slow Start holds: the
    // daemon must neither block on it (every other call would hang) nor wait past the bound.
    const paused = timed(failure(pause(b.id)));
    await Bun.sleep(100);
    const c = await timed(connect(b.id));
    expect(c.ms).toBeLessThan(500);
    expect(c.value.taskPid).toBe(pid);
    const [s, pz] = await Promise.all([starting, paused]);
    expect([s.value.code, pz.value.code]).toEqual([Code.DEADLINE_EXCEEDED, Code.DEADLINE_EXCEEDED]);
    expect(s.value.message).toContain("OCI runtime start failed: the runtime did not answer");
    expect(s.ms).toBeLessThan(HOOK_S * 1000);
    expect(pz.ms).toBeLessThan(HOOK_S * 1000);
    // containerd was told the Start failed: the init is killed, and its exit reported.
    const exit = await timed(wait(b.id));
    expect(exit.value.exitStatus).toBe(137);
    expect(alive(pid)).toBe(false);
    await until("the hook to end", () => existsSync(marker));
    const deleted = await del(b.id);
    expect([deleted.pid, deleted.exitStatus]).toEqual([pid, 137]);
    expect(existsSync(join(stateRoot, NS, b.id))).toBe(false);
    expect(mountedUnder(b.rootfs)).toEqual([]);
  }, 60_000);

  test("a runtime binary (BinaryName) that never answers is killed at the bound: Create answers DEADLINE_EXCEEDED and leaves no process or mount", async () => {
    // A runc stand-in stuck for good (as on a frozen cgroup): whatever it is asked, it sleeps.
    const stuck = ["sleep", `${1000 + (process.pid % 1000)}`];
    const binary = join(dir, "stuck-runtime");
    writeFileSync(binary, `#!/bin/sh\nexec ${stuck.join(" ")}\n`, { mode: 0o755 });
    const b = makeBundle(["true"], {}, binary);
    const created = await timed(failure(call("Create", b.request, p.createRequest, p.createResponse)));
    expect(created.value.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(created.ms).toBeLessThan(BOUND_MS + 2000);
    await until("the stuck runtime to be killed", () => processesRunning(stuck).length === 0, 5000);
    await until("the rootfs to be unmounted", () => mountedUnder(b.rootfs).length === 0, 5000);
    // The daemon answers, and the id is free again (the late create's failure was undone).
    expect((await connect(b.id)).shimPid).toBe(daemon.pid);
    const again = await failure(call("Create", b.request, p.createRequest, p.createResponse));
    expect(again.code).toBe(Code.DEADLINE_EXCEEDED);
    await until("the second stuck runtime to be killed", () => processesRunning(stuck).length === 0, 5000);
  }, 30_000);
});
