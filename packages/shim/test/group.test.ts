// A shared shim's membership (TaskService without containers, no root), and its log: `start` reserves places
// up to the cap, Create takes a reserved place, and Shutdown lets the daemon go only once no task,
// Create or reservation is left.
import { expect, test } from "bun:test";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mkfifo } from "@tsrun/runtime/linux";
import { ShimLog } from "../src/bin/daemon.ts";
import { Reaper } from "../src/task/reaper.ts";
import { TaskService } from "../src/task/service.ts";
import { taskProto } from "../src/task/proto.ts";
import { Code, TtrpcError } from "../src/ttrpc/status.ts";
import type { CallContext } from "../src/ttrpc/server.ts";

const p = taskProto();
const ctx: CallContext = { service: "containerd.task.v2.Task", method: "Shutdown", metadata: new Map() };

function service(maxTasks: number, reserveMs = 60_000) {
  let exits = 0;
  const s = new TaskService({ namespace: "ns", reaper: new Reaper(), maxTasks, reserveMs, onShutdown: () => exits++ });
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
