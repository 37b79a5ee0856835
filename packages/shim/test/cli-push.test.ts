// `tsrun image push` end to end, as root: a container's change committed to an image, pushed to
// Debian's docker-registry on loopback through a small proxy that counts the uploads (and plays
// a registry that refuses a repository or wants Basic credentials), pulled into a fresh store
// and run. A second push uploads nothing; a blob changed on disk never reaches the registry.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repo, tempDir, tsrun, TSRUN } from "@tsrun/runtime/test/helpers.ts";
import type { Descriptor } from "@tsrun/ocispec";
import { ContentStore } from "../src/image/store.ts";
import { push, type PushProgress } from "../src/image/registry.ts";

const work = tempDir("tsrun-cli-push-");
const storeA = ["--image-root", join(work, "a")];
const storeB = ["--image-root", join(work, "b")];
const state = ["--root", join(work, "state")];
let registry: ReturnType<typeof Bun.spawn> | undefined;
let proxy: ReturnType<typeof Bun.serve> | undefined;
let addr = "";
let via = "";
/** Requests seen by the proxy: "POST /v2/demo/motd/blobs/uploads/", "PUT …", "HEAD …". */
const seen: string[] = [];
const uploadsTo = (repoPath: string) => seen.filter((s) => s.startsWith(`PUT /v2/${repoPath}/blobs/uploads/`)).length;

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** tsrun run without blocking this process: the proxy lives in it and must answer meanwhile. */
async function tsrunAsync(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([TSRUN, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  addr = `127.0.0.1:${freePort()}`;
  writeFileSync(join(work, "registry.yml"), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, "registry")}\nhttp:\n  addr: ${addr}\n`);
  registry = Bun.spawn(["docker-registry", "serve", join(work, "registry.yml")], { stdout: "ignore", stderr: "ignore" });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://${addr}/v2/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 200) throw new Error(`docker-registry did not answer on ${addr}`);
    await Bun.sleep(25);
  }
  proxy = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      seen.push(`${req.method} ${url.pathname}`);
      if (url.pathname.startsWith("/v2/denied/"))
        return Response.json({ errors: [{ code: "DENIED", message: "requested access to the resource is denied" }] }, { status: 403 });
      if (url.pathname.startsWith("/v2/private/") && req.headers.get("authorization") !== `Basic ${btoa("alice:s3cret")}`)
        return new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="test"' } });
      const body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer();
      const headers = new Headers(req.headers);
      headers.delete("host");
      const res = await fetch(`http://${addr}${url.pathname}${url.search}`, { method: req.method, headers, body, redirect: "manual" });
      const out = new Headers(res.headers);
      // Upload locations name the registry itself: rewritten so that the PUTs come here too.
      const loc = out.get("location");
      if (loc) out.set("location", loc.replace(`http://${addr}`, `http://${via}`));
      out.delete("content-encoding");
      return new Response(req.method === "HEAD" ? null : await res.arrayBuffer(), { status: res.status, headers: out });
    },
  });
  via = `127.0.0.1:${proxy.port}`;

  const tar = join(work, "bb.tar");
  const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), tar, "localhost/busybox:1"], { stderr: "pipe" });
  if (!mk.success) throw new Error(`make-image.sh: ${mk.stderr}`);
  // not a terminal: the import says its result and draws no progress
  expect(tsrun(["image", "import", ...storeA, tar])).toMatchObject({ code: 0, stderr: "" });
  const r = tsrun([...state, "run", "--image", "localhost/busybox:1", ...storeA, "c1", "--", "sh", "-c", "echo pushed and pulled > /etc/motd"]);
  if (r.code !== 0) throw new Error(`run: ${r.stderr}`);
  const c = tsrun([...state, "commit", ...storeA, "--cmd", '["cat","/etc/motd"]', "c1", `${via}/demo/motd:1`]);
  if (c.code !== 0) throw new Error(`commit: ${c.stderr}`);
  expect(tsrun([...state, "delete", "c1"]).code).toBe(0);
});

afterAll(async () => {
  proxy?.stop(true);
  registry?.kill();
  await registry?.exited;
  // The registry is gone now: nothing writes into its directory while it is removed.
  rmSync(work, { recursive: true, force: true });
});

test("a committed image pushed, pulled into a fresh store and run shows the change; a second push uploads nothing", async () => {
  const ref = `${via}/demo/motd:1`;
  const p = await tsrunAsync(["image", "push", ...storeA, ref]);
  // Not a terminal: no progress, only the result.
  expect(p.stderr).toBe("");
  expect(p.code).toBe(0);
  const digest = JSON.parse(tsrun(["image", "inspect", ...storeA, ref]).stdout).digest as string;
  expect(p.stdout).toBe(`pushed ${ref} ${digest}\n`);
  // config and two layers (busybox's and the commit's)
  expect(uploadsTo("demo/motd")).toBe(3);
  expect(seen).toContain(`PUT /v2/demo/motd/manifests/1`);

  const pulled = await tsrunAsync(["image", "pull", ...storeB, ref]);
  expect(pulled.stderr).toBe("");
  expect(pulled.stdout).toBe(`pulled ${ref} ${digest}\n`);
  const run = tsrun([...state, "run", "--image", ref, ...storeB, "--rm", "p1"]);
  expect(run.stderr).toBe("");
  expect(run.stdout).toBe("pushed and pulled\n");

  const heads = seen.filter((s) => s.startsWith("HEAD ")).length;
  const again = await tsrunAsync(["image", "push", ...storeA, ref, `${via}/demo/motd:2`]);
  expect(again.stderr).toBe("");
  expect(again.stdout).toBe(`pushed ${via}/demo/motd:2 ${digest}\n`);
  expect(uploadsTo("demo/motd")).toBe(3);
  // each of the three blobs was asked about, and found
  expect(seen.filter((s) => s.startsWith("HEAD ")).length - heads).toBe(3);
  const tag2 = await fetch(`http://${addr}/v2/demo/motd/manifests/2`, { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  expect(tag2.headers.get("docker-content-digest")).toBe(digest);
});

test("push of an unknown image, to a registry that refuses, and with and without Basic credentials", async () => {
  const unknown = await tsrunAsync(["image", "push", ...storeA, `${via}/demo/nope:1`]);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toBe(`tsrun: image ${via}/demo/nope:1 not found in the image store ${join(work, "a")} (see \`tsrun image ls\`; --image-root or $TSRUN_IMAGE_ROOT choose another store)\n`);

  const denied = await tsrunAsync(["image", "push", ...storeA, `${via}/demo/motd:1`, `${via}/denied/motd:1`]);
  expect(denied.code).toBe(1);
  expect(denied.stderr).toMatch(
    new RegExp(`^tsrun: push ${via.replace(/\./g, "\\.")}/denied/motd:1: ${via.replace(/\./g, "\\.")} refused (config|layer \\d of 2) sha256:[0-9a-f]{64}: Forbidden \\(403\\); the registry may need credentials`),
  );

  const anonymous = await tsrunAsync(["image", "push", ...storeA, `${via}/demo/motd:1`, `${via}/private/motd:1`]);
  expect(anonymous.code).toBe(1);
  expect(anonymous.stderr).toBe(`tsrun: push ${via}/private/motd:1: authentication failed: ${via} asks for a user name and password (Basic auth) and none were given\n`);
  const authed = await tsrunAsync(["image", "push", ...storeA, "--username", "alice", `${via}/demo/motd:1`, `${via}/private/motd:1`], { TSRUN_REGISTRY_PASSWORD: "s3cret" });
  expect(authed.stderr).toBe("");
  expect(authed.stdout).toMatch(new RegExp(`^pushed ${via.replace(/\./g, "\\.")}/private/motd:1 sha256:`));
  expect(uploadsTo("private/motd")).toBe(3);
});

test("on a terminal (script's pty) push draws each layer's progress on stderr", async () => {
  const cmd = [TSRUN, "image", "push", ...storeA, `${via}/demo/motd:1`, `${via}/tty/motd:1`].join(" ");
  const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, TERM: "xterm" } });
  const [out, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(0);
  expect(out).toMatch(/layer 1 of 2 [0-9a-f]{12}\s+done/);
  expect(out).toMatch(/layer 2 of 2 [0-9a-f]{12}\s+done/);
  expect(out).toMatch(/config\s+[0-9a-f]{12}\s+done/);
  expect(out).toContain(`pushed ${via}/tty/motd:1 sha256:`);
});

test("a stored blob changed on disk is refused as it is read and never reaches the registry", async () => {
  const d = JSON.parse(tsrun(["image", "inspect", ...storeA, `${via}/demo/motd:1`]).stdout);
  const layer = d.layers[1].digest as string;
  const path = join(work, "a", "content", "blobs", "sha256", layer.slice(7));
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
  writeFileSync(path, bytes);
  const p = await tsrunAsync(["image", "push", ...storeA, `${via}/demo/motd:1`, `${via}/corrupt/motd:1`]);
  expect(p.code).toBe(1);
  expect(p.stderr).toContain(`tsrun: push ${via}/corrupt/motd:1: layer 2 of 2 ${layer} in the image store: digest mismatch: expected ${layer}`);
  expect((await fetch(`http://${addr}/v2/corrupt/motd/blobs/${layer}`, { method: "HEAD" })).status).toBe(404);
  expect((await fetch(`http://${addr}/v2/corrupt/motd/manifests/1`, { method: "HEAD" })).status).toBe(404);
});

test("an index is pushed with every manifest; a store with one platform of an index pushes that manifest alone", async () => {
  const store = new ContentStore(join(work, "lib", "content"));
  const put = async (data: string, mediaType: string, extra: Partial<Descriptor> = {}): Promise<Descriptor> => ({ mediaType, ...(await store.put(data)), ...extra });
  const manifestFor = async (arch: string) => {
    const config = await put(JSON.stringify({ architecture: arch, os: "linux", rootfs: { type: "layers", diff_ids: [] } }), "application/vnd.oci.image.config.v1+json");
    const layer = await put(`layer of ${arch}`, "application/vnd.oci.image.layer.v1.tar");
    return put(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [layer] }), "application/vnd.oci.image.manifest.v1+json", {
      platform: { os: "linux", architecture: arch },
    });
  };
  const amd64 = await manifestFor("amd64");
  const arm64 = await manifestFor("arm64");
  const index = await put(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [amd64, arm64] }), "application/vnd.oci.image.index.v1+json");

  const events: PushProgress[] = [];
  const whole = await push(`${via}/multi/app:1`, index, { store, onProgress: (e) => events.push(e) });
  expect(whole.descriptor.digest).toBe(index.digest);
  expect(whole.uploaded).toHaveLength(4);
  expect(events.filter((e) => e.type === "manifest").map((e) => (e as { reference: string }).reference)).toEqual([amd64.digest, arm64.digest, "1"]);
  for (const m of [amd64, arm64, index]) {
    const res = await fetch(`http://${addr}/v2/multi/app/manifests/${m.digest}`, { headers: { accept: m.mediaType } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(new TextDecoder().decode(store.readBytes(m.digest)));
  }

  // What a pull leaves: the index and one platform's manifest.
  store.delete(arm64.digest);
  const partial: PushProgress[] = [];
  const one = await push(`${via}/multi/one:1`, index, { store, onProgress: (e) => partial.push(e) });
  expect(one.descriptor.digest).toBe(amd64.digest);
  expect(partial.find((e) => e.type === "partial-index")).toMatchObject({ missing: 1, pushed: { digest: amd64.digest } });
  const tagged = await fetch(`http://${addr}/v2/multi/one/manifests/1`, { method: "HEAD", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  expect(tagged.headers.get("docker-content-digest")).toBe(amd64.digest);
});
