// Task events without containerd: the wire form (bare type names, envelope fields), the
// publisher's queue (order, bounded retries, a bounded queue, never blocking the caller), the
// order stage (TaskStart before the init's TaskExit, exec exits before it, TaskDelete last), and
// both transports: ttrpc Forward to a server of our own, and a fake publish binary. No root needed.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TtrpcServer } from "../src/ttrpc/server.ts";
import { timestamp } from "../src/ttrpc/codec.ts";
import { eventAny, eventsProtoCodecs, EVENTS_SERVICE, TOPIC_TYPES, type Envelope, type Topic, type TopicEvents } from "../src/events/proto.ts";
import { BinaryTransport, Publisher, transportFromEnvironment, TtrpcTransport, type Transport } from "../src/events/publisher.ts";
import { EventOrder } from "../src/events/order.ts";

const dir = mkdtempSync(join(tmpdir(), "tsrun-events-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A transport that records what it was given; `fail(n)` makes the next n sends fail. */
class FakeTransport implements Transport {
  sent: Envelope[] = [];
  tries = 0;
  failures = 0;
  hold: Promise<void> | undefined;
  async send(e: Envelope): Promise<void> {
    this.tries++;
    if (this.hold) await this.hold;
    if (this.failures > 0) {
      this.failures--;
      throw new Error("containerd is away");
    }
    this.sent.push(e);
  }
  close(): void {}
}

const decode = (e: Envelope) => eventsProtoCodecs().events[e.topic as Topic].decode(e.event.value) as Record<string, unknown>;

describe("wire form", () => {
  test("type names are containerd's, bare (containerd 1.6 resolves Anys by exact name)", () => {
    expect(TOPIC_TYPES["/tasks/exit"]).toBe("containerd.events.TaskExit");
    expect(TOPIC_TYPES["/tasks/oom"]).toBe("containerd.events.TaskOOM");
    expect(Object.keys(TOPIC_TYPES).sort()).toEqual(["/tasks/create", "/tasks/delete", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/oom", "/tasks/paused", "/tasks/resumed", "/tasks/start"]);
    for (const [topic, type] of Object.entries(TOPIC_TYPES)) expect(eventsProtoCodecs().root.lookupType(type).fullName).toBe(`.${type}`);
    expect(eventAny("/tasks/start", { containerId: "c", pid: 7 }).typeUrl).toBe("containerd.events.TaskStart");
  });

  test("TaskExit's field numbers match containerd's (hand-encoded bytes)", () => {
    const any = eventAny("/tasks/exit", { containerId: "c", id: "e", pid: 5, exitStatus: 3, exitedAt: { seconds: 1, nanos: 2 } });
    // 1: "c", 2: "e", 3: 5, 4: 3, 5: {1: 1, 2: 2}
    expect([...any.value]).toEqual([0x0a, 1, 0x63, 0x12, 1, 0x65, 0x18, 5, 0x20, 3, 0x2a, 4, 0x08, 1, 0x10, 2]);
  });

  test("TaskCreate carries the rootfs mounts and the IO", () => {
    const ev: TopicEvents["/tasks/create"] = { containerId: "c", bundle: "/b", rootfs: [{ type: "overlay", source: "overlay", target: "", options: ["lowerdir=/l"] }], io: { stdin: "", stdout: "/o", stderr: "/e", terminal: false }, checkpoint: "", pid: 9 };
    const back = eventsProtoCodecs().events["/tasks/create"].decode(eventAny("/tasks/create", ev).value);
    expect(back).toEqual(ev);
  });
});

describe("publisher", () => {
  test("events go out in order, with the namespace, topic and a timestamp", async () => {
    const t = new FakeTransport();
    const p = new Publisher({ namespace: "ns1", transport: t, log: () => {} });
    const before = Date.now();
    p.publish("/tasks/create", { containerId: "c", bundle: "/b", rootfs: [], io: { stdin: "", stdout: "", stderr: "", terminal: false }, checkpoint: "", pid: 1 });
    p.publish("/tasks/start", { containerId: "c", pid: 1 });
    p.publish("/tasks/exit", { containerId: "c", id: "c", pid: 1, exitStatus: 0, exitedAt: timestamp(Date.now()) });
    await p.flush(5000);
    expect(t.sent.map((e) => e.topic)).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit"]);
    for (const e of t.sent) {
      expect(e.namespace).toBe("ns1");
      expect(e.timestamp.seconds).toBeGreaterThanOrEqual(Math.floor(before / 1000));
    }
    expect(decode(t.sent[1]!)).toEqual({ containerId: "c", pid: 1 });
  });

  test("publish returns at once while a send hangs; the queue keeps the order behind it", async () => {
    const t = new FakeTransport();
    let release!: () => void;
    t.hold = new Promise((r) => (release = r));
    const p = new Publisher({ namespace: "ns", transport: t, log: () => {} });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) p.publish("/tasks/paused", { containerId: `c${i}` });
    expect(performance.now() - t0).toBeLessThan(200);
    expect(t.sent).toEqual([]);
    release();
    t.hold = undefined;
    await p.flush(5000);
    expect(t.sent.map((e) => decode(e).containerId)).toEqual(Array.from({ length: 100 }, (_, i) => `c${i}`));
  });

  test("a failing send is retried, then dropped with a log line after the last try; later events still go", async () => {
    const t = new FakeTransport();
    const logs: string[] = [];
    const p = new Publisher({ namespace: "ns", transport: t, log: (l) => logs.push(l), attempts: 3, retryDelayMs: () => 1 });
    t.failures = 2;
    p.publish("/tasks/paused", { containerId: "a" });
    await p.flush(5000);
    expect([t.tries, t.sent.length, logs]).toEqual([3, 1, []]);
    t.failures = 10;
    p.publish("/tasks/paused", { containerId: "b" });
    await p.flush(5000);
    expect(t.tries).toBe(6);
    expect(logs).toEqual(["event /tasks/paused dropped after 3 tries: containerd is away"]);
    t.failures = 0;
    p.publish("/tasks/resumed", { containerId: "b" });
    await p.flush(5000);
    expect(t.sent.map((e) => e.topic)).toEqual(["/tasks/paused", "/tasks/resumed"]);
  });

  test("the queue is bounded: the oldest waiting event goes, with a log line", async () => {
    const t = new FakeTransport();
    let release!: () => void;
    t.hold = new Promise((r) => (release = r));
    const logs: string[] = [];
    const p = new Publisher({ namespace: "ns", transport: t, log: (l) => logs.push(l), maxQueue: 3 });
    // The first is taken by the sender at once; three wait; the fifth pushes out the second.
    for (let i = 0; i < 5; i++) p.publish("/tasks/oom", { containerId: `c${i}` });
    release();
    t.hold = undefined;
    await p.flush(5000);
    expect(t.sent.map((e) => decode(e).containerId)).toEqual(["c0", "c2", "c3", "c4"]);
    expect(logs).toEqual(["event queue full: dropped /tasks/oom"]);
  });

  test("without a transport nothing is queued; an event that does not encode is logged, not thrown", () => {
    const p = new Publisher({ namespace: "ns", transport: undefined, log: () => {} });
    p.publish("/tasks/start", { containerId: "c", pid: 1 });
    const logs: string[] = [];
    const q = new Publisher({ namespace: "ns", transport: new FakeTransport(), log: (l) => logs.push(l) });
    q.publish("/tasks/start", { containerId: "c", pid: "one" as unknown as number });
    expect(logs).toHaveLength(1);
    expect(logs[0]).toStartWith("event /tasks/start not published: it does not encode: ");
  });

  test("transport from containerd's environment: TTRPC_ADDRESS first, else the publish binary", () => {
    expect(transportFromEnvironment({ TTRPC_ADDRESS: "/run/c.sock.ttrpc" }, "/usr/bin/containerd", "/run/c.sock")).toBeInstanceOf(TtrpcTransport);
    expect(transportFromEnvironment({}, "/usr/bin/containerd", "/run/c.sock")).toBeInstanceOf(BinaryTransport);
    expect(transportFromEnvironment({}, "", "")).toBeUndefined();
  });
});

describe("order", () => {
  function recorder() {
    const seen: string[] = [];
    const order = new EventOrder((topic, event) => {
      const e = event as { containerId: string; id?: string; execId?: string };
      seen.push(`${topic} ${e.id ?? e.execId ?? e.containerId}`);
    });
    return { seen, publish: order.publish };
  }
  const create = (id: string): TopicEvents["/tasks/create"] => ({ containerId: id, bundle: "/b", rootfs: [], io: { stdin: "", stdout: "", stderr: "", terminal: false }, checkpoint: "", pid: 1 });
  const exit = (c: string, id: string): TopicEvents["/tasks/exit"] => ({ containerId: c, id, pid: 1, exitStatus: 0, exitedAt: null });

  test("an init that exits before Start returns has its TaskExit sent after TaskStart", () => {
    const { seen, publish } = recorder();
    publish("/tasks/create", create("c"));
    publish("/tasks/exit", exit("c", "c"));
    expect(seen).toEqual(["/tasks/create c"]);
    publish("/tasks/start", { containerId: "c", pid: 1 });
    publish("/tasks/delete", { containerId: "c", pid: 1, exitStatus: 0, exitedAt: null, id: "c" });
    expect(seen).toEqual(["/tasks/create c", "/tasks/start c", "/tasks/exit c", "/tasks/delete c"]);
  });

  test("the init's TaskExit waits for the exits of its started execs", () => {
    const { seen, publish } = recorder();
    publish("/tasks/create", create("c"));
    publish("/tasks/start", { containerId: "c", pid: 1 });
    publish("/tasks/exec-added", { containerId: "c", execId: "e1" });
    publish("/tasks/exec-added", { containerId: "c", execId: "e2" });
    publish("/tasks/exec-started", { containerId: "c", execId: "e1", pid: 2 });
    publish("/tasks/exit", exit("c", "c"));
    expect(seen.at(-1)).toBe("/tasks/exec-started e1");
    publish("/tasks/exit", exit("c", "e1"));
    // e2 was added, never started: nothing to wait for.
    expect(seen).toEqual(["/tasks/create c", "/tasks/start c", "/tasks/exec-added e1", "/tasks/exec-added e2", "/tasks/exec-started e1", "/tasks/exit e1", "/tasks/exit c"]);
  });

  test("a task never started: its init's exit goes out just before TaskDelete, once", () => {
    const { seen, publish } = recorder();
    publish("/tasks/create", create("c"));
    publish("/tasks/exit", exit("c", "c"));
    publish("/tasks/delete", { containerId: "c", pid: 1, exitStatus: 137, exitedAt: null, id: "c" });
    publish("/tasks/delete", { containerId: "c", pid: 1, exitStatus: 137, exitedAt: null, id: "c" });
    expect(seen).toEqual(["/tasks/create c", "/tasks/exit c", "/tasks/delete c", "/tasks/delete c"]);
  });

  test("an exec that is never reaped holds the init's exit for a bounded time", async () => {
    const { seen, publish } = recorder();
    publish("/tasks/create", create("c"));
    publish("/tasks/start", { containerId: "c", pid: 1 });
    publish("/tasks/exec-started", { containerId: "c", execId: "e", pid: 2 });
    publish("/tasks/exit", exit("c", "c"));
    expect(seen).not.toContain("/tasks/exit c");
    await Bun.sleep(2500);
    expect(seen.at(-1)).toBe("/tasks/exit c");
  });
});

describe("transports", () => {
  test("ttrpc: Forward on containerd's events service with the envelope and the namespace header; a lost server is dialled again", async () => {
    const path = join(dir, "events.sock");
    const got: { ns: string | undefined; envelope: Envelope }[] = [];
    const serve = () => {
      const s = new TtrpcServer();
      s.register(EVENTS_SERVICE, {
        Forward: (payload, ctx) => {
          got.push({ ns: ctx.metadata.get("containerd-namespace-ttrpc")?.[0], envelope: eventsProtoCodecs().forwardRequest.decode(payload).envelope });
          return new Uint8Array(0);
        },
      });
      s.listen(path);
      return s;
    };
    let server = serve();
    const logs: string[] = [];
    const p = new Publisher({ namespace: "k8s.io", transport: new TtrpcTransport(`unix://${path}`), log: (l) => logs.push(l), retryDelayMs: () => 50 });
    p.publish("/tasks/oom", { containerId: "c1" });
    await p.flush(5000);
    server.close();
    rmSync(path, { force: true });
    server = serve();
    p.publish("/tasks/oom", { containerId: "c2" });
    await p.flush(10_000);
    server.close();
    p.close();
    expect(logs).toEqual([]);
    expect(got.map((g) => [g.ns, g.envelope.namespace, g.envelope.topic, g.envelope.event.typeUrl])).toEqual([
      ["k8s.io", "k8s.io", "/tasks/oom", "containerd.events.TaskOOM"],
      ["k8s.io", "k8s.io", "/tasks/oom", "containerd.events.TaskOOM"],
    ]);
    expect(got.map((g) => decode(g.envelope).containerId)).toEqual(["c1", "c2"]);
    expect(got[0]!.envelope.timestamp.seconds).toBeGreaterThan(0);
  }, 20_000);

  test("publish binary: `BIN --address A publish --topic T --namespace NS` with the Any on stdin; a failure names its stderr", async () => {
    const bin = join(dir, "fake-containerd");
    writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/argv\ncat > ${dir}/stdin\n[ "$5" = /tasks/paused ] || { echo "no such topic" >&2; exit 2; }\n`);
    chmodSync(bin, 0o755);
    const logs: string[] = [];
    const p = new Publisher({ namespace: "ns", transport: new BinaryTransport(bin, "/run/c.sock"), log: (l) => logs.push(l), attempts: 2, retryDelayMs: () => 1 });
    p.publish("/tasks/paused", { containerId: "c" });
    await p.flush(5000);
    expect(readFileSync(join(dir, "argv"), "utf8").split("\n").filter(Boolean)).toEqual(["--address", "/run/c.sock", "publish", "--topic", "/tasks/paused", "--namespace", "ns"]);
    const any = eventsProtoCodecs().any.decode(readFileSync(join(dir, "stdin")));
    expect(any.typeUrl).toBe("containerd.events.TaskPaused");
    expect(eventsProtoCodecs().events["/tasks/paused"].decode(any.value)).toEqual({ containerId: "c" });
    p.publish("/tasks/resumed", { containerId: "c" });
    await p.flush(5000);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("event /tasks/resumed dropped after 2 tries: ");
    expect(logs[0]).toContain("no such topic");
  });
});
