// Who may call the image service (issue 13, item 6): a caller can import any file the server
// reads and have bundles mounted as root, so TCP is served only with mutual TLS and refused
// without it. The certificates are made here with openssl: a CA with a server and a client
// certificate, and a second CA whose client certificate the server must not accept.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials, status } from "@grpc/grpc-js";
import { TSRUN } from "@tsrun/runtime/test/helpers.ts";
import type { ImageServiceError } from "../src/grpc/errors.ts";
import { connectImages, type ClientTls } from "../src/grpc/image-client.ts";
import { serveImages, type ImageServer, type ServerTls } from "../src/grpc/image-server.ts";
import { imagesServiceDefinition } from "../src/grpc/proto.ts";
import { serveImagesCommand } from "../src/grpc/serve.ts";
import { FakeImageService, SUMMARY_A, SUMMARY_B } from "./grpc-image-fake.ts";

const tmp = mkdtempSync(join(tmpdir(), "tsrun-grpc-tls-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const pem = (name: string) => readFileSync(join(tmp, name));

function openssl(...args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: tmp, stderr: "pipe", stdout: "pipe" });
  if (!r.success) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
}

function makeCa(name: string): void {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-subj", `/CN=${name}`, "-days", "1");
}

function makeCert(name: string, ca: string, ext: "server" | "client"): void {
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  openssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", "ext.cnf", "-extensions", ext);
}

let serverTls: ServerTls;
let clientTls: ClientTls;

beforeAll(() => {
  writeFileSync(
    join(tmp, "ext.cnf"),
    "[server]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n[client]\nextendedKeyUsage=clientAuth\n",
  );
  makeCa("ca");
  makeCa("other-ca");
  makeCert("server", "ca", "server");
  makeCert("client", "ca", "client");
  makeCert("stranger", "other-ca", "client");
  serverTls = { cert: pem("server.crt"), key: pem("server.key"), clientCa: pem("ca.crt") };
  clientTls = { ca: pem("ca.crt"), cert: pem("client.crt"), key: pem("client.key"), serverName: "localhost" };
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("TCP without mutual TLS", () => {
  test("is refused, saying how to fix it", async () => {
    for (const address of ["127.0.0.1:0", "[::1]:0", "localhost:0", "0.0.0.0:0"]) {
      const e = await rejection(serveImages(new FakeImageService(), address));
      expect(e.message).toContain(`refusing to listen on ${address} without mutual TLS`);
      expect(e.message).toContain("unix:///run/tsrun/images.sock");
      expect(e.message).toContain("--tls-cert FILE --tls-key FILE --tls-client-ca FILE");
    }
  });

  test("is refused by serveImagesCommand before it listens", async () => {
    const lines: string[] = [];
    const e = await rejection(serveImagesCommand({ address: "127.0.0.1:0", service: new FakeImageService(), log: (l) => lines.push(l) }));
    expect(e.message).toContain("without mutual TLS");
    expect(lines).toEqual([]);
  });

  test("is refused by `tsrun image serve`, which exits with the reason", async () => {
    const p = Bun.spawn([TSRUN, "image", "serve", "--image-root", join(tmp, "images"), "--address", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    clearTimeout(timer);
    expect(code).toBe(1);
    expect(stderr).toContain("refusing to listen on 127.0.0.1:0 without mutual TLS");
    expect(stderr).toContain("--tls-client-ca");
  });

  test("`tsrun image serve` wants all three TLS flags", async () => {
    const p = Bun.spawn([TSRUN, "image", "serve", "--image-root", join(tmp, "images"), "--address", "127.0.0.1:0", "--tls-cert", join(tmp, "server.crt")], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    clearTimeout(timer);
    expect(code).toBe(1);
    expect(stderr).toContain("missing --tls-key, --tls-client-ca");
  });

  test("the client does not try it either", () => {
    expect(() => connectImages("127.0.0.1:1")).toThrow(/only mutual TLS/);
  });
});

describe("TCP with mutual TLS", () => {
  let server: ImageServer;
  let port: string;
  beforeAll(async () => {
    server = await serveImages(new FakeImageService(), "127.0.0.1:0", { tls: serverTls });
    port = server.address.split(":").at(-1)!;
  });
  afterAll(() => server.close(1000));

  test("a client with a certificate from the client CA is served", async () => {
    expect(server.address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    const c = connectImages(server.address, { tls: clientTls, timeoutMs: 5000 });
    try {
      expect(await c.list()).toEqual([SUMMARY_A, SUMMARY_B]);
    } finally {
      c.close();
    }
    // The name in the server's certificate works as the address too.
    const byName = connectImages(`localhost:${port}`, { tls: { ...clientTls, serverName: undefined } as ClientTls, timeoutMs: 5000 });
    try {
      expect(await byName.list()).toHaveLength(2);
    } finally {
      byName.close();
    }
  });

  test("a client without a certificate is refused", async () => {
    const { cert: _c, key: _k, ...noCert } = clientTls;
    const c = rawClient(server.address, credentials.createSsl(noCert.ca as Buffer));
    try {
      expect(await listStatus(c)).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  test("a client with a certificate from another CA is refused", async () => {
    const c = connectImages(server.address, { tls: { ...clientTls, cert: pem("stranger.crt"), key: pem("stranger.key") }, timeoutMs: 5000 });
    try {
      expect(((await rejection(c.list())) as ImageServiceError).code).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  test("a client speaking plain gRPC is refused", async () => {
    const c = rawClient(server.address, credentials.createInsecure());
    try {
      expect(await listStatus(c)).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  test("a server certificate from another CA is not trusted by the client", async () => {
    const c = connectImages(server.address, { tls: { ...clientTls, ca: pem("other-ca.crt") }, timeoutMs: 5000 });
    try {
      expect(((await rejection(c.list())) as ImageServiceError).code).toBe(status.UNAVAILABLE);
    } finally {
      c.close();
    }
  });

  test("an address taken is an error naming it", async () => {
    const e = await rejection(serveImages(new FakeImageService(), server.address, { tls: serverTls }));
    expect(e.message).toContain(`cannot listen on ${server.address}`);
  });

  test("an empty TLS part is refused", async () => {
    const e = await rejection(serveImages(new FakeImageService(), "127.0.0.1:0", { tls: { ...serverTls, clientCa: "" } }));
    expect(e.message).toContain("TLS clientCa is empty");
  });

  test("a client by IP address must say which name to check", () => {
    expect(() => connectImages("127.0.0.1:1", { tls: { ...clientTls, serverName: undefined } as ClientTls })).toThrow(/serverName/);
  });
});

describe("unix socket (the default)", () => {
  test("is made 0600, in a directory made 0700", async () => {
    const path = join(tmp, "run", "tsrun", "images.sock");
    const s = await serveImages(new FakeImageService(), `unix://${path}`);
    try {
      expect(statSync(path).isSocket()).toBe(true);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(tmp, "run", "tsrun")).mode & 0o777).toBe(0o700);
      expect(statSync(join(tmp, "run")).mode & 0o777).toBe(0o700);
    } finally {
      await s.close();
    }
  });
});

function rawClient(address: string, creds: ReturnType<typeof credentials.createInsecure>): Client {
  return new Client(address, creds, { "grpc.ssl_target_name_override": "localhost" });
}

function listStatus(c: Client): Promise<number> {
  const m = imagesServiceDefinition().List;
  return new Promise((resolve) =>
    c.makeUnaryRequest(
      m.path,
      m.requestSerialize as (v: object) => Buffer,
      m.responseDeserialize as (b: Buffer) => unknown,
      {},
      { deadline: Date.now() + 5000 },
      (err) => resolve(err === null ? status.OK : err.code),
    ),
  );
}
