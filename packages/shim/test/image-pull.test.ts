// Pulls from Debian's docker-registry (distribution v2.8) on loopback, with images built here
// (busybox-static in a rootfs) and pushed by skopeo. Faults (corrupt bytes, cut connections,
// token auth, redirects) come from small Bun.serve proxies in front of the real registry.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Descriptor } from "@tsrun/ocispec";
import { ContentStore, DigestMismatchError, sha256Digest } from "../src/image/store.ts";
import {
  NoMatchingPlatformError,
  RegistryError,
  parsePlatform,
  platformRank,
  pull,
  selectPlatformManifest,
  type PullProgress,
} from "../src/image/registry.ts";
import { parseChallenges } from "../src/image/registry-auth.ts";

const dir = mkdtempSync(join(tmpdir(), "tsrun-pull-"));
let registry: ReturnType<typeof Bun.spawn> | undefined;
let registryAddr = "";
const servers: { stop(force?: boolean): unknown }[] = [];

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

interface Built {
  single: { manifest: Descriptor; config: Descriptor; layers: Descriptor[] };
  perArch: Record<string, { manifest: Descriptor; config: Descriptor; layers: Descriptor[] }>;
  index: Descriptor;
}
let built: Built;

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}${r.stdout.toString()}`);
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** An OCI layout written by hand, so that the test controls every byte and platform. */
function buildLayout(layout: string): Built {
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const blob = (bytes: Uint8Array | string, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor => {
    const data = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
    const digest = sha256Digest(data);
    writeFileSync(join(layout, "blobs", "sha256", digest.slice(7)), data);
    return { mediaType, digest, size: data.length, ...extra };
  };
  const tarOf = (root: string): Uint8Array<ArrayBuffer> => {
    const r = Bun.spawnSync(["tar", "-C", root, "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--sort=name", "-cf", "-", "."]);
    if (r.exitCode !== 0) throw new Error(`tar: ${r.stderr.toString()}`);
    return new Uint8Array(r.stdout);
  };
  const layerFrom = (root: string) => {
    const tar = tarOf(root);
    return { desc: blob(Bun.gzipSync(tar), OCI_LAYER_GZIP), diffId: sha256Digest(tar) };
  };

  const base = join(dir, "rootfs-base");
  mkdirSync(join(base, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(base, "bin", "busybox"));
  const busyboxLayer = layerFrom(base);

  const image = (architecture: string, variant: string | undefined, layers: { desc: Descriptor; diffId: string }[]) => {
    const config = blob(
      JSON.stringify({
        architecture,
        os: "linux",
        ...(variant ? { variant } : {}),
        config: { Cmd: ["/bin/busybox", "sh"] },
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      }),
      OCI_CONFIG,
    );
    const manifestBody = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layers.map((l) => l.desc) });
    const manifest = blob(manifestBody, OCI_MANIFEST);
    return { manifest, config, layers: layers.map((l) => l.desc) };
  };
  const marker = (arch: string) => {
    const root = join(dir, `rootfs-${arch.replace("/", "-")}`);
    mkdirSync(join(root, "etc"), { recursive: true });
    writeFileSync(join(root, "etc", "arch"), `${arch}\n`);
    return layerFrom(root);
  };

  const perArch = {
    amd64: image("amd64", undefined, [busyboxLayer, marker("amd64")]),
    arm64: image("arm64", "v8", [marker("arm64")]),
    armv7: image("arm", "v7", [marker("arm/v7")]),
  };
  const platforms: Record<keyof typeof perArch, Record<string, string>> = {
    amd64: { os: "linux", architecture: "amd64" },
    arm64: { os: "linux", architecture: "arm64", variant: "v8" },
    armv7: { os: "linux", architecture: "arm", variant: "v7" },
  };
  const index = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: (Object.keys(perArch) as (keyof typeof perArch)[]).map((k) => ({ ...perArch[k].manifest, platform: platforms[k] })),
    }),
    OCI_INDEX,
  );
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...perArch.amd64.manifest, annotations: { "org.opencontainers.image.ref.name": "single" } },
        { ...index, annotations: { "org.opencontainers.image.ref.name": "multi" } },
      ],
    }),
  );
  return { single: perArch.amd64, perArch, index };
}

beforeAll(async () => {
  const port = freePort();
  registryAddr = `127.0.0.1:${port}`;
  writeFileSync(
    join(dir, "registry.yml"),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "registry")}\nhttp:\n  addr: ${registryAddr}\n`,
  );
  registry = Bun.spawn(["docker-registry", "serve", join(dir, "registry.yml")], { stdout: "ignore", stderr: "pipe" });
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      if ((await fetch(`http://${registryAddr}/v2/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${registryAddr} within 5 s`);
    await Bun.sleep(25);
  }
  const layout = join(dir, "layout");
  built = buildLayout(layout);
  const push = (src: string, dest: string, ...flags: string[]) =>
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", ...flags, `oci:${layout}:${src}`, `docker://${registryAddr}/${dest}`]);
  push("single", "test/busybox:1");
  push("multi", "test/multi:1", "--all");
  push("single", "test/docker:1", "--format", "v2s2");
  push("multi", "test/dlist:1", "--all", "--format", "v2s2");
}, 20_000);

afterAll(async () => {
  for (const s of servers) s.stop(true);
  if (registry) {
    registry.kill();
    await Promise.race([registry.exited, Bun.sleep(2000)]);
  }
  rmSync(dir, { recursive: true, force: true });
});

let storeCount = 0;
function newStore(): ContentStore {
  return new ContentStore(join(dir, `store-${++storeCount}`));
}

/** A fetch that records every request it passes on, to see what went over the wire. */
function recordingFetch(log: { method: string; url: string; headers: Headers }[]): typeof fetch {
  const f = (input: string | URL | Request, init?: RequestInit) => {
    const req = input instanceof Request ? new Request(input, init) : new Request(String(input), init);
    log.push({ method: req.method, url: req.url, headers: req.headers });
    return fetch(input, init);
  };
  return f as typeof fetch;
}

/**
 * A proxy to the registry; `intercept` may answer a request itself or alter the upstream answer.
 * `dropConnections` kills every open connection (the client sees a reset) and listens again on
 * the same port, like a registry that went away for a moment.
 */
function proxyServer(intercept: (req: Request, forward: () => Promise<Response>) => Response | Promise<Response>) {
  const handle = (req: Request) => {
    const url = new URL(req.url);
    const forward = async () => {
      const headers = new Headers(req.headers);
      headers.delete("host");
      headers.delete("authorization");
      const res = await fetch(`http://${registryAddr}${url.pathname}${url.search}`, { headers, redirect: "manual" });
      return new Response(res.body, { status: res.status, headers: res.headers });
    };
    return intercept(req, forward);
  };
  let server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handle });
  const port = server.port;
  servers.push({ stop: (force?: boolean) => server.stop(force) });
  return {
    addr: `127.0.0.1:${port}`,
    dropConnections() {
      server.stop(true);
      server = Bun.serve({ hostname: "127.0.0.1", port, fetch: handle });
    },
  };
}

function proxy(intercept: (req: Request, forward: () => Promise<Response>) => Response | Promise<Response>): string {
  return proxyServer(intercept).addr;
}

function expectComplete(store: ContentStore, image: { manifest: Descriptor; config: Descriptor; layers: Descriptor[] }): void {
  for (const d of [image.manifest, image.config, ...image.layers]) {
    expect(store.has(d.digest)).toBe(true);
    expect(sha256Digest(store.readBytes(d.digest))).toBe(d.digest);
    expect(store.size(d.digest)).toBe(d.size);
  }
  expect(readdirSync(store.ingestDir)).toEqual([]);
}

const strip = (d: Descriptor) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size });

describe("pull from docker-registry", () => {
  test("a single-platform OCI image: manifest, config and every layer verified in the store", async () => {
    const store = newStore();
    const events: PullProgress[] = [];
    const r = await pull(`${registryAddr}/test/busybox:1`, { store, onProgress: (e) => events.push(e) });
    expect(r.name).toBe(`${registryAddr}/test/busybox:1`);
    expect(strip(r.descriptor)).toEqual(strip(built.single.manifest));
    expect(strip(r.manifest)).toEqual(strip(built.single.manifest));
    expect(strip(r.config)).toEqual(strip(built.single.config));
    expect(r.layers.map(strip)).toEqual(built.single.layers.map(strip));
    expect(r.platform).toEqual({ os: "linux", architecture: "amd64" });
    expectComplete(store, built.single);
    expect(store.list().sort()).toEqual([built.single.manifest, built.single.config, ...built.single.layers].map((d) => d.digest).sort());
    expect(events.filter((e) => e.type === "blob" && e.state === "done").length).toBe(3);
  });

  test("blobs already in the store are not fetched again", async () => {
    const store = newStore();
    await pull(`${registryAddr}/test/busybox:1`, { store });
    const log: { method: string; url: string; headers: Headers }[] = [];
    const events: PullProgress[] = [];
    await pull(`${registryAddr}/test/busybox:1`, { store, fetch: recordingFetch(log), onProgress: (e) => events.push(e) });
    expect(log.map((r) => new URL(r.url).pathname)).toEqual(["/v2/test/busybox/manifests/1"]);
    expect(events.filter((e) => e.type === "blob").map((e) => (e as { state: string }).state)).toEqual(["cached", "cached", "cached"]);
  });

  test("an index: the host platform by default; every platform's blobs stay out", async () => {
    const store = newStore();
    const log: { method: string; url: string; headers: Headers }[] = [];
    const r = await pull(`${registryAddr}/test/multi:1`, { store, fetch: recordingFetch(log) });
    expect(strip(r.descriptor)).toEqual(strip(built.index));
    expect(r.manifest.digest).toBe(built.perArch.amd64!.manifest.digest);
    expect(r.platform).toEqual({ os: "linux", architecture: "amd64" });
    expect(store.has(built.index.digest)).toBe(true);
    expectComplete(store, built.perArch.amd64!);
    expect(store.has(built.perArch.arm64!.manifest.digest)).toBe(false);
    expect(store.has(built.perArch.armv7!.layers[0]!.digest)).toBe(false);
    // The first request asks for every manifest kind tsrun understands.
    const accept = log[0]!.headers.get("accept") ?? "";
    for (const t of [OCI_INDEX, OCI_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json"])
      expect(accept).toContain(t);
  });

  test("platform selection: explicit arm64, arm variants, by digest", async () => {
    const store = newStore();
    const arm64 = await pull(`${registryAddr}/test/multi:1`, { store, platform: "linux/arm64" });
    expect(arm64.manifest.digest).toBe(built.perArch.arm64!.manifest.digest);
    expectComplete(store, built.perArch.arm64!);
    const armv7 = await pull(`${registryAddr}/test/multi:1`, { store, platform: { os: "linux", architecture: "arm", variant: "v7" } });
    expect(armv7.manifest.digest).toBe(built.perArch.armv7!.manifest.digest);
    // An armv8 (32-bit) machine runs v7 code; a v6 one does not.
    expect((await pull(`${registryAddr}/test/multi:1`, { store, platform: "linux/arm/v8" })).manifest.digest).toBe(built.perArch.armv7!.manifest.digest);
    const byDigest = await pull(`${registryAddr}/test/multi@${built.index.digest}`, { store, platform: "linux/arm64/v8" });
    expect(byDigest.name).toBe(`${registryAddr}/test/multi@${built.index.digest}`);
    expect(byDigest.manifest.digest).toBe(built.perArch.arm64!.manifest.digest);
    const tagAndDigest = await pull(`${registryAddr}/test/multi:1@${built.index.digest}`, { store, platform: "aarch64" });
    expect(tagAndDigest.manifest.digest).toBe(built.perArch.arm64!.manifest.digest);
  });

  test("no manifest for the platform: the error lists what exists and nothing is fetched beyond the index", async () => {
    const store = newStore();
    const err = await pull(`${registryAddr}/test/multi:1`, { store, platform: "linux/s390x" }).catch((e) => e);
    expect(err).toBeInstanceOf(NoMatchingPlatformError);
    expect(err.message).toBe(
      `pull ${registryAddr}/test/multi:1: no manifest for platform linux/s390x; the image is available for linux/amd64, linux/arm64/v8, linux/arm/v7 (choose one with the platform option)`,
    );
    const v6 = await pull(`${registryAddr}/test/multi:1`, { store, platform: "linux/arm/v6" }).catch((e) => e);
    expect(v6).toBeInstanceOf(NoMatchingPlatformError);
    expect(store.list()).toEqual([built.index.digest]);
  });

  test("a lone manifest for another platform is refused once its config says so", async () => {
    const store = newStore();
    const err = await pull(`${registryAddr}/test/busybox:1`, { store, platform: "linux/arm64" }).catch((e) => e);
    expect(err).toBeInstanceOf(NoMatchingPlatformError);
    expect(err.message).toContain("no manifest for platform linux/arm64; the image is available for linux/amd64");
    for (const l of built.single.layers) expect(store.has(l.digest)).toBe(false);
  });

  test("Docker schema 2 manifests and manifest lists", async () => {
    const store = newStore();
    const r = await pull(`${registryAddr}/test/docker:1`, { store });
    expect(r.descriptor.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(r.config.mediaType).toBe("application/vnd.docker.container.image.v1+json");
    expect(r.layers.map((l) => l.mediaType)).toEqual(["application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"]);
    expect(store.has(r.descriptor.digest)).toBe(true);
    // Same layer bytes as the OCI image: the content store holds them once.
    expect(r.layers.map((l) => l.digest)).toEqual(built.single.layers.map((l) => l.digest));
    for (const d of [r.config, ...r.layers]) expect(sha256Digest(store.readBytes(d.digest))).toBe(d.digest);

    const list = await pull(`${registryAddr}/test/dlist:1`, { store, platform: "linux/arm64" });
    expect(list.descriptor.mediaType).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
    expect(list.manifest.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(list.platform).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(list.layers.map((l) => l.digest)).toEqual(built.perArch.arm64!.layers.map((l) => l.digest));
    for (const d of [list.descriptor, list.manifest, list.config, ...list.layers]) expect(sha256Digest(store.readBytes(d.digest))).toBe(d.digest);
  });

  test("an unknown tag: the error names the reference and the status", async () => {
    const err = await pull(`${registryAddr}/test/busybox:nope`, { store: newStore() }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toBe(`pull ${registryAddr}/test/busybox:nope: manifest unknown (404)`);
    expect(err.status).toBe(404);
    expect(err.code).toBe("MANIFEST_UNKNOWN");
  });

  test("an unknown digest names the digest", async () => {
    const missing = sha256Digest("not there");
    const err = await pull(`${registryAddr}/test/busybox@${missing}`, { store: newStore() }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toContain(`pull ${registryAddr}/test/busybox@${missing}: `);
    expect(err.message).toContain("(404)");
    expect(err.digest).toBe(missing);
  });

  test("a missing blob: the error names the layer, its digest and the status", async () => {
    const victim = built.single.layers[1]!.digest;
    const addr = proxy((req, forward) =>
      new URL(req.url).pathname.endsWith(`/blobs/${victim}`)
        ? Response.json({ errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown to registry", detail: victim }] }, { status: 404 })
        : forward(),
    );
    const err = await pull(`${addr}/test/busybox:1`, { store: newStore() }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toBe(`pull ${addr}/test/busybox:1: layer 2 of 2 ${victim}: blob unknown to registry (404)`);
    expect(err.digest).toBe(victim);
  });

  test("https is the default away from loopback", async () => {
    const log: { method: string; url: string; headers: Headers }[] = [];
    const failing = ((input: string | URL | Request, init?: RequestInit) => {
      log.push({ method: "GET", url: String(input instanceof Request ? input.url : input), headers: new Headers(init?.headers) });
      return Promise.reject(new Error("offline"));
    }) as typeof fetch;
    const err = await pull("example.invalid/x/y:1", { store: newStore(), fetch: failing }).catch((e) => e);
    expect(log[0]!.url).toBe("https://example.invalid/v2/x/y/manifests/1");
    expect(err.message).toBe("pull example.invalid/x/y:1: cannot reach https://example.invalid: offline");
    await pull("busybox", { store: newStore(), fetch: failing }).catch(() => {});
    expect(log[1]!.url).toBe("https://registry-1.docker.io/v2/library/busybox/manifests/latest");
  });
});

describe("bad content", () => {
  test("a corrupt layer: DigestMismatchError naming the layer, nothing of it stored", async () => {
    const victim = built.single.layers[0]!;
    const addr = proxy(async (req, forward) => {
      const res = await forward();
      if (!new URL(req.url).pathname.endsWith(`/blobs/${victim.digest}`)) return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      bytes[bytes.length >> 1]! ^= 0x01;
      return new Response(bytes, { status: res.status, headers: { "content-type": "application/octet-stream" } });
    });
    const store = newStore();
    const err = await pull(`${addr}/test/busybox:1`, { store }).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(`layer 1 of 2 ${victim.digest} of ${addr}/test/busybox:1: digest mismatch`);
    expect(store.has(victim.digest)).toBe(false);
    expect(readdirSync(store.ingestDir)).toEqual([]);
    // The same store then pulls cleanly from the honest registry.
    await pull(`${registryAddr}/test/busybox:1`, { store });
    expectComplete(store, built.single);
  });

  test("a manifest whose bytes do not match the registry's Docker-Content-Digest", async () => {
    const addr = proxy(async (req, forward) => {
      const res = await forward();
      if (!new URL(req.url).pathname.includes("/manifests/")) return res;
      const text = (await res.text()).replace(`"schemaVersion":2`, `"schemaVersion": 2`);
      return new Response(text, { status: res.status, headers: res.headers });
    });
    const store = newStore();
    const err = await pull(`${addr}/test/busybox:1`, { store }).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err.message).toContain(`manifest of ${addr}/test/busybox:1`);
    expect(err.expected).toBe(built.single.manifest.digest);
    expect(store.list()).toEqual([]);
  });

  test("an unknown media type is refused", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.example.thing+json" }), { headers: { "content-type": "application/vnd.example.thing+json" } }),
    });
    servers.push(server);
    const err = await pull(`127.0.0.1:${server.port}/x/y:1`, { store: newStore() }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toMatch(/^pull 127\.0\.0\.1:\d+\/x\/y:1: manifest sha256:[0-9a-f]{64} has unknown media type "application\/vnd\.example\.thing\+json"/);
  });

  test("a manifest that names no media type anywhere is read by its shape", async () => {
    const config = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
    const configDesc = { mediaType: OCI_CONFIG, digest: sha256Digest(config), size: config.length };
    const manifest = JSON.stringify({ schemaVersion: 2, config: configDesc, layers: [] });
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        new URL(req.url).pathname.includes("/manifests/")
          ? new Response(manifest, { headers: { "content-type": "application/json" } })
          : new Response(config),
    });
    servers.push(server);
    const r = await pull(`127.0.0.1:${server.port}/x/y:1`, { store: newStore() });
    expect(r.descriptor).toEqual({ mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.length });
    expect(r.layers).toEqual([]);
  });

  test("an artifact (non-image config) is refused before its blobs are fetched", async () => {
    const config = { mediaType: "application/vnd.example.config+json", digest: sha256Digest("{}"), size: 2 };
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: "application/vnd.example+type", config, layers: [] });
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(manifest, { headers: { "content-type": OCI_MANIFEST } }) });
    servers.push(server);
    const err = await pull(`127.0.0.1:${server.port}/x/y:1`, { store: newStore() }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toContain("is not a container image: its config has media type \"application/vnd.example.config+json\" (an artifact of type application/vnd.example+type)");
  });
});

describe("resumable blob fetch", () => {
  /** A proxy that cuts the first response for `digest` after half its bytes, in the way given. */
  function cutting(digest: string, how: "close" | "reset") {
    const seen: { range: string | null; status: number }[] = [];
    let cut = false;
    const p = proxyServer(async (req, forward) => {
      const res = await forward();
      if (!new URL(req.url).pathname.endsWith(`/blobs/${digest}`)) return res;
      seen.push({ range: req.headers.get("range"), status: res.status });
      if (cut) return res;
      cut = true;
      const bytes = new Uint8Array(await res.arrayBuffer());
      const half = bytes.subarray(0, bytes.length >> 1);
      const body = new ReadableStream<Uint8Array>({
        async start(c) {
          c.enqueue(half);
          await Bun.sleep(20);
          // "close" ends the chunked body cleanly (a short body); "reset" drops the connection.
          if (how === "close") c.close();
          else p.dropConnections();
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "application/octet-stream" } });
    });
    const addr = p.addr;
    return { addr, seen };
  }

  test("a second pull resumes a cut download with Range and verifies the whole", async () => {
    const victim = built.single.layers[0]!;
    const { addr, seen } = cutting(victim.digest, "close");
    const store = newStore();
    const err = await pull(`${addr}/test/busybox:1`, { store, retries: 0 }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    const half = victim.size >> 1;
    expect(err.message).toContain(`download of layer 1 of 2 ${victim.digest} of ${addr}/test/busybox:1 broke after ${half} of ${victim.size} bytes`);
    expect(err.message).toContain("the next pull resumes from it");
    expect(store.has(victim.digest)).toBe(false);
    expect(store.ingestOffset(victim.digest)).toBe(half);

    const events: PullProgress[] = [];
    await pull(`${addr}/test/busybox:1`, { store, onProgress: (e) => events.push(e) });
    expect(seen).toEqual([
      { range: null, status: 200 },
      { range: `bytes=${half}-`, status: 206 },
    ]);
    expect(events).toContainEqual({ type: "blob", what: "layer 1 of 2", digest: victim.digest, completed: half, total: victim.size, state: "resume" });
    expectComplete(store, built.single);
  });

  test("within one pull, a reset connection is retried from where it broke", async () => {
    const victim = built.single.layers[0]!;
    const { addr, seen } = cutting(victim.digest, "reset");
    const store = newStore();
    const events: PullProgress[] = [];
    await pull(`${addr}/test/busybox:1`, { store, onProgress: (e) => events.push(e) });
    expect(seen.length).toBe(2);
    expect(seen[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(seen[1]!.status).toBe(206);
    expect(events.some((e) => e.type === "blob" && e.state === "retry")).toBe(true);
    expectComplete(store, built.single);
  });

  test("a server that ignores Range (200) makes the download start over", async () => {
    const victim = built.single.layers[0]!;
    const store = newStore();
    // A partial of wrong bytes: were it resumed, the digest would fail.
    writeFileSync(join(store.ingestDir, victim.digest.replace(":", "-")), new Uint8Array(1000).fill(0x55));
    expect(store.ingestOffset(victim.digest)).toBe(1000);
    const ranges: (string | null)[] = [];
    const addr = proxy(async (req, forward) => {
      const path = new URL(req.url).pathname;
      if (!path.endsWith(`/blobs/${victim.digest}`)) return forward();
      ranges.push(req.headers.get("range"));
      const bytes = await (await fetch(`http://${registryAddr}${path}`)).arrayBuffer();
      return new Response(bytes, { status: 200, headers: { "content-type": "application/octet-stream" } });
    });
    await pull(`${addr}/test/busybox:1`, { store });
    expect(ranges).toEqual(["bytes=1000-"]);
    expectComplete(store, built.single);
  });
});

describe("authentication", () => {
  test("Bearer token flow: 401 challenge, anonymous token, retry; blob redirects lose the token", async () => {
    const TOKEN = "tok-" + crypto.randomUUID();
    const steps: string[] = [];
    let tokenQuery: URLSearchParams | undefined;
    let tokenAuthorization: string | null = null;
    const storage = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        steps.push(`storage ${req.headers.get("authorization") ?? "no-auth"}`);
        const res = await fetch(`http://${registryAddr}${url.pathname}`);
        return new Response(res.body, { status: res.status, headers: res.headers });
      },
    });
    servers.push(storage);
    const addr = proxy((req, forward) => {
      const url = new URL(req.url);
      if (url.pathname === "/token") {
        steps.push("token");
        tokenQuery = url.searchParams;
        tokenAuthorization = req.headers.get("authorization");
        return Response.json({ token: TOKEN, expires_in: 300 });
      }
      if (req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
        steps.push(`401 ${url.pathname.includes("/blobs/") ? "blob" : "manifest"}`);
        return new Response(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }), {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="http://${addr}/token",service="test-registry",scope="repository:test/busybox:pull"` },
        });
      }
      if (url.pathname.includes("/blobs/")) {
        steps.push("redirect");
        return new Response(null, { status: 307, headers: { location: `http://127.0.0.1:${storage.port}${url.pathname}` } });
      }
      steps.push("manifest");
      return forward();
    });
    const store = newStore();
    const r = await pull(`${addr}/test/busybox:1`, { store, concurrency: 1 });
    expect(r.manifest.digest).toBe(built.single.manifest.digest);
    expectComplete(store, built.single);
    expect(steps.slice(0, 3)).toEqual(["401 manifest", "token", "manifest"]);
    // One token for the whole pull; blob requests carry it, the storage host never sees it.
    expect(steps.filter((s) => s === "token").length).toBe(1);
    expect(steps.filter((s) => s.startsWith("401")).length).toBe(1);
    expect(steps.filter((s) => s === "redirect").length).toBe(3);
    expect(steps.filter((s) => s.startsWith("storage"))).toEqual(["storage no-auth", "storage no-auth", "storage no-auth"]);
    expect(tokenQuery?.get("service")).toBe("test-registry");
    expect(tokenQuery?.getAll("scope")).toEqual(["repository:test/busybox:pull"]);
    expect(tokenAuthorization).toBeNull();
  });

  test("Bearer with credentials: basic auth to the token server; wrong ones give a clear error", async () => {
    const seen: (string | null)[] = [];
    const good = `Basic ${Buffer.from("alice:s3cret").toString("base64")}`;
    const addr = proxy((req, forward) => {
      const url = new URL(req.url);
      if (url.pathname === "/token") {
        seen.push(req.headers.get("authorization"));
        if (req.headers.get("authorization") !== good) return new Response("bad credentials", { status: 401 });
        return Response.json({ access_token: "oauth-token" });
      }
      if (req.headers.get("authorization") !== "Bearer oauth-token")
        return new Response(null, { status: 401, headers: { "www-authenticate": `Bearer realm="http://${addr}/token",service="svc"` } });
      return forward();
    });
    const store = newStore();
    await pull(`${addr}/test/busybox:1`, { store, credentials: { username: "alice", password: "s3cret" } });
    expectComplete(store, built.single);
    expect(seen).toEqual([good]);

    const err = await pull(`${addr}/test/busybox:1`, { store: newStore(), credentials: () => ({ username: "alice", password: "wrong" }) }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toBe(`pull ${addr}/test/busybox:1: authentication failed: token server http://${addr} rejected the credentials of alice (401): bad credentials`);
  });

  test("Basic challenge: credentials on every request, and an error without them", async () => {
    const good = `Basic ${Buffer.from("bob:pw").toString("base64")}`;
    let authorized = 0;
    const addr = proxy((req, forward) => {
      if (req.headers.get("authorization") !== good)
        return new Response(null, { status: 401, headers: { "www-authenticate": `Basic realm="registry"` } });
      authorized++;
      return forward();
    });
    const store = newStore();
    await pull(`${addr}/test/busybox:1`, { store, credentials: { username: "bob", password: "pw" } });
    expectComplete(store, built.single);
    expect(authorized).toBe(4);
    const err = await pull(`${addr}/test/busybox:1`, { store: newStore() }).catch((e) => e);
    expect(err.message).toBe(`pull ${addr}/test/busybox:1: authentication failed: ${addr} asks for a user name and password (Basic auth) and none were given`);
  });
});

describe("pure parts", () => {
  test("WWW-Authenticate parsing", () => {
    expect(parseChallenges(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`)).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" } },
    ]);
    expect(parseChallenges(`Basic realm="a, b", Bearer realm=x,error="invalid_token", Negotiate abc==`)).toEqual([
      { scheme: "basic", params: { realm: "a, b" } },
      { scheme: "bearer", params: { realm: "x", error: "invalid_token" } },
      { scheme: "negotiate", params: {} },
    ]);
    expect(parseChallenges(`Bearer realm="q\\"uote"`)).toEqual([{ scheme: "bearer", params: { realm: 'q"uote' } }]);
  });

  test("platform ranking", () => {
    const p = parsePlatform;
    expect(platformRank(p("linux/amd64"), p("linux/amd64"))).toBe(0);
    expect(platformRank(p("linux/amd64"), p("linux/amd64/v1"))).toBe(0);
    expect(platformRank(p("linux/amd64"), p("linux/amd64/v3"))).toBeUndefined();
    expect(platformRank(p("linux/amd64/v3"), p("linux/amd64"))).toBeGreaterThan(0);
    expect(platformRank(p("linux/arm64"), p("linux/arm64/v8"))).toBe(0);
    expect(platformRank(p("linux/arm/v7"), p("linux/arm"))).toBe(0);
    expect(platformRank(p("linux/arm/v7"), p("linux/arm/v6"))).toBeGreaterThan(0);
    expect(platformRank(p("linux/arm/v6"), p("linux/arm/v7"))).toBeUndefined();
    expect(platformRank(p("linux/arm64"), p("linux/arm/v7"))).toBeGreaterThan(platformRank(p("linux/arm64"), p("linux/arm64"))!);
    expect(platformRank(p("linux/amd64"), p("windows/amd64"))).toBeUndefined();
    expect(platformRank(p("x86_64"), p("linux/amd64"))).toBe(0);
    expect(() => parsePlatform("linux//x")).toThrow(/invalid platform/);
  });

  test("index selection prefers the exact variant, then the closest older one", () => {
    const d = (architecture: string, variant?: string): Descriptor => ({
      mediaType: OCI_MANIFEST,
      digest: sha256Digest(`${architecture}${variant}`),
      size: 1,
      platform: { os: "linux", architecture, ...(variant ? { variant } : {}) },
    });
    const index = { schemaVersion: 2 as const, manifests: [d("arm", "v5"), d("arm", "v6"), d("arm", "v7"), d("arm64")] };
    expect(selectPlatformManifest(index, parsePlatform("linux/arm/v7"))?.platform?.variant).toBe("v7");
    expect(selectPlatformManifest(index, parsePlatform("linux/arm/v6"))?.platform?.variant).toBe("v6");
    expect(selectPlatformManifest(index, parsePlatform("linux/arm64"))?.platform?.architecture).toBe("arm64");
    expect(selectPlatformManifest({ schemaVersion: 2, manifests: [d("arm", "v5"), d("arm", "v7")] }, parsePlatform("linux/arm64"))?.platform?.variant).toBe("v7");
    expect(selectPlatformManifest(index, parsePlatform("linux/amd64"))).toBeUndefined();
  });
});
