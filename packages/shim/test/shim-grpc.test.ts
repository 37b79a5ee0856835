// The shim's bootstrap for containerd 1.7/2.x and its Task API over gRPC, without containerd:
// the real binary (dist/containerd-shim-tsrun-v2) is started as containerd runs it (flags, env,
// stdin, cwd = bundle) next to a fake containerd of the test's own (its Version service over
// gRPC, which `start` asks, and its events service over ttrpc, which the daemon publishes to),
// then driven over gRPC with @grpc/grpc-js as containerd 2.x drives it: Create/Start/Exec/Wait/
// State/Kill/Delete/Shutdown of a busybox container, and the status codes of what fails.
// The bootstrap's pure parts run without root; the rest needs root and `bun scripts/build.ts`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials, Metadata, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { mkfifo } from "@tsrun/runtime/linux";
import {
  announcedVersion,
  bootstrapFromStdin,
  BootstrapError,
  decodeBootstrapParams,
  engineOf,
  GRPC_SOCKET_SUFFIX,
  majorVersion,
  protocolFromEnv,
  socketsOf,
  startOutput,
} from "../src/bin/bootstrap.ts";
import { SHIM_NAME, SHIM_VERSION } from "../src/bin/name.ts";
import { SOCKET_DIR } from "../src/bin/manager.ts";
import { daemonPid, missingSocketDirs, mountedUnder, removeLeftovers, runcOptions, specBundle } from "./daemon-fixture.ts";
import { eventsProtoCodecs, EVENTS_SERVICE } from "../src/events/proto.ts";
import { taskProto, TASK_SERVICE_V2, TASK_SERVICE_V3, TaskStatus, type Codec, type Mount } from "../src/task/proto.ts";
import { TtrpcClient } from "../src/ttrpc/client.ts";
import { TtrpcServer } from "../src/ttrpc/server.ts";

const repo = join(import.meta.dir, "../../..");
const TSRUN = join(repo, "dist/tsrun");
const SHIM = join(repo, "dist", SHIM_NAME);
const canRun = process.getuid?.() === 0 && existsSync(TSRUN) && existsSync(SHIM);
const p = taskProto();

/** BootstrapParams as containerd 2.3 marshals it (pkg/shim/util.go), written with protobufjs's writer. */
function bootstrapParams(f: { id: string; ns: string; logLevel?: number; version?: string; ttrpc?: string; grpc?: string; binary?: string; options?: { typeUrl: string; value: Uint8Array }; socketDir?: string }): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string(f.id);
  w.uint32((2 << 3) | 2).string(f.ns);
  if (f.logLevel) w.uint32(3 << 3).int32(f.logLevel);
  w.uint32((4 << 3) | 2).string(f.version ?? "v2.3.4");
  w.uint32((5 << 3) | 2).string(f.ttrpc ?? "/run/containerd/containerd.sock.ttrpc");
  w.uint32((6 << 3) | 2).string(f.grpc ?? "/run/containerd/containerd.sock");
  w.uint32((7 << 3) | 2).string(f.binary ?? "/usr/bin/containerd");
  if (f.options) {
    const any = protobuf.Writer.create().uint32((1 << 3) | 2).string(f.options.typeUrl).uint32((2 << 3) | 2).bytes(f.options.value).finish();
    w.uint32((8 << 3) | 2).fork().uint32((1 << 3) | 2).bytes(any).ldelim();
  }
  if (f.socketDir !== undefined) w.uint32((9 << 3) | 2).string(f.socketDir);
  return w.finish();
}

/** An options Any as containerd before 2.3 writes it on stdin: proto.Marshal(Any). */
function optionsAny(root = "/run/tsrun"): Uint8Array {
  const value = p.runcOptions.encode({ binaryName: TSRUN, root });
  return p.any.encode({ typeUrl: "containerd.runc.v1.Options", value });
}

describe("bootstrap (pure)", () => {
  test("BootstrapParams decode, negative log levels included; a legacy options Any or another container's params are not taken for it", () => {
    const bytes = bootstrapParams({ id: "c1", ns: "k8s.io", logLevel: -4, version: "v2.3.4", options: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array([1, 2]) }, socketDir: "/run/containerd/s" });
    const d = decodeBootstrapParams(bytes);
    expect(d).toMatchObject({ instanceId: "c1", namespace: "k8s.io", logLevel: -4, containerdVersion: "v2.3.4", containerdBinary: "/usr/bin/containerd", socketDir: "/run/containerd/s" });
    expect(d.extensions.length).toBe(1);
    expect(decodeBootstrapParams(bootstrapParams({ id: "c1", ns: "n", logLevel: -8 })).logLevel).toBe(-8);
    expect(bootstrapFromStdin(bytes, "c1", "k8s.io")?.containerdVersion).toBe("v2.3.4");
    expect(bootstrapFromStdin(bytes, "c2", "k8s.io")).toBeUndefined();
    expect(bootstrapFromStdin(bytes, "c1", "default")).toBeUndefined();
    // An Any decodes as BootstrapParams too (type_url in field 1, value in 2): the id check rejects it.
    expect(decodeBootstrapParams(optionsAny()).instanceId).toBe("containerd.runc.v1.Options");
    expect(bootstrapFromStdin(optionsAny(), "c1", "default")).toBeUndefined();
    expect(bootstrapFromStdin(new Uint8Array(0), "c1", "default")).toBeUndefined();
    expect(() => decodeBootstrapParams(new Uint8Array([0x0a, 0x05, 0x61]))).toThrow(BootstrapError);
    expect(() => decodeBootstrapParams(new Uint8Array([0x08, 0x01]))).toThrow("field 1 has wire type 0");
  });

  test("protocol from TSRUN_SHIM_PROTOCOL, ttrpc by default; anything else is an error", () => {
    expect(protocolFromEnv({})).toBe("ttrpc");
    expect(protocolFromEnv({ TSRUN_SHIM_PROTOCOL: "grpc" })).toBe("grpc");
    expect(protocolFromEnv({ TSRUN_SHIM_PROTOCOL: "ttrpc" })).toBe("ttrpc");
    expect(() => protocolFromEnv({ TSRUN_SHIM_PROTOCOL: "http" })).toThrow('TSRUN_SHIM_PROTOCOL="http": use ttrpc or grpc');
  });

  test("the version announced per engine, asking containerd only for gRPC between 1.7 and 2.2", async () => {
    const never = () => Promise.reject(new Error("asked"));
    const params = decodeBootstrapParams(bootstrapParams({ id: "c", ns: "n" }));
    expect(engineOf(params, {})).toEqual({ kind: "bootstrap", version: "v2.3.4" });
    expect(engineOf(undefined, { MAX_SHIM_VERSION: "2" })).toEqual({ kind: "json" });
    expect(engineOf(undefined, {})).toEqual({ kind: "plain" });
    expect(await announcedVersion({ kind: "bootstrap", version: "v2.3.4" }, "ttrpc", never)).toBe(3);
    expect(await announcedVersion({ kind: "bootstrap", version: "v2.3.4" }, "grpc", never)).toBe(3);
    expect(await announcedVersion({ kind: "json" }, "ttrpc", never)).toBeUndefined();
    expect(await announcedVersion({ kind: "plain" }, "ttrpc", never)).toBeUndefined();
    expect(await announcedVersion({ kind: "json" }, "grpc", () => Promise.resolve("v2.1.5"))).toBe(3);
    expect(await announcedVersion({ kind: "json" }, "grpc", () => Promise.resolve("1.7.27~ds1"))).toBe(2);
    await expect(announcedVersion({ kind: "json" }, "grpc", () => Promise.resolve("dev"))).rejects.toThrow("does not say whether it is 1.x or 2.x");
    await expect(announcedVersion({ kind: "plain" }, "grpc", never)).rejects.toThrow("needs containerd 1.7 or later");
    expect([majorVersion("v2.1.5"), majorVersion("1.6.20~ds1"), majorVersion("x")]).toEqual([2, 1, NaN]);
  });

  test("start's output: a plain ttrpc address, or JSON with a unix:// ttrpc address or a bare gRPC path; and back to the sockets", () => {
    const s = "/run/containerd/s/abc";
    expect(startOutput(s, "ttrpc", undefined)).toBe("unix:///run/containerd/s/abc");
    expect(JSON.parse(startOutput(s, "ttrpc", 3))).toEqual({ version: 3, address: "unix:///run/containerd/s/abc", protocol: "ttrpc" });
    expect(JSON.parse(startOutput(s, "grpc", 3))).toEqual({ version: 3, address: `${s}${GRPC_SOCKET_SUFFIX}`, protocol: "grpc" });
    expect(JSON.parse(startOutput(s, "grpc", 2))).toEqual({ version: 2, address: `${s}${GRPC_SOCKET_SUFFIX}`, protocol: "grpc" });
    expect(() => startOutput(s, "grpc", undefined)).toThrow(BootstrapError);
    expect(socketsOf("unix:///run/containerd/s/abc")).toEqual([s]);
    expect(socketsOf(startOutput(s, "ttrpc", 3))).toEqual([s]);
    expect(socketsOf(startOutput(s, "grpc", 3))).toEqual([s, `${s}${GRPC_SOCKET_SUFFIX}`]);
    expect(socketsOf("")).toEqual([]);
  });
});

// ---- The binary, as containerd runs it ----------------------------------------------------

const NS = "tsrun-grpc-test";
const dir = mkdtempSync(join(tmpdir(), "tsrun-shimgrpc-"));
const stateRoot = join(dir, "state");
const layer = join(dir, "layer");
const containerdSock = join(dir, "containerd.sock");
const ttrpcSock = join(dir, "containerd.sock.ttrpc");
/** What the fake containerd's Version service reports. */
let containerdVersion = "v2.1.5";
let versionAsked = 0;
const events: { topic: string; ns: string }[] = [];
let versionServer: Server | undefined;
let eventsServer: TtrpcServer | undefined;
const daemons = new Set<number>();
const sockets = new Set<string>();
const madeDirs = missingSocketDirs();
// Whatever ran (a filtered run skips the root tests' own clean-up), the directory goes.
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function waitGone(pid: number, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (existsSync(`/proc/${pid}`) && Date.now() < end) await Bun.sleep(20);
  return !existsSync(`/proc/${pid}`);
}

/** The environment containerd 1.7/2.0–2.2 gives a shim (pkg/shim/util.go Command), plus ours (no idle linger: each test sees its daemon go). */
function containerdEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string | undefined> = { PATH: process.env.PATH, TSRUN_SHIM_LINGER_MS: "0", GOMAXPROCS: "2", MAX_SHIM_VERSION: "2", TTRPC_ADDRESS: ttrpcSock, GRPC_ADDRESS: containerdSock, NAMESPACE: NS, ...extra };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Runs `start` as containerd does (asynchronously: the fake containerd in this process must answer it). */
async function shimStart(id: string, bundle: string, env: Record<string, string>, stdin: Uint8Array, address = containerdSock) {
  const proc = Bun.spawn([SHIM, "-namespace", NS, "-address", address, "-publish-binary", "/bin/true", "-id", id, "start"], { cwd: bundle, env, stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Remembers the daemon a start output names, for the clean-up. */
function track(output: string): string[] {
  const socks = socketsOf(output);
  for (const s of socks) sockets.add(s);
  const pid = daemonPid(socks[0]!);
  if (pid > 0) daemons.add(pid);
  return socks;
}

class TaskGrpc {
  private client: Client;
  constructor(
    path: string,
    private readonly ns: string,
    private readonly service = TASK_SERVICE_V3,
  ) {
    // As containerd dials it: the bare path from the bootstrap, as unix://.
    this.client = new Client(`unix://${path}`, credentials.createInsecure());
  }
  call<Req, Res>(method: string, req: Partial<Req>, reqCodec: Codec<Req>, resCodec: Codec<Res>): Promise<Res> {
    const md = new Metadata();
    md.set("containerd-namespace", this.ns);
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(
        `/${this.service}/${method}`,
        (r: Partial<Req>) => Buffer.from(reqCodec.encode(r)),
        (b: Buffer) => resCodec.decode(new Uint8Array(b)),
        req,
        md,
        { deadline: Date.now() + 30_000 },
        (err, res) => (err ? reject(err) : resolve(res as Res)),
      ),
    );
  }
  close(): void {
    this.client.close();
  }
}

/** Over gRPC on `grpcSocket`: Connect (the daemon answering must be `pid`), then Shutdown. */
async function connectAndShutdown(grpcSocket: string, id: string, pid: number): Promise<void> {
  const c = new TaskGrpc(grpcSocket, NS);
  try {
    expect((await c.call("Connect", { id }, p.connectRequest, p.connectResponse)).shimPid).toBe(pid);
    await c.call("Shutdown", { id }, p.shutdownRequest, p.empty);
  } finally {
    c.close();
  }
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: unknown) => e as ServiceError,
  );

let seq = 0;
function makeBundle(args: string[]): { id: string; bundle: string; rootfs: string; mounts: Mount[]; stdout: string; stderr: string } {
  const id = `grpc-${process.pid}-${seq++}`;
  const { bundle, rootfs } = specBundle(TSRUN, join(dir, id), args, false);
  mkdirSync(join(dir, `${id}.upper`));
  mkdirSync(join(dir, `${id}.work`));
  const mounts = [{ type: "overlay", source: "overlay", target: "", options: [`workdir=${join(dir, `${id}.work`)}`, `upperdir=${join(dir, `${id}.upper`)}`, `lowerdir=${layer}`] }];
  const fifo = (name: string) => {
    const path = join(dir, `${id}-${name}`);
    mkfifo(path, 0o600);
    return path;
  };
  return { id, bundle, rootfs, mounts, stdout: fifo("stdout"), stderr: fifo("stderr") };
}

/** The reading end of an output fifo, opened before Create, drained once every writer is gone. */
function fifoReader(path: string): () => string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return () => {
    const buf = Buffer.alloc(65536);
    let out = "";
    for (;;) {
      const n = readSync(fd, buf);
      if (n === 0) break;
      out += buf.subarray(0, n).toString();
    }
    closeSync(fd);
    return out;
  };
}

/** containerd.types.RuntimeInfo as containerd 2.x unmarshals it, the fields the shim writes. */
function decodeRuntimeInfo(bytes: Uint8Array) {
  const r = protobuf.Reader.create(bytes);
  const info: { name: string; version: string; revision: string; options?: Uint8Array; featuresType?: string; features?: unknown } = { name: "", version: "", revision: "" };
  while (r.pos < r.len) {
    const key = r.uint32();
    const sub = (fn: (field: number, r: protobuf.Reader) => void) => {
      const m = protobuf.Reader.create(r.bytes());
      while (m.pos < m.len) {
        const k = m.uint32();
        fn(k >>> 3, m);
      }
    };
    switch (key >>> 3) {
      case 1: info.name = r.string(); break;
      case 2: sub((f, m) => (f === 1 ? (info.version = m.string()) : (info.revision = m.string()))); break;
      case 3: info.options = r.bytes(); break;
      case 4: sub((f, m) => (f === 1 ? (info.featuresType = m.string()) : (info.features = JSON.parse(new TextDecoder().decode(m.bytes()))))); break;
      default: r.skipType(key & 7);
    }
  }
  return info;
}

describe("-info (containerd 2.x: ctr plugins inspect-runtime, idmapped mounts)", () => {
  const info = (stdin: Uint8Array) => {
    const r = Bun.spawnSync([SHIM, "-info"], { stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, stderr: r.stderr.toString(), info: r.exitCode === 0 ? decodeRuntimeInfo(r.stdout) : undefined };
  };

  test("RuntimeInfo with tsrun's features as JSON, the options echoed; another BinaryName's own features; garbage is an error", () => {
    expect(existsSync(SHIM)).toBe(true);
    const version = Bun.spawnSync([TSRUN, "--version"]).stdout.toString();
    const features = JSON.parse(Bun.spawnSync([TSRUN, "features"]).stdout.toString());
    const plain = info(new Uint8Array(0));
    expect([plain.code, plain.stderr]).toEqual([0, ""]);
    expect(plain.info).toMatchObject({ name: "io.containerd.tsrun.v2", featuresType: "types.containerd.io/opencontainers/runtime-spec/1/features/Features", features });
    expect(plain.info!.options).toBeUndefined();
    expect(version).toContain(`tsrun version ${plain.info!.version}\ncommit: ${plain.info!.revision}\n`);
    expect((plain.info!.features as { linux: { mountExtensions: { idmap: { enabled: boolean } } } }).linux.mountExtensions.idmap.enabled).toBe(true);

    const withOptions = info(optionsAny());
    expect(withOptions.code).toBe(0);
    expect(withOptions.info!.options).toEqual(optionsAny());
    expect(withOptions.info!.features).toEqual(features);

    // A BinaryName that is another runtime: its `features` output (here a script's), not tsrun's.
    const other = join(dir, "other-runtime");
    writeFileSync(other, `#!/bin/sh\n[ "$1" = features ] && echo '{"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2"}'\n`, { mode: 0o755 });
    const otherAny = p.any.encode({ typeUrl: "containerd.runc.v1.Options", value: p.runcOptions.encode({ binaryName: other }) });
    expect(info(otherAny).info!.features).toEqual({ ociVersionMin: "1.0.0", ociVersionMax: "1.0.2" });
    // One without `features`: left out, as containerd's runc shim leaves it.
    const none = p.any.encode({ typeUrl: "containerd.runc.v1.Options", value: p.runcOptions.encode({ binaryName: "/bin/false" }) });
    const noFeatures = info(none);
    expect([noFeatures.code, noFeatures.info!.featuresType, noFeatures.info!.features]).toEqual([0, undefined, undefined]);

    const bad = info(new Uint8Array([0x0a, 0x7f]));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("-info: stdin is not a protobuf Any of runtime options");
  });
});


test("requirements: root, dist/tsrun and dist/containerd-shim-tsrun-v2 (bun scripts/build.ts)", () => {
  expect(canRun).toBe(true);
});

describe("the binary behind a fake containerd (root)", () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-rootfs.sh"), layer]);
    if (!mk.success) throw new Error(`make-rootfs.sh: ${mk.stderr}`);
    // containerd.services.version.v1.Version/Version → VersionResponse{version = 1, revision = 2}.
    versionServer = new Server();
    versionServer.addService(
      {
        Version: {
          path: "/containerd.services.version.v1.Version/Version",
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Uint8Array) => Buffer.from(b),
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        Version: (_call: unknown, cb: (err: null, res: Uint8Array) => void) => {
          versionAsked++;
          cb(null, protobuf.Writer.create().uint32(10).string(containerdVersion).uint32(18).string("test").finish());
        },
      },
    );
    await new Promise<void>((resolve, reject) => versionServer!.bindAsync(`unix://${containerdSock}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    eventsServer = new TtrpcServer();
    eventsServer.register(EVENTS_SERVICE, {
      Forward: (payload) => {
        const e = eventsProtoCodecs().forwardRequest.decode(payload).envelope;
        events.push({ topic: e.topic, ns: e.namespace });
        return new Uint8Array(0);
      },
    });
    eventsServer.listen(ttrpcSock);
  }, 60_000);

  afterAll(() => {
    eventsServer?.close();
    versionServer?.forceShutdown();
    // The daemons (gone already, as they should be), mounts, sockets, the directory, the socket dirs made.
    removeLeftovers({ pids: daemons, dir, sockets, made: madeDirs });
  }, 30_000);

  test("containerd 2.0–2.2 (MAX_SHIM_VERSION, an options Any on stdin, Version v2.1.5): v3 over gRPC, the whole lifecycle, the error codes, nothing left", async () => {
    containerdVersion = "v2.1.5";
    const asked = versionAsked;
    const b = makeBundle(["sh", "-c", "echo hello; exec sleep 1000"]);
    const start = await shimStart(b.id, b.bundle, containerdEnv({ TSRUN_SHIM_PROTOCOL: "grpc" }), optionsAny(stateRoot));
    expect([start.code, start.stderr]).toEqual([0, ""]);
    const boot = JSON.parse(start.stdout);
    expect(boot).toMatchObject({ version: 3, protocol: "grpc" });
    expect(boot.address).toMatch(new RegExp(`^${SOCKET_DIR}/[0-9a-f]{64}\\${GRPC_SOCKET_SUFFIX}$`));
    expect(versionAsked).toBe(asked + 1);
    expect(readFileSync(join(b.bundle, "address"), "utf8")).toBe(start.stdout);
    const [control, grpcSocket] = track(start.stdout);
    const shimPid = daemonPid(control!);
    expect(shimPid).toBeGreaterThan(0);

    // Calls carry their namespace as gRPC metadata; another than the -namespace flag's, to see it count.
    const MD_NS = `${NS}-md`;
    const c = new TaskGrpc(grpcSocket!, MD_NS);
    const v2 = new TaskGrpc(grpcSocket!, MD_NS, TASK_SERVICE_V2);
    try {
      const connected = await c.call("Connect", { id: b.id }, p.connectRequest, p.connectResponse);
      expect([connected.shimPid, connected.version]).toEqual([shimPid, SHIM_VERSION]);
      // containerd calls only v3 over gRPC; v2 is not served there.
      expect((await failure(v2.call("Connect", { id: b.id }, p.connectRequest, p.connectResponse))).code).toBe(status.UNIMPLEMENTED);

      const out = fifoReader(b.stdout);
      const err = fifoReader(b.stderr);
      const options = runcOptions(TSRUN, stateRoot);
      const { pid } = await c.call("Create", { id: b.id, bundle: b.bundle, rootfs: b.mounts, stdout: b.stdout, stderr: b.stderr, options }, p.createRequest, p.createResponse);
      expect(pid).toBeGreaterThan(0);
      expect(mountedUnder(b.rootfs)).toEqual([b.rootfs]);
      // The namespace came as gRPC metadata: the runtime's state is under it.
      expect([existsSync(join(stateRoot, MD_NS, b.id)), existsSync(join(stateRoot, NS, b.id))]).toEqual([true, false]);
      expect(await c.call("State", { id: b.id }, p.stateRequest, p.stateResponse)).toMatchObject({ id: b.id, bundle: b.bundle, pid, status: TaskStatus.CREATED });
      expect((await c.call("Start", { id: b.id }, p.startRequest, p.startResponse)).pid).toBe(pid);
      expect((await c.call("State", { id: b.id }, p.stateRequest, p.stateResponse)).status).toBe(TaskStatus.RUNNING);

      // Exec: its own output fifo, its exit status, then its Delete.
      const execOut = join(dir, `${b.id}-exec-out`);
      mkfifo(execOut, 0o600);
      const readExec = fifoReader(execOut);
      const spec = { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", value: new TextEncoder().encode(JSON.stringify({ args: ["sh", "-c", "echo from-exec; exit 5"], cwd: "/", env: ["PATH=/bin"], user: { uid: 0, gid: 0 } })) };
      await c.call("Exec", { id: b.id, execId: "e1", stdout: execOut, spec }, p.execRequest, p.empty);
      const execPid = (await c.call("Start", { id: b.id, execId: "e1" }, p.startRequest, p.startResponse)).pid;
      expect(execPid).toBeGreaterThan(0);
      expect((await c.call("Wait", { id: b.id, execId: "e1" }, p.waitRequest, p.waitResponse)).exitStatus).toBe(5);
      expect(readExec()).toBe("from-exec\n");
      expect((await c.call("Delete", { id: b.id, execId: "e1" }, p.deleteRequest, p.deleteResponse)).exitStatus).toBe(5);

      // The codes containerd maps to its errdefs, as over ttrpc.
      const codes = async (calls: Promise<unknown>[]) => (await Promise.all(calls.map(failure))).map((e) => status[e.code]);
      expect(
        await codes([
          c.call("State", { id: "no-such-task" }, p.stateRequest, p.stateResponse),
          c.call("Kill", { id: "no-such-task", signal: 9 }, p.killRequest, p.empty),
          c.call("State", { id: b.id, execId: "e1" }, p.stateRequest, p.stateResponse),
          c.call("Start", { id: b.id }, p.startRequest, p.startResponse),
          c.call("ResizePty", { id: b.id, width: 80, height: 24 }, p.resizePtyRequest, p.empty),
          c.call("Delete", { id: b.id }, p.deleteRequest, p.deleteResponse),
          c.call("Checkpoint", { id: b.id }, p.idRequest, p.empty),
        ]),
      ).toEqual(["NOT_FOUND", "NOT_FOUND", "NOT_FOUND", "FAILED_PRECONDITION", "FAILED_PRECONDITION", "FAILED_PRECONDITION", "UNIMPLEMENTED"]);
      const msg = await failure(c.call("Start", { id: b.id }, p.startRequest, p.startResponse));
      expect(msg.details).toBe(`task "${b.id}" has already been started`);

      // Wait is pending while Kill goes through on the same connection.
      const waiting = c.call("Wait", { id: b.id }, p.waitRequest, p.waitResponse);
      await c.call("Kill", { id: b.id, signal: 9 }, p.killRequest, p.empty);
      const exit = await waiting;
      expect(exit.exitStatus).toBe(137);
      expect(exit.exitedAt!.seconds).toBeGreaterThan(0);
      expect((await failure(c.call("Pause", { id: b.id }, p.idRequest, p.empty))).code).toBe(status.FAILED_PRECONDITION);
      expect(out()).toBe("hello\n");
      expect(err()).toBe("");
      const deleted = await c.call("Delete", { id: b.id }, p.deleteRequest, p.deleteResponse);
      expect([deleted.pid, deleted.exitStatus]).toEqual([pid, 137]);
      expect(mountedUnder(b.rootfs)).toEqual([]);
      expect(existsSync(join(stateRoot, MD_NS, b.id))).toBe(false);
      expect((await failure(c.call("State", { id: b.id }, p.stateRequest, p.stateResponse))).code).toBe(status.NOT_FOUND);

      await c.call("Shutdown", { id: b.id }, p.shutdownRequest, p.empty);
    } finally {
      c.close();
      v2.close();
    }
    expect(await waitGone(shimPid)).toBe(true);
    expect([existsSync(control!), existsSync(grpcSocket!)]).toEqual([false, false]);
    // The events went to containerd's ttrpc address (TTRPC_ADDRESS), in order, in the shim's namespace.
    expect(events.map((e) => e.topic)).toEqual(["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/exit", "/tasks/delete"]);
    expect(new Set(events.map((e) => e.ns))).toEqual(new Set([NS]));
    // `delete`, which containerd runs after the connection closes: idempotent, a DeleteResponse.
    const del = Bun.spawnSync([SHIM, "-namespace", NS, "-address", containerdSock, "-publish-binary", "/bin/true", "-id", b.id, "-bundle", b.bundle, "delete"], { cwd: b.bundle, env: containerdEnv({}), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    expect([del.exitCode, del.stderr.toString()]).toEqual([0, ""]);
    expect(p.deleteResponse.decode(del.stdout).exitStatus).toBe(137);
  }, 90_000);

  test("containerd 1.7 (Version 1.7.27): version 2 over gRPC, which 1.7 takes; then Shutdown ends the daemon", async () => {
    containerdVersion = "1.7.27";
    const b = makeBundle(["true"]);
    const start = await shimStart(b.id, b.bundle, containerdEnv({ TSRUN_SHIM_PROTOCOL: "grpc" }), new Uint8Array(0));
    expect([start.code, start.stderr]).toEqual([0, ""]);
    expect(JSON.parse(start.stdout)).toMatchObject({ version: 2, protocol: "grpc" });
    const [control, grpcSocket] = track(start.stdout);
    const pid = daemonPid(control!);
    await connectAndShutdown(grpcSocket!, b.id, pid);
    expect(await waitGone(pid)).toBe(true);
    expect([existsSync(control!), existsSync(grpcSocket!)]).toEqual([false, false]);
  }, 30_000);

  test("containerd 2.3+ (BootstrapParams on stdin): version 3 without asking containerd, over ttrpc by default and over gRPC when asked", async () => {
    for (const protocol of ["ttrpc", "grpc"] as const) {
      const b = makeBundle(["true"]);
      const asked = versionAsked;
      const stdin = bootstrapParams({ id: b.id, ns: NS, logLevel: -4, ttrpc: ttrpcSock, grpc: containerdSock, options: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array(0) } });
      // -address names no socket: had start asked containerd anything, it would have failed.
      const start = await shimStart(b.id, b.bundle, containerdEnv({ TSRUN_SHIM_PROTOCOL: protocol === "grpc" ? "grpc" : undefined }), stdin, join(dir, "nowhere.sock"));
      expect([start.code, start.stderr]).toEqual([0, ""]);
      expect(versionAsked).toBe(asked);
      const boot = JSON.parse(start.stdout);
      expect(boot).toMatchObject({ version: 3, protocol });
      const [control, grpcSocket] = track(start.stdout);
      const pid = daemonPid(control!);
      if (protocol === "ttrpc") {
        expect(boot.address).toBe(`unix://${control}`);
        const t = await TtrpcClient.connect(control!);
        try {
          const r = p.connectResponse.decode(await t.call(TASK_SERVICE_V3, "Connect", p.connectRequest.encode({ id: b.id }), { timeoutMs: 10_000 }));
          expect(r.shimPid).toBe(pid);
          await t.call(TASK_SERVICE_V3, "Shutdown", p.shutdownRequest.encode({ id: b.id }), { timeoutMs: 10_000 });
        } finally {
          t.close();
        }
      } else {
        expect(boot.address).toBe(grpcSocket);
        await connectAndShutdown(grpcSocket!, b.id, pid);
      }
      expect(await waitGone(pid)).toBe(true);
      expect(existsSync(control!)).toBe(false);
    }
  }, 60_000);

  test("containerd 1.6 (no MAX_SHIM_VERSION) with TSRUN_SHIM_PROTOCOL=grpc: start fails saying why, and spawns nothing", async () => {
    const b = makeBundle(["true"]);
    const env = containerdEnv({ TSRUN_SHIM_PROTOCOL: "grpc", MAX_SHIM_VERSION: undefined, GRPC_ADDRESS: undefined, NAMESPACE: undefined });
    const start = await shimStart(b.id, b.bundle, env, optionsAny(stateRoot));
    expect(start.code).toBe(1);
    expect(start.stdout).toBe("");
    expect(start.stderr).toContain("TSRUN_SHIM_PROTOCOL=grpc needs containerd 1.7 or later");
    expect(existsSync(join(b.bundle, "address"))).toBe(false);
    // No daemon was spawned for it (a daemon's argv carries the container's id).
    expect(daemonPid(b.id)).toBe(0);
    const bad = await shimStart(b.id, b.bundle, containerdEnv({ TSRUN_SHIM_PROTOCOL: "h2" }), new Uint8Array(0));
    expect([bad.code, bad.stdout, bad.stderr]).toEqual([1, "", `${SHIM_NAME}: TSRUN_SHIM_PROTOCOL="h2": use ttrpc or grpc\n`]);
  }, 30_000);
});
