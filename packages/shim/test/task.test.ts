// The Task service driven over ttrpc as containerd drives it, without containerd: `shim start`
// spawns the daemon, and the test sends Create/Start/Wait/Kill/Delete/Shutdown to it with a
// busybox rootfs mounted by the shim (overlay, or a read-only bind) and stdio through fifos.
// Needs root and dist/tsrun (`bun scripts/build.ts`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, symlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { mkfifo } from "@tsrun/runtime/linux";
import { Code } from "../src/ttrpc/status.ts";
import { taskProto, TASK_SERVICE_V2, TASK_SERVICE_V3, TaskStatus, type Mount } from "../src/task/proto.ts";
import { failure, mountedUnder, runcOptions, ShimDaemon, specBundle } from "./daemon-fixture.ts";

const repo = join(import.meta.dir, "../../..");
const TSRUN = process.env.TSRUN ?? join(repo, "dist/tsrun");
const NS = "tsrun-task-test";
const canRun = process.getuid?.() === 0 && existsSync(TSRUN);

const p = taskProto();
const daemon = new ShimDaemon(NS, "tsrun-task-", TSRUN);
const { dir, stateRoot, layer, shimBundle, call } = daemon;
const create = (req: Parameters<typeof p.createRequest.encode>[0]) => call("Create", req, p.createRequest, p.createResponse);
const start = (id: string) => call("Start", { id }, p.startRequest, p.startResponse);
const state = (id: string, service?: string) => call("State", { id }, p.stateRequest, p.stateResponse, service);
const wait = (id: string) => call("Wait", { id }, p.waitRequest, p.waitResponse);
const kill = (id: string, signal: number) => call("Kill", { id, signal }, p.killRequest, p.empty);
const del = (id: string) => call("Delete", { id }, p.deleteRequest, p.deleteResponse);
const closeIO = (id: string) => call("CloseIO", { id, stdin: true }, p.closeIORequest, p.empty);

interface Bundle {
  id: string;
  bundle: string;
  rootfs: string;
  mounts: Mount[];
  stdout: string;
  stderr: string;
  stdin: string;
}

let seq = 0;
/** A bundle with the given args; its rootfs is an overlay of the busybox layer, or a read-only bind of it. */
function makeBundle(args: string[], opts: { bind?: boolean; stdin?: boolean; config?: (c: Record<string, any>) => void } = {}): Bundle {
  const id = `task-${process.pid}-${seq++}`;
  const { bundle, rootfs } = specBundle(TSRUN, join(dir, id), args, !!opts.bind, opts.config);
  let mounts: Mount[];
  if (opts.bind) {
    mounts = [{ type: "bind", source: layer, target: "", options: ["ro", "rbind"] }];
  } else {
    const upper = join(dir, `${id}.upper`);
    const work = join(dir, `${id}.work`);
    mkdirSync(upper);
    mkdirSync(work);
    mounts = [{ type: "overlay", source: "overlay", target: "", options: [`workdir=${work}`, `upperdir=${upper}`, `lowerdir=${layer}`] }];
  }
  const fifo = (name: string) => {
    const path = join(dir, `${id}-${name}`);
    mkfifo(path, 0o600);
    return path;
  };
  return { id, bundle, rootfs, mounts, stdout: fifo("stdout"), stderr: fifo("stderr"), stdin: opts.stdin ? fifo("stdin") : "" };
}

function createRequest(b: Bundle, binaryName = TSRUN) {
  return { id: b.id, bundle: b.bundle, rootfs: b.mounts, stdin: b.stdin, stdout: b.stdout, stderr: b.stderr, options: runcOptions(binaryName, stateRoot) };
}

/** The client's end of an output fifo: opened before Create (non-blocking), drained after the exit. */
class FifoReader {
  private fd: number;
  constructor(path: string) {
    this.fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  }
  /** Everything written, once every writer has closed. */
  drain(): string {
    const buf = Buffer.alloc(65536);
    let out = "";
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, buf);
      } catch (err) {
        throw new Error(`fifo still has a writer: ${(err as Error).message} (read so far: ${JSON.stringify(out)})`);
      }
      if (n === 0) break;
      out += buf.subarray(0, n).toString();
    }
    closeSync(this.fd);
    return out;
  }
}

function tsrunState(id: string): boolean {
  return existsSync(join(stateRoot, NS, id));
}

// Not skipped when something is missing: a missing requirement is a failure to see.
test("requirements: root and dist/tsrun (bun scripts/build.ts)", () => {
  expect(canRun).toBe(true);
});

describe("Task service over ttrpc (root)", () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    const address = await daemon.start();
    // The shim's socket goes to /run/containerd/s (containerd's place for shim sockets).
    expect(address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(readFileSync(join(shimBundle, "address"), "utf8")).toBe(address);
  }, 60_000);

  afterAll(() => daemon.stop(), 30_000);

  test("Create, Start, Wait, Delete: exit status and output through fifos, rootfs mounted and unmounted", async () => {
    const b = makeBundle(["sh", "-c", "echo hello; echo oops >&2; test -f /bin/busybox || exit 99; exit 3"]);
    const out = new FifoReader(b.stdout);
    const err = new FifoReader(b.stderr);
    const { pid } = await create(createRequest(b));
    expect(pid).toBeGreaterThan(0);
    expect(mountedUnder(b.rootfs)).toEqual([b.rootfs]);
    const created = await state(b.id);
    expect(created).toMatchObject({ id: b.id, bundle: b.bundle, pid, status: TaskStatus.CREATED, stdout: b.stdout, stderr: b.stderr, terminal: false });
    expect((await start(b.id)).pid).toBe(pid);
    const exit = await wait(b.id);
    expect(exit.exitStatus).toBe(3);
    expect(exit.exitedAt!.seconds).toBeGreaterThan(0);
    const stopped = await state(b.id);
    expect([stopped.status, stopped.exitStatus]).toEqual([TaskStatus.STOPPED, 3]);
    expect(out.drain()).toBe("hello\n");
    expect(err.drain()).toBe("oops\n");
    const deleted = await del(b.id);
    expect([deleted.pid, deleted.exitStatus]).toEqual([pid, 3]);
    expect(mountedUnder(b.rootfs)).toEqual([]);
    expect(tsrunState(b.id)).toBe(false);
    expect((await failure(state(b.id))).code).toBe(Code.NOT_FOUND);
  }, 60_000);

  test("many creates in one daemon leave it no zombie child (each create's cgroup warm-up and stage 1 are reaped)", async () => {
    for (let i = 0; i < 4; i++) {
      const b = makeBundle(["true"]);
      await create(createRequest(b));
      await start(b.id);
      expect((await wait(b.id)).exitStatus).toBe(0);
      await del(b.id);
    }
    const zombies = () =>
      readdirSync("/proc")
        .filter((e) => /^\d+$/.test(e))
        .flatMap((e) => {
          const m = /^\d+ \((.*)\) (\S) (\d+)/.exec(readFileSync(`/proc/${e}/stat`, "utf8").toString());
          return m && Number(m[3]) === daemon.pid && m[2] === "Z" ? [`${e} ${m[1]}`] : [];
        });
    expect(zombies()).toEqual([]);
  }, 60_000);

  test("Create takes a bundle made by the image path (tsrun bundle --image): its own rootfs, no mounts", async () => {
    const images = join(dir, "images");
    const tar = join(dir, "image.tar");
    const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), tar, "localhost/busybox:task"], { stderr: "pipe" });
    if (!mk.success) throw new Error(`make-image.sh: ${mk.stderr}`);
    expect(Bun.spawnSync([TSRUN, "image", "import", "--image-root", images, tar]).exitCode).toBe(0);
    const id = `task-${process.pid}-image`;
    const bundle = join(dir, id);
    const made = Bun.spawnSync([TSRUN, "bundle", "--image-root", images, "--image", "localhost/busybox:task", "-u", "nobody", bundle, "--", "sh", "-c", "id -u; cat /etc/passwd | head -1"], { stderr: "pipe" });
    expect(made.stderr.toString()).toBe("");
    const fifo = (name: string) => {
      const path = join(dir, `${id}-${name}`);
      mkfifo(path, 0o600);
      return path;
    };
    const b: Bundle = { id, bundle, rootfs: join(bundle, "rootfs"), mounts: [], stdout: fifo("stdout"), stderr: fifo("stderr"), stdin: "" };
    const out = new FifoReader(b.stdout);
    const err = new FifoReader(b.stderr);
    await create(createRequest(b));
    await start(id);
    expect((await wait(id)).exitStatus).toBe(0);
    expect(out.drain()).toBe("65534\nroot:x:0:0:root:/root:/bin/sh\n");
    expect(err.drain()).toBe("");
    await del(id);
    expect(tsrunState(id)).toBe(false);
    // The image path's rootfs is the image path's to remove, as containerd's snapshots are containerd's.
    expect(mountedUnder(b.rootfs)).toEqual([b.rootfs]);
    expect(Bun.spawnSync([TSRUN, "bundle", "--image-root", images, "--remove", bundle]).exitCode).toBe(0);
    expect(mountedUnder(b.rootfs)).toEqual([]);
  }, 60_000);

  test("stdin comes from its fifo and reaches EOF after CloseIO; a read-only bind rootfs works", async () => {
    const b = makeBundle(["cat"], { bind: true, stdin: true });
    const out = new FifoReader(b.stdout);
    const err = new FifoReader(b.stderr);
    await create(createRequest(b));
    await start(b.id);
    const w = openSync(b.stdin, constants.O_WRONLY);
    writeSync(w, "piped through\n");
    closeSync(w);
    // The shim's own write handle keeps cat reading until CloseIO.
    await Bun.sleep(200);
    expect((await state(b.id)).status).toBe(TaskStatus.RUNNING);
    await closeIO(b.id);
    expect((await wait(b.id)).exitStatus).toBe(0);
    expect(out.drain()).toBe("piped through\n");
    expect(err.drain()).toBe("");
    await del(b.id);
    expect(mountedUnder(b.rootfs)).toEqual([]);
  }, 60_000);

  test("Kill ends a running task; Delete refuses a running one; Kill after the exit is NOT_FOUND", async () => {
    const b = makeBundle(["sleep", "100"]);
    const out = new FifoReader(b.stdout);
    const err = new FifoReader(b.stderr);
    await create(createRequest(b));
    await start(b.id);
    expect((await state(b.id)).status).toBe(TaskStatus.RUNNING);
    const refused = await failure(del(b.id));
    expect(refused.code).toBe(Code.FAILED_PRECONDITION);
    const waiting = wait(b.id);
    await kill(b.id, 9);
    expect((await waiting).exitStatus).toBe(137);
    expect((await failure(kill(b.id, 9))).code).toBe(Code.NOT_FOUND);
    expect((await del(b.id)).exitStatus).toBe(137);
    out.drain();
    err.drain();
    expect(tsrunState(b.id)).toBe(false);
  }, 60_000);

  test("a task that was created but never started can be deleted", async () => {
    const b = makeBundle(["true"]);
    const out = new FifoReader(b.stdout);
    const err = new FifoReader(b.stderr);
    const { pid } = await create(createRequest(b));
    const deleted = await del(b.id);
    expect(deleted.pid).toBe(pid);
    expect(deleted.exitStatus).toBe(137);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(mountedUnder(b.rootfs)).toEqual([]);
    expect(tsrunState(b.id)).toBe(false);
    out.drain();
    err.drain();
  }, 60_000);

  test("null IO (no stdio paths, as every CRI sandbox): Create returns, the container's stdio is /dev/null", async () => {
    // The init waits for Start with the runtime's stdio as its own: Create must not wait for it.
    const b = makeBundle(["sh", "-c", "for f in 0 1 2; do test \"$(readlink /proc/$$/fd/$f)\" = /dev/null || exit 1$f; done; exit 7"]);
    const { pid } = await create({ ...createRequest(b), stdin: "", stdout: "", stderr: "" });
    expect(pid).toBeGreaterThan(0);
    await start(b.id);
    expect((await wait(b.id)).exitStatus).toBe(7);
    expect((await del(b.id)).exitStatus).toBe(7);
    expect(tsrunState(b.id)).toBe(false);
  }, 60_000);

  test("a failing create with null IO still reports the runtime's error, from its JSON log", async () => {
    const b = makeBundle(["true"], { config: (c) => (c.process.cwd = "relative/dir") });
    const err = await failure(create({ ...createRequest(b), stdin: "", stdout: "", stderr: "" }));
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.message).toStartWith("OCI runtime create failed: ");
    expect(err.message).toContain("cwd");
    expect(mountedUnder(b.rootfs)).toEqual([]);
  }, 60_000);

  test("Exec, Start, Wait, State, Pids, Delete of an exec'd process; its output through its own fifos", async () => {
    const b = makeBundle(["sleep", "100"]);
    await create({ ...createRequest(b), stdout: "", stderr: "" });
    await start(b.id);
    const out = join(dir, `${b.id}-exec-out`);
    const errPath = join(dir, `${b.id}-exec-err`);
    mkfifo(out, 0o600);
    mkfifo(errPath, 0o600);
    const outReader = new FifoReader(out);
    const errReader = new FifoReader(errPath);
    const spec = { args: ["sh", "-c", "echo from-exec; echo to-err >&2; exit 5"], cwd: "/", env: ["PATH=/bin"], user: { uid: 0, gid: 0 } };
    const any = { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify(spec)) };
    await call("Exec", { id: b.id, execId: "e1", stdout: out, stderr: errPath, spec: any }, p.execRequest, p.empty);
    expect((await call("State", { id: b.id, execId: "e1" }, p.stateRequest, p.stateResponse)).status).toBe(TaskStatus.CREATED);
    const waiting = call("Wait", { id: b.id, execId: "e1" }, p.waitRequest, p.waitResponse);
    const { pid } = await call("Start", { id: b.id, execId: "e1" }, p.startRequest, p.startResponse);
    expect(pid).toBeGreaterThan(0);
    expect((await waiting).exitStatus).toBe(5);
    const st = await call("State", { id: b.id, execId: "e1" }, p.stateRequest, p.stateResponse);
    expect(st).toMatchObject({ status: TaskStatus.STOPPED, exitStatus: 5, execId: "e1", pid });
    expect((await call("Delete", { id: b.id, execId: "e1" }, p.deleteRequest, p.deleteResponse)).exitStatus).toBe(5);
    expect(outReader.drain()).toBe("from-exec\n");
    expect(errReader.drain()).toBe("to-err\n");
    expect((await failure(call("State", { id: b.id, execId: "e1" }, p.stateRequest, p.stateResponse))).code).toBe(Code.NOT_FOUND);

    // A long-running exec is listed by Pids with its exec id, killed, and reports the signal.
    const sleeper = { ...spec, args: ["sleep", "100"] };
    await call("Exec", { id: b.id, execId: "e2", spec: { ...any, value: new TextEncoder().encode(JSON.stringify(sleeper)) } }, p.execRequest, p.empty);
    const e2 = await call("Start", { id: b.id, execId: "e2" }, p.startRequest, p.startResponse);
    const { processes } = await call("Pids", { id: b.id }, p.pidsRequest, p.pidsResponse);
    const listed = processes.find((x) => x.pid === e2.pid);
    expect(listed?.info?.typeUrl).toBe("containerd.runc.v1.ProcessDetails");
    expect(p.processDetails.decode(listed!.info!.value).execId).toBe("e2");
    expect(processes.map((x) => x.pid)).toContain((await state(b.id)).pid);
    expect((await failure(call("Delete", { id: b.id, execId: "e2" }, p.deleteRequest, p.deleteResponse))).code).toBe(Code.FAILED_PRECONDITION);
    await call("Kill", { id: b.id, execId: "e2", signal: 9 }, p.killRequest, p.empty);
    expect((await call("Wait", { id: b.id, execId: "e2" }, p.waitRequest, p.waitResponse)).exitStatus).toBe(137);
    expect((await call("Delete", { id: b.id, execId: "e2" }, p.deleteRequest, p.deleteResponse)).exitStatus).toBe(137);

    // A failing exec start reports the runtime's error, and Wait does not hang on it.
    const missing = { ...spec, args: ["/no/such/binary"] };
    await call("Exec", { id: b.id, execId: "e3", spec: { ...any, value: new TextEncoder().encode(JSON.stringify(missing)) } }, p.execRequest, p.empty);
    const failed = await failure(call("Start", { id: b.id, execId: "e3" }, p.startRequest, p.startResponse));
    expect(failed.message).toStartWith("OCI runtime exec failed: ");
    expect(failed.message).toContain("/no/such/binary");
    expect((await failure(call("Wait", { id: b.id, execId: "e3" }, p.waitRequest, p.waitResponse))).message).toStartWith("OCI runtime exec failed: ");
    await call("Delete", { id: b.id, execId: "e3" }, p.deleteRequest, p.deleteResponse);

    await kill(b.id, 9);
    expect((await wait(b.id)).exitStatus).toBe(137);
    await del(b.id);
    expect(tsrunState(b.id)).toBe(false);
  }, 60_000);

  test("Pause and Resume freeze and thaw the task (State says PAUSED), Update sets a limit, Stats reads cgroup v1 metrics", async () => {
    const b = makeBundle(["sh", "-c", "while :; do sleep 0.05; done"]);
    await create({ ...createRequest(b), stdout: "", stderr: "" });
    await start(b.id);
    const { pid } = await state(b.id);
    await call("Pause", { id: b.id }, p.idRequest, p.empty);
    expect((await state(b.id)).status).toBe(TaskStatus.PAUSED);
    // The task's freezer cgroup is what the runtime froze.
    const cgroup = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => /:freezer:/.test(l))!.split(":")[2];
    expect(readFileSync(`/sys/fs/cgroup/freezer${cgroup}/freezer.state`, "utf8").trim()).toBe("FROZEN");
    await call("Resume", { id: b.id }, p.idRequest, p.empty);
    expect((await state(b.id)).status).toBe(TaskStatus.RUNNING);
    expect(readFileSync(`/sys/fs/cgroup/freezer${cgroup}/freezer.state`, "utf8").trim()).toBe("THAWED");

    const resources = { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", value: new TextEncoder().encode(JSON.stringify({ pids: { limit: 42 } })) };
    await call("Update", { id: b.id, resources }, p.updateRequest, p.empty);
    const pidsCgroup = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => /:pids:/.test(l))!.split(":")[2];
    expect(readFileSync(`/sys/fs/cgroup/pids${pidsCgroup}/pids.max`, "utf8").trim()).toBe("42");
    const bad = await failure(call("Update", { id: b.id, resources: { ...resources, value: new TextEncoder().encode("{nope") } }, p.updateRequest, p.empty));
    expect(bad.code).toBe(Code.INVALID_ARGUMENT);

    const { stats } = await call("Stats", { id: b.id }, p.statsRequest, p.statsResponse);
    expect(stats?.typeUrl).toBe("io.containerd.cgroups.v1.Metrics");
    const metrics = p.cgroupsV1Metrics.decode(stats!.value) as Record<string, any>;
    expect(Number(metrics.pids.current)).toBeGreaterThanOrEqual(1);
    expect(Number(metrics.pids.limit)).toBe(42);
    expect(Number(metrics.memory.usage.usage)).toBeGreaterThan(0);
    expect(Number(metrics.cpu.usage.total)).toBeGreaterThan(0);

    await kill(b.id, 9);
    await wait(b.id);
    expect((await failure(call("Pause", { id: b.id }, p.idRequest, p.empty))).code).toBe(Code.FAILED_PRECONDITION);
    await del(b.id);
  }, 60_000);

  test("a failing create reports the runtime's error and leaves nothing mounted", async () => {
    const b = makeBundle(["true"], { config: (c) => (c.process.cwd = "relative/dir") });
    const err = await failure(create(createRequest(b)));
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.message).toStartWith("OCI runtime create failed: ");
    expect(err.message).toContain("cwd");
    expect(mountedUnder(b.rootfs)).toEqual([]);
    expect((await failure(state(b.id))).code).toBe(Code.NOT_FOUND);
  }, 60_000);

  test("unknown ids are NOT_FOUND, unsupported calls UNIMPLEMENTED, and the v3 service name answers too", async () => {
    expect((await failure(state("no-such-task"))).code).toBe(Code.NOT_FOUND);
    expect((await failure(kill("no-such-task", 9))).code).toBe(Code.NOT_FOUND);
    expect((await failure(state("no-such-task", TASK_SERVICE_V3))).code).toBe(Code.NOT_FOUND);
    const checkpoint = await failure(daemon.client.call(TASK_SERVICE_V2, "Checkpoint", new Uint8Array(0)));
    expect([checkpoint.code, checkpoint.message]).toEqual([Code.UNIMPLEMENTED, "checkpoint is not supported by containerd-shim-tsrun-v2"]);
    // A terminal asked for by the request but not by config.json: refused, nothing left.
    const b = makeBundle(["true"]);
    const tty = await failure(create({ ...createRequest(b), terminal: true }));
    expect(tty.message).toStartWith("OCI runtime create failed: ");
    expect(tty.message).toContain("terminal");
    expect(tsrunState(b.id)).toBe(false);
    expect(mountedUnder(b.rootfs)).toEqual([]);
    const connected = await call("Connect", { id: "x" }, p.connectRequest, p.connectResponse);
    expect(connected.shimPid).toBe(daemon.pid);
  }, 60_000);

  test("the container gets nothing of the shim's process: fds 0-2 only, its own /proc/<pid>/exe, config.json's environment (init and exec)", async () => {
    // The runtime runs inside the shim: what the shim holds (its ttrpc socket, the executor's
    // memfd, fifos of other tasks, TTRPC_ADDRESS…) must not reach the container. The init and
    // an exec'd process are both `sleep` (no shell of their own to open fds); a probe looks at them.
    const env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "ONLY=this"];
    const b = makeBundle(["sleep", "100"], { config: (c) => (c.process.env = env) });
    const out = join(dir, `${b.id}-probe`);
    mkfifo(out, 0o600);
    const reader = new FifoReader(out);
    const other = makeBundle(["sleep", "100"]);
    await create({ ...createRequest(other), stdout: "", stderr: "" });
    await create({ ...createRequest(b), stdout: out, stderr: out });
    await start(b.id);
    const processSpec = (args: string[], env: string[]) => ({
      typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
      // The init's capabilities: reading another process's exe and environ needs a superset of its own.
      value: new TextEncoder().encode(JSON.stringify({ args, cwd: "/", env, user: { uid: 0, gid: 0 }, capabilities: JSON.parse(readFileSync(join(b.bundle, "config.json"), "utf8")).process.capabilities })),
    });
    await call("Exec", { id: b.id, execId: "sleeper", stdout: out, stderr: out, spec: processSpec(["sleep", "100"], ["PATH=/bin", "EXEC=1"]) }, p.execRequest, p.empty);
    await call("Start", { id: b.id, execId: "sleeper" }, p.startRequest, p.startResponse);
    const probe = "for p in $(pidof sleep); do echo \"pid $p fds: $(ls /proc/$p/fd | xargs) exe: $(readlink /proc/$p/exe) env: $(tr '\\0' ' ' < /proc/$p/environ)\"; done";
    await call("Exec", { id: b.id, execId: "probe", stdout: out, spec: processSpec(["sh", "-c", probe], ["PATH=/bin"]) }, p.execRequest, p.empty);
    await call("Start", { id: b.id, execId: "probe" }, p.startRequest, p.startResponse);
    expect((await call("Wait", { id: b.id, execId: "probe" }, p.waitRequest, p.waitResponse)).exitStatus).toBe(0);
    await call("Delete", { id: b.id, execId: "probe" }, p.deleteRequest, p.deleteResponse);
    await call("Kill", { id: b.id, execId: "sleeper", signal: 9 }, p.killRequest, p.empty);
    await call("Wait", { id: b.id, execId: "sleeper" }, p.waitRequest, p.waitResponse);
    await call("Delete", { id: b.id, execId: "sleeper" }, p.deleteRequest, p.deleteResponse);
    await kill(b.id, 9);
    await wait(b.id);
    await del(b.id);
    await kill(other.id, 9);
    await wait(other.id);
    await del(other.id);
    const lines = reader.drain().trim().split("\n").map((l) => l.trimEnd()).sort();
    expect(lines).toEqual([
      "pid 1 fds: 0 1 2 exe: /bin/busybox env: PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=xterm ONLY=this",
      expect.stringMatching(/^pid \d+ fds: 0 1 2 exe: \/bin\/busybox env: PATH=\/bin EXEC=1$/),
    ]);
  }, 60_000);

  test("a Create held 3 s by a createRuntime hook does not hold up State, Kill and Wait of another task", async () => {
    const a = makeBundle(["sleep", "100"]);
    await create({ ...createRequest(a), stdout: "", stderr: "" });
    await start(a.id);
    const b = makeBundle(["true"], { config: (c) => (c.hooks = { createRuntime: [{ path: "/bin/sleep", args: ["sleep", "3"] }] }) });
    const t0 = performance.now();
    let createdAt = 0;
    const creating = create({ ...createRequest(b), stdout: "", stderr: "" }).then((r) => {
      createdAt = performance.now() - t0;
      return r;
    });
    await Bun.sleep(300);
    const timed = async <T>(p: Promise<T>) => {
      const s = performance.now();
      const v = await p;
      return [v, performance.now() - s] as const;
    };
    const [st, stateMs] = await timed(state(a.id));
    expect(st.status).toBe(TaskStatus.RUNNING);
    const [, killMs] = await timed(kill(a.id, 9));
    const [exit, waitMs] = await timed(wait(a.id));
    expect(exit.exitStatus).toBe(137);
    const answeredAt = performance.now() - t0;
    console.error(`held create: State ${stateMs.toFixed(1)} ms, Kill ${killMs.toFixed(1)} ms, Wait ${waitMs.toFixed(1)} ms, all answered ${answeredAt.toFixed(0)} ms after the Create began`);
    expect(createdAt).toBe(0);
    expect(stateMs + killMs + waitMs).toBeLessThan(1000);
    const { pid } = await creating;
    expect(pid).toBeGreaterThan(0);
    expect(createdAt).toBeGreaterThan(2900);
    await del(a.id);
    await del(b.id);
    expect(tsrunState(b.id)).toBe(false);
  }, 60_000);

  test("many tasks at once: every exit status reported right, by Wait and by Delete", async () => {
    const bundles = Array.from({ length: 8 }, (_, i) => makeBundle(["sh", "-c", `exit ${10 + i}`]));
    await Promise.all(bundles.map((b) => create({ ...createRequest(b), stdout: "", stderr: "" })));
    const waits = bundles.map((b) => wait(b.id));
    await Promise.all(bundles.map((b) => start(b.id)));
    expect((await Promise.all(waits)).map((w) => w.exitStatus)).toEqual(bundles.map((_, i) => 10 + i));
    expect((await Promise.all(bundles.map((b) => del(b.id)))).map((d) => d.exitStatus)).toEqual(bundles.map((_, i) => 10 + i));
    for (const b of bundles) expect(tsrunState(b.id)).toBe(false);
  }, 60_000);

  test("a terminal for the init: Create with terminal hands the pty to the shim, output reaches stdout, ResizePty sets its size", async () => {
    const b = makeBundle(["sh", "-c", "sleep 0.3; stty size; tty"], { config: (c) => (c.process.terminal = true) });
    const reader = new FifoReader(b.stdout);
    await create({ ...createRequest(b), stderr: "", terminal: true });
    expect((await state(b.id)).terminal).toBe(true);
    await call("ResizePty", { id: b.id, width: 77, height: 33 }, p.resizePtyRequest, p.empty);
    await start(b.id);
    expect((await wait(b.id)).exitStatus).toBe(0);
    await del(b.id);
    const text = reader.drain();
    expect(text).toContain("33 77");
    expect(text).toMatch(/\/dev\/pts\/\d+/);
  }, 60_000);

  test("BinaryName naming another runc-compatible binary drives that binary (runc; tsrun under another name), failures read from its JSON log", async () => {
    const runc = "/usr/sbin/runc";
    const b = makeBundle(["sh", "-c", "exit 4"]);
    await create({ ...createRequest(b, runc), stdout: "", stderr: "" });
    // runc's own state, under the task's root and namespace.
    expect(existsSync(join(stateRoot, NS, b.id, "state.json"))).toBe(true);
    await start(b.id);
    expect((await wait(b.id)).exitStatus).toBe(4);
    expect((await del(b.id)).exitStatus).toBe(4);
    expect(existsSync(join(stateRoot, NS, b.id))).toBe(false);

    // A BinaryName naming tsrun is the library in the shim: no file is run, so even a path where
    // there is none works.
    const lib = makeBundle(["sh", "-c", "exit 6"]);
    await create({ ...createRequest(lib, join(dir, "no-such-dir/tsrun")), stdout: "", stderr: "" });
    await start(lib.id);
    expect((await wait(lib.id)).exitStatus).toBe(6);
    expect((await del(lib.id)).exitStatus).toBe(6);
    expect(JSON.parse(readFileSync(join(lib.bundle, "options.json"), "utf8"))).toEqual({ binary_name: join(dir, "no-such-dir/tsrun"), root: stateRoot });

    const renamed = join(dir, "runtime-bin");
    symlinkSync(TSRUN, renamed);
    const bad = makeBundle(["true"], { config: (c) => (c.process.cwd = "relative/dir") });
    const err = await failure(create({ ...createRequest(bad, renamed), stdin: "", stdout: "", stderr: "" }));
    expect(err.message).toStartWith(`OCI runtime create failed: ${renamed} create failed: `);
    expect(err.message).toContain("cwd");
  }, 60_000);

  test("the library's errors reach containerd with the runtime's words, and its JSON log line keeps the fields", async () => {
    const b = makeBundle(["true"], { config: (c) => c.mounts.push({ destination: "/mnt/x", type: "bind", source: "/no/such/dir", options: ["rbind"] }) });
    const err = await failure(create({ ...createRequest(b), stdout: "", stderr: "" }));
    expect(err.message).toStartWith("OCI runtime create failed: tsrun create failed: ");
    expect(err.message).toContain("/no/such/dir");
    const lines = readFileSync(join(b.bundle, "log.json"), "utf8").trim().split("\n");
    const logged = JSON.parse(lines.at(-1)!);
    expect(logged).toMatchObject({ level: "error", pointer: expect.stringMatching(/^\/mounts\/\d+\/source$/), id: b.id });
    expect(err.message).toContain(logged.msg);
    expect(tsrunState(b.id)).toBe(false);
    expect(mountedUnder(b.rootfs)).toEqual([]);
  }, 60_000);

  test("Shutdown ends the daemon; `delete` then cleans up and prints a DeleteResponse", async () => {
    await call("Shutdown", { id: `shim-${process.pid}` }, p.shutdownRequest, p.empty);
    const end = Date.now() + 10_000;
    while (existsSync(`/proc/${daemon.pid}`) && Date.now() < end) await Bun.sleep(20);
    expect(existsSync(`/proc/${daemon.pid}`)).toBe(false);
    expect(existsSync(daemon.socket)).toBe(false);
    const r = daemon.run(["-id", `shim-${process.pid}`, "-bundle", shimBundle, "delete"], shimBundle);
    expect(r.code).toBe(0);
    const res = p.deleteResponse.decode(r.stdout);
    expect(res.exitStatus).toBe(137);
    expect(res.exitedAt!.seconds).toBeGreaterThan(0);
  }, 60_000);
});
