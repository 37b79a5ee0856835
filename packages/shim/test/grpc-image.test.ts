// The gRPC image service end to end: serveImages on a unix socket in front of an in-memory
// ImageService, connectImages as the caller. Every RPC and every field is sent through and
// compared with what the service received and what the client got back.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { ImageServiceError } from "../src/grpc/errors.ts";
import { connectImages, type ImageClient } from "../src/grpc/image-client.ts";
import { serveImages, type ImageServer } from "../src/grpc/image-server.ts";
import { serveImagesCommand } from "../src/grpc/serve.ts";
import { ImageNotFound, type BundleRequest, type CommitRequest, type PullRequest } from "../src/image/service.ts";
import { DETAILS, FakeImageService, namedError, SPEC, SUMMARY_A, SUMMARY_B } from "./grpc-image-fake.ts";

const tmp = mkdtempSync(join(tmpdir(), "tsrun-grpc-image-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshDir = () => mkdtempSync(join(tmp, `d${seq++}-`));

let fake: FakeImageService;
let server: ImageServer;
let client: ImageClient;
let socket: string;
const internalErrors: unknown[] = [];

beforeEach(async () => {
  fake = new FakeImageService();
  internalErrors.length = 0;
  socket = join(freshDir(), "images.sock");
  server = await serveImages(fake, `unix://${socket}`, { onInternalError: (_rpc, err) => internalErrors.push(err) });
  client = connectImages(server.address);
});
afterEach(async () => {
  client.close();
  await server.close(1000);
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the call to fail");
}

describe("round trips", () => {
  test("import: file alone, and with a name", async () => {
    expect(await client.import("/images/busybox.tar")).toEqual([SUMMARY_A, SUMMARY_B]);
    expect(await client.import("/images/multi", { name: "example.com/one:1" })).toEqual([{ ...SUMMARY_A, name: "example.com/one:1" }]);
    expect(fake.calls).toEqual([
      { method: "import", args: ["/images/busybox.tar", undefined] },
      { method: "import", args: ["/images/multi", { name: "example.com/one:1" }] },
    ]);
  });

  test("import: an empty name is sent as given, not dropped", async () => {
    await client.import("/f", { name: "" }).catch(() => {});
    expect(fake.calls[0]!.args).toEqual(["/f", { name: "" }]);
  });

  test("list: several, and none", async () => {
    expect(await client.list()).toEqual([SUMMARY_A, SUMMARY_B]);
    fake.summaries = [];
    expect(await client.list()).toEqual([]);
    expect(fake.calls.map((c) => c.method)).toEqual(["list", "list"]);
  });

  test("pull: optional fields absent stay absent", async () => {
    const got = await client.pull({ ref: "busybox" });
    expect(got).toEqual({ ...SUMMARY_B, name: "busybox" });
    const req = fake.calls[0]!.args[0] as PullRequest;
    expect(req).toEqual({ ref: "busybox" });
    expect(Object.keys(req)).toEqual(["ref"]);
  });

  test("pull: every field present, false and empty values kept", async () => {
    const full: PullRequest = { ref: "localhost:5000/x:y", platform: "linux/arm/v7", plainHttp: false, credentials: { username: "ü", password: "" } };
    const got = await client.pull(full);
    expect(got.platform).toBe("linux/arm/v7");
    expect(fake.calls[0]!.args[0]).toEqual(full);
    await client.pull({ ref: "r", plainHttp: true });
    expect(fake.calls[1]!.args[0]).toEqual({ ref: "r", plainHttp: true });
  });

  test("inspect: details with manifest, config and layers", async () => {
    const got = await client.inspect("busybox");
    expect(got).toEqual(DETAILS);
    expect(got.layers[0]!.unpacked).toBe(true);
    expect(got.layers[1]!.unpacked).toBe(false);
    expect(got.manifest.layers[0]!.size).toBe(2 ** 33);
    expect(fake.calls).toEqual([{ method: "inspect", args: ["busybox"] }]);
  });

  test("remove and removeBundle", async () => {
    expect(await client.remove("docker.io/library/busybox:latest")).toBeUndefined();
    expect(await client.removeBundle("/run/b/1")).toBeUndefined();
    expect(fake.calls).toEqual([
      { method: "remove", args: ["docker.io/library/busybox:latest"] },
      { method: "removeBundle", args: ["/run/b/1"] },
    ]);
  });

  test("bundle: only the required fields", async () => {
    const got = await client.bundle({ image: "busybox", dir: "/b/1" });
    expect(got).toEqual({ dir: "/b/1", rootfs: "/b/1/rootfs", config: SPEC, mode: "overlay" });
    const req = fake.calls[0]!.args[0] as BundleRequest;
    expect(req).toEqual({ image: "busybox", dir: "/b/1" });
    expect(Object.keys(req).sort()).toEqual(["dir", "image"]);
  });

  test("bundle: every field, with empty lists and false flags kept apart from absent", async () => {
    const full: BundleRequest = {
      image: "busybox",
      dir: "/b/2",
      id: "copy",
      args: [],
      entrypoint: [],
      env: ["A=1", "B=", "C=ü x"],
      user: "1000:1000",
      cwd: "/work dir",
      tty: false,
      hostname: "box",
      readonlyRootfs: true,
      seccomp: "unconfined",
    };
    const got = await client.bundle(full);
    expect(got).toEqual({ dir: "/b/2", rootfs: "/b/2/rootfs", config: { ...SPEC, hostname: "box" }, mode: "copy" });
    expect(fake.calls[0]!.args[0]).toEqual(full);

    const other: BundleRequest = { image: "i", dir: "/b/3", args: ["sh", "-c", ""], entrypoint: ["/init"], tty: true, readonlyRootfs: false, seccomp: "default" };
    await client.bundle(other);
    expect(fake.calls[1]!.args[0]).toEqual(other);
  });

  test("bundle: the spec comes back as the service made it", async () => {
    const config = { ...SPEC, annotations: { "k\u0000": "v\u2028", deep: JSON.stringify({ a: [1, 2] }) } };
    fake.bundleResult = (req) => ({ dir: req.dir, rootfs: "/mnt/x", config, mode: "overlay" });
    expect((await client.bundle({ image: "i", dir: "/d" })).config).toEqual(config);
  });

  test("commit: without changes, with empty changes, with every change", async () => {
    const bare: CommitRequest = { bundle: "/b/1", ref: "example.com/new:1" };
    expect(await client.commit(bare)).toEqual({ ...SUMMARY_A, name: "example.com/new:1" });
    expect(fake.calls[0]!.args[0]).toEqual(bare);
    expect("changes" in (fake.calls[0]!.args[0] as object)).toBe(false);

    const empty: CommitRequest = { bundle: "/b/1", ref: "r", changes: {} };
    await client.commit(empty);
    expect(fake.calls[1]!.args[0]).toEqual(empty);

    const full: CommitRequest = {
      bundle: "/b/1",
      ref: "r2",
      author: "Ann <ann@example.com>",
      message: "",
      changes: { cmd: [], entrypoint: ["/bin/sh", "-c"], env: ["X=1"], workingDir: "/srv", user: "nobody" },
    };
    await client.commit(full);
    expect(fake.calls[2]!.args[0]).toEqual(full);
  });
});

describe("errors", () => {
  test("ImageNotFound comes back as ImageNotFound, with the server's ref and message", async () => {
    fake.failNext.set("inspect", new ImageNotFound("docker.io/library/nope:latest"));
    const e = await rejection(client.inspect("nope"));
    expect(e).toBeInstanceOf(ImageNotFound);
    expect((e as ImageNotFound).ref).toBe("docker.io/library/nope:latest");
    expect(e.message).toBe(new ImageNotFound("docker.io/library/nope:latest").message);
    expect(e.name).toBe("ImageNotFound");
  });

  test("ImageNotFound from bundle and remove too", async () => {
    fake.failNext.set("bundle", new ImageNotFound("alpine"));
    const b = await rejection(client.bundle({ image: "alpine", dir: "/x" }));
    expect(b).toBeInstanceOf(ImageNotFound);
    expect((b as ImageNotFound).ref).toBe("alpine");
    fake.failNext.set("remove", new ImageNotFound("gone"));
    expect(await rejection(client.remove("gone"))).toBeInstanceOf(ImageNotFound);
  });

  const cases: [string, () => unknown, status, string][] = [
    ["DigestMismatchError", () => namedError("DigestMismatchError", "layer sha256:abc: digest mismatch"), status.DATA_LOSS, "DigestMismatchError"],
    ["ImageReferenceError", () => namedError("ImageReferenceError", "cannot parse reference \"UPPER\""), status.INVALID_ARGUMENT, "ImageReferenceError"],
    ["ImageSpecError", () => namedError("ImageSpecError", "no command specified"), status.INVALID_ARGUMENT, "ImageSpecError"],
    ["TypeError", () => new TypeError("args must be strings"), status.INVALID_ARGUMENT, "TypeError"],
    ["message starting with invalid", () => new Error("invalid platform \"linux/\""), status.INVALID_ARGUMENT, "Error"],
    ["RegistryAuthError", () => namedError("RegistryAuthError", "registry refused the credentials"), status.UNAUTHENTICATED, "RegistryAuthError"],
    ["any other error", () => new Error("EIO: i/o error, read"), status.INTERNAL, "Error"],
    ["a class of the image package", () => namedError("LayerUnpackError", "layer sha256:d: entry ../x escapes"), status.INTERNAL, "LayerUnpackError"],
  ];
  for (const [what, make, code, name] of cases) {
    test(`${what} -> ${status[code]}`, async () => {
      const err = make() as Error;
      fake.failNext.set("pull", err);
      const e = await rejection(client.pull({ ref: "r" }));
      expect(e).toBeInstanceOf(ImageServiceError);
      expect((e as ImageServiceError).code).toBe(code);
      expect(e.name).toBe(name);
      expect(e.message).toBe(err.message);
    });
  }

  test("INTERNAL carries the message, never the stack; the server's log gets the error", async () => {
    const err = new Error("disk on fire");
    fake.failNext.set("list", err);
    const e = await rejection(client.list());
    expect(e.message).toBe("disk on fire");
    expect(e.message).not.toContain(" at ");
    expect(e.message).not.toContain(".ts");
    expect(internalErrors).toEqual([err]);
  });

  test("JavaScript's own ReferenceError is a server bug: INTERNAL", async () => {
    let bug: unknown;
    try {
      // @ts-expect-error: the undefined name is the point
      undefinedVariable.x;
    } catch (e) {
      bug = e;
    }
    fake.failNext.set("list", bug);
    const e = (await rejection(client.list())) as ImageServiceError;
    expect(e.code).toBe(status.INTERNAL);
  });

  test("a thrown non-Error is INTERNAL and says what was thrown", async () => {
    fake.failNext.set("list", "just a string");
    const e = (await rejection(client.list())) as ImageServiceError;
    expect(e.code).toBe(status.INTERNAL);
    expect(e.message).toContain("just a string");
  });

  test("empty required fields are refused before reaching the service", async () => {
    const tries: [string, Promise<unknown>][] = [
      ["file", client.import("")],
      ["ref", client.pull({ ref: "" })],
      ["ref", client.inspect("")],
      ["ref", client.remove("")],
      ["image", client.bundle({ image: "", dir: "/d" })],
      ["dir", client.bundle({ image: "i", dir: "" })],
      ["dir", client.removeBundle("")],
      ["bundle", client.commit({ bundle: "", ref: "r" })],
      ["ref", client.commit({ bundle: "/b", ref: "" })],
    ];
    for (const [field, p] of tries) {
      const e = (await rejection(p)) as ImageServiceError;
      expect(e.code).toBe(status.INVALID_ARGUMENT);
      expect(e.message).toContain(`${field} is required`);
    }
    expect(fake.calls).toEqual([]);
  });

  test("an unknown seccomp value is refused by the client before sending", async () => {
    const e = await rejection(client.bundle({ image: "i", dir: "/d", seccomp: "strict" as "default" }));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toContain("seccomp");
    expect(fake.calls).toEqual([]);
  });

  test("a result breaking the service's contract is INTERNAL, and the server keeps serving", async () => {
    fake.bundleResult = (req) => ({ dir: req.dir, rootfs: "/r", config: SPEC, mode: "zfs" as "copy" });
    const e = (await rejection(client.bundle({ image: "i", dir: "/d" }))) as ImageServiceError;
    expect(e.code).toBe(status.INTERNAL);
    expect(e.message).toContain("unknown rootfs mode");
    fake.summaries = [{ ...SUMMARY_A, size: "12" as unknown as number }];
    const f = (await rejection(client.list())) as ImageServiceError;
    expect(f.code).toBe(status.INTERNAL);
    fake.summaries = [SUMMARY_B];
    expect(await client.list()).toEqual([SUMMARY_B]);
  });

  test("an unreachable server: UNAVAILABLE naming the address", async () => {
    const nobody = connectImages(`unix://${join(freshDir(), "none.sock")}`, { timeoutMs: 2000 });
    try {
      const e = (await rejection(nobody.list())) as ImageServiceError;
      expect(e).toBeInstanceOf(ImageServiceError);
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(e.code);
      expect(e.message).toContain("none.sock");
    } finally {
      nobody.close();
    }
  });
});

describe("concurrency", () => {
  test("calls overlap and each gets its own answer", async () => {
    fake.delayMs.set("bundle", 150);
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => client.bundle({ image: "busybox", dir: `/b/${i}`, hostname: `h${i}` })));
    const elapsed = performance.now() - started;
    results.forEach((r, i) => {
      expect(r.dir).toBe(`/b/${i}`);
      expect(r.config.hostname).toBe(`h${i}`);
    });
    expect(fake.maxInFlight).toBeGreaterThan(1);
    // Serialised calls would take 12 × 150 ms.
    expect(elapsed).toBeLessThan(1200);
  });

  test("different RPCs at once, one failing, the others unaffected", async () => {
    fake.delayMs.set("inspect", 100);
    fake.failNext.set("remove", new ImageNotFound("x"));
    const [a, b, c, d] = await Promise.allSettled([client.inspect("a"), client.remove("x"), client.list(), client.commit({ bundle: "/b", ref: "c" })]);
    expect(a).toEqual({ status: "fulfilled", value: DETAILS });
    expect(b.status).toBe("rejected");
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(ImageNotFound);
    expect(c).toEqual({ status: "fulfilled", value: [SUMMARY_A, SUMMARY_B] });
    expect(d.status).toBe("fulfilled");
  });

  test("two clients on the same server", async () => {
    const other = connectImages(server.address);
    try {
      const [x, y] = await Promise.all([client.list(), other.inspect("busybox")]);
      expect(x).toEqual([SUMMARY_A, SUMMARY_B]);
      expect(y).toEqual(DETAILS);
    } finally {
      other.close();
    }
  });
});

describe("unix socket", () => {
  test("mode 0600, at the path asked for, nothing left beside it", () => {
    expect(server.address).toBe(`unix://${socket}`);
    const st = lstatSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(readdirSync(join(socket, ".."))).toEqual(["images.sock"]);
  });

  test("close removes the socket and stops answering", async () => {
    await client.list();
    await server.close();
    expect(existsSync(socket)).toBe(false);
    const late = connectImages(`unix://${socket}`, { timeoutMs: 1000 });
    try {
      expect(((await rejection(late.list())) as ImageServiceError).code).toBeOneOf([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);
    } finally {
      late.close();
    }
  });

  test("closing twice is one close", async () => {
    await Promise.all([server.close(), server.close()]);
    await server.close();
    expect(existsSync(socket)).toBe(false);
  });

  test("a stale socket file is replaced", async () => {
    const path = join(freshDir(), "stale.sock");
    const stale = await listenRaw(path);
    await new Promise<void>((r) => stale.close(() => r()));
    // Bun and Node leave the file behind when a listener closes, as a crashed server would.
    if (!existsSync(path)) writeStaleSocket(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    const s = await serveImages(new FakeImageService(), `unix:${path}`);
    const c = connectImages(s.address);
    try {
      expect(await c.list()).toEqual([SUMMARY_A, SUMMARY_B]);
      expect(statSync(path).mode & 0o777).toBe(0o600);
    } finally {
      c.close();
      await s.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  test("a socket someone listens on is not taken over", async () => {
    const path = join(freshDir(), "busy.sock");
    const busy = await listenRaw(path);
    try {
      const e = await rejection(serveImages(new FakeImageService(), `unix://${path}`));
      expect(e.message).toContain("already listening");
      expect(lstatSync(path).isSocket()).toBe(true);
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
  });

  test("a file that is not a socket is not replaced", async () => {
    const path = join(freshDir(), "file.sock");
    writeFileSync(path, "keep me");
    const e = await rejection(serveImages(new FakeImageService(), `unix://${path}`));
    expect(e.message).toContain("not a socket");
    expect(await Bun.file(path).text()).toBe("keep me");
  });

  test("close leaves alone a socket that replaced ours", async () => {
    const dir = freshDir();
    const path = join(dir, "s.sock");
    const first = await serveImages(new FakeImageService(), `unix://${path}`);
    // As if an operator moved ours away and a second server took the path.
    renameSync(path, join(dir, "moved.sock"));
    const second = await serveImages(new FakeImageService(), `unix://${path}`);
    await first.close();
    expect(lstatSync(path).isSocket()).toBe(true);
    const c = connectImages(second.address);
    try {
      expect(await c.list()).toHaveLength(2);
    } finally {
      c.close();
      await second.close();
    }
    expect(existsSync(path)).toBe(false);
  });

  test("the socket's directory is created when missing", async () => {
    const path = join(freshDir(), "a", "b", "images.sock");
    const s = await serveImages(new FakeImageService(), `unix://${path}`);
    try {
      expect(lstatSync(path).isSocket()).toBe(true);
    } finally {
      await s.close();
    }
  });

  test("bad addresses are refused with the reason", async () => {
    expect((await rejection(serveImages(fake, "unix://relative/x.sock"))).message).toContain("absolute");
    expect((await rejection(serveImages(fake, `unix://${"/x".repeat(60)}`))).message).toContain("107");
    expect((await rejection(serveImages(fake, "127.0.0.1:99999"))).message).toContain("out of range");
    expect((await rejection(serveImages(fake, "images.sock"))).message).toContain("unix:///path or host:port");
  });
});

describe("TCP", () => {
  // Served only with mutual TLS: grpc-image-tls.test.ts.
  test("without TLS, even on loopback, is refused", async () => {
    for (const address of ["127.0.0.1:0", "0.0.0.0:0", "example.com:50051"])
      expect((await rejection(serveImages(fake, address))).message).toContain("without mutual TLS");
  });
});

describe("serveImagesCommand", () => {
  test("serves until aborted, then closes and removes the socket", async () => {
    const path = join(freshDir(), "cmd.sock");
    const ac = new AbortController();
    const lines: string[] = [];
    const running = serveImagesCommand({ address: `unix://${path}`, service: fake, signal: ac.signal, log: (l) => lines.push(l) });
    await waitFor(() => existsSync(path));
    const c = connectImages(`unix://${path}`);
    try {
      expect(await c.list()).toEqual([SUMMARY_A, SUMMARY_B]);
    } finally {
      c.close();
    }
    ac.abort();
    await running;
    expect(existsSync(path)).toBe(false);
    expect(lines[0]).toBe(`image service listening on unix://${path}`);
    expect(lines.at(-1)).toBe("image service stopping (abort)");
  });

  test("SIGTERM stops it, and its handlers are removed afterwards", async () => {
    const path = join(freshDir(), "sig.sock");
    const before = process.listenerCount("SIGTERM");
    const lines: string[] = [];
    const running = serveImagesCommand({ address: `unix://${path}`, service: fake, log: (l) => lines.push(l) });
    await waitFor(() => existsSync(path));
    expect(process.listenerCount("SIGTERM")).toBe(before + 1);
    process.emit("SIGTERM", "SIGTERM");
    await running;
    expect(existsSync(path)).toBe(false);
    expect(process.listenerCount("SIGTERM")).toBe(before);
    expect(lines.at(-1)).toBe("image service stopping (SIGTERM)");
  });

  test("INTERNAL errors are logged with their stack on the server side", async () => {
    const path = join(freshDir(), "log.sock");
    const ac = new AbortController();
    const lines: string[] = [];
    const running = serveImagesCommand({ address: `unix://${path}`, service: fake, signal: ac.signal, log: (l) => lines.push(l) });
    await waitFor(() => existsSync(path));
    fake.failNext.set("list", new Error("kaboom"));
    const c = connectImages(`unix://${path}`);
    try {
      expect((await rejection(c.list())).message).toBe("kaboom");
    } finally {
      c.close();
      ac.abort();
      await running;
    }
    const logged = lines.find((l) => l.includes("kaboom"));
    expect(logged).toContain("List failed");
    expect(logged).toContain("grpc-image.test.ts");
  });

  test("an address it cannot serve rejects", async () => {
    const path = join(freshDir(), "f");
    writeFileSync(path, "");
    expect((await rejection(serveImagesCommand({ address: `unix://${path}`, service: fake, log: () => {} }))).message).toContain("not a socket");
  });
});

function listenRaw(path: string): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    const s = createServer(() => {});
    s.once("error", reject);
    s.listen(path, () => resolve(s));
  });
}

// A socket file with no listener, made by binding and exiting a child process, for runtimes
// that unlink the file when a listener closes.
function writeStaleSocket(path: string): void {
  const r = Bun.spawnSync(["python3", "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", path]);
  if (r.exitCode !== 0) throw new Error(`could not make a stale socket: ${r.stderr.toString()}`);
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await Bun.sleep(5);
  }
}
