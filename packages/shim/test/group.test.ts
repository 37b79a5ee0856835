// A shared shim's membership (TaskService without containers, no root), and its log: `start` reserves places
// up to the cap, Create takes a reserved place, and Shutdown lets the daemon go only once no task,
// Create or reservation is left.
import { expect, test } from "bun:test";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mkfifo } from "@tsrun/runtime/linux";
import { DEFAULT_LINGER_MS, LINGER_ENV, lingerMs, ShimLog } from "../src/bin/daemon.ts";
import { Reaper } from "../src/task/reaper.ts";
import { TaskService } from "../src/task/service.ts";
import { taskProto } from "../src/task/proto.ts";
import { Code, TtrpcError } from "../src/ttrpc/status.ts";
import type { CallContext } from "../src/ttrpc/server.ts";

const p = taskProto();
const ctx: CallContext = { service: "containerd.task.v2.Task", method: "Shutdown", metadata: new Map() };

function service(maxTasks: number, reserveMs = 60_000, lingerMs = 0) {
  let exits = 0;
  const s = new TaskService({ namespace: "ns", reaper: new Reaper(), maxTasks, reserveMs, lingerMs, onShutdown: () => exits++ });
  const m = s.methods();
  const shutdown = async (id: string, now = false) => void (await m.Shutdown!(p.shutdownRequest.encode({ id, now }), ctx));
  return { s, shutdown, exits: () => exits };
}

const codeOf = (fn: () => void): number => {
  try {
    fn();
  } catch (err) {
    return err instanceof TtrpcError ? err.code : -1;
  }
  return Code.OK;
};

test("places up to the cap; a repeated start for the same id is no new place", () => {
  const { s } = service(2);
  s.reserve("a");
  s.reserve("a");
  s.reserve("b");
  expect([...s.members()].sort()).toEqual(["a", "b"]);
  expect(codeOf(() => s.reserve("c"))).toBe(Code.RESOURCE_EXHAUSTED);
  expect(codeOf(() => s.reserve(""))).toBe(Code.INVALID_ARGUMENT);
});

test("Shutdown for one container waits for the others' places; the last one's Shutdown lets the daemon go, which then takes no one", async () => {
  const { s, shutdown, exits } = service(4);
  s.reserve("a");
  s.reserve("b");
  await shutdown("a");
  expect(exits()).toBe(0);
  expect([...s.members()]).toEqual(["b"]);
  await shutdown("b");
  expect(exits()).toBe(1);
  expect(codeOf(() => s.reserve("c"))).toBe(Code.UNAVAILABLE);
  await shutdown("b");
  expect(exits()).toBe(1);
});

test("a place whose Create never comes expires, and an empty daemon goes", async () => {
  const { s, exits } = service(4, 50);
  s.reserve("a");
  await Bun.sleep(120);
  expect(exits()).toBe(1);
  expect([...s.members()]).toEqual([]);
});

test("with a linger time, an idle daemon goes only once it has passed; a start meanwhile keeps it, and Shutdown(now) goes at once", async () => {
  const { s, shutdown, exits } = service(4, 60_000, 150);
  s.reserve("a");
  await shutdown("a");
  await Bun.sleep(50);
  expect(exits()).toBe(0);
  // The group's next container comes while it lingers: the daemon takes it and stays.
  s.reserve("b");
  await Bun.sleep(250);
  expect(exits()).toBe(0);
  expect([...s.members()]).toEqual(["b"]);
  await shutdown("b");
  await Bun.sleep(50);
  expect(exits()).toBe(0);
  await Bun.sleep(250);
  expect(exits()).toBe(1);
  expect(codeOf(() => s.reserve("c"))).toBe(Code.UNAVAILABLE);

  const now = service(4, 60_000, 10_000);
  now.s.reserve("a");
  await now.shutdown("a", true);
  expect(now.exits()).toBe(1);
  // An expired place of an idle daemon lingers too.
  const expired = service(4, 30, 150);
  expired.s.reserve("a");
  await Bun.sleep(100);
  expect(expired.exits()).toBe(0);
  await Bun.sleep(200);
  expect(expired.exits()).toBe(1);
});

test("the linger time: a pod's daemon never lingers; TSRUN_SHIM_LINGER_MS sets the others', a bad value keeps the default", () => {
  expect(lingerMs("namespace", {})).toBe(DEFAULT_LINGER_MS);
  expect(lingerMs("group:web", {})).toBe(DEFAULT_LINGER_MS);
  expect(lingerMs("pod:abc", {})).toBe(0);
  expect(lingerMs("pod:abc", { [LINGER_ENV]: "9000" })).toBe(0);
  expect(lingerMs("namespace", { [LINGER_ENV]: "0" })).toBe(0);
  expect(lingerMs("namespace", { [LINGER_ENV]: "1200" })).toBe(1200);
  expect(lingerMs("namespace", { [LINGER_ENV]: "-5" })).toBe(DEFAULT_LINGER_MS);
  expect(lingerMs("namespace", { [LINGER_ENV]: "soon" })).toBe(DEFAULT_LINGER_MS);
});

test("Create takes the reserved place, even when it fails; then the Shutdown ends it", async () => {
  const { s, shutdown, exits } = service(1);
  s.reserve("a");
  const m = s.methods();
  // No bundle: Create fails before it starts anything.
  const failed = await Promise.resolve().then(() => m.Create!(p.createRequest.encode({ id: "a", bundle: "" }), { ...ctx, method: "Create" })).then(
    () => Code.OK,
    (err: unknown) => (err instanceof TtrpcError ? err.code : -1),
  );
  expect(failed).toBe(Code.INVALID_ARGUMENT);
  expect([...s.members()]).toEqual([]);
  s.reserve("b");
  expect(codeOf(() => s.reserve("c"))).toBe(Code.RESOURCE_EXHAUSTED);
  await shutdown("a");
  expect(exits()).toBe(0);
  await shutdown("b");
  expect(exits()).toBe(1);
});

test("the daemon's log moves to a live task's log fifo when the one it writes to loses its reader", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsrun-shimlog-"));
  const fds: number[] = [];
  const open = (path: string, flags: number) => {
    const fd = openSync(path, flags);
    fds.push(fd);
    return fd;
  };
  try {
    for (const b of ["a", "b", "c"]) {
      mkdirSync(join(dir, b));
      mkfifo(join(dir, b, "log"), 0o600);
    }
    // containerd's readers: a's (the daemon's first log) and c's; b's container has none.
    const readerA = openSync(join(dir, "a", "log"), constants.O_RDONLY | constants.O_NONBLOCK);
    const readerC = open(join(dir, "c", "log"), constants.O_RDONLY | constants.O_NONBLOCK);
    const first = openSync(join(dir, "a", "log"), constants.O_WRONLY | constants.O_NONBLOCK);
    const log = new ShimLog(() => [join(dir, "b"), join(dir, "c")], first);
    const read = (fd: number) => {
      const buf = Buffer.alloc(4096);
      try {
        return buf.subarray(0, readSync(fd, buf)).toString();
      } catch {
        return "";
      }
    };
    log.write("one");
    expect(read(readerA)).toBe("one\n");
    closeSync(readerA);
    log.write("two");
    expect(read(readerC)).toBe("two\n");
    log.write("three");
    expect(read(readerC)).toBe("three\n");
  } finally {
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});
