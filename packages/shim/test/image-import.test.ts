// Import of a busybox image built here (Debian's busybox-static → umoci → OCI layout; skopeo →
// docker-archive), as a layout dir, a layout tar and a docker-archive; then unpack and mount.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mediaTypes } from "@tsrun/ocispec";
import { importImage, ImportError } from "../src/image/import.ts";
import { collectGarbage, contentStore, getImage, listImages, removeImage } from "../src/image/images.ts";
import { hostPlatform, resolveImage } from "../src/image/resolve.ts";
import { prepareRootfs, unmountRootfs } from "../src/image/rootfs.ts";
import { listSnapshots } from "../src/image/snapshots.ts";
import { sha256Digest } from "../src/image/store.ts";

const dir = mkdtempSync(join(tmpdir(), "tsrun-import-"));
const layout = join(dir, "oci");
const layoutTar = join(dir, "oci.tar");
const dockerTar = join(dir, "busybox-docker.tar");

function sh(cmd: string[], cwd = dir): string {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

beforeAll(() => {
  sh(["umoci", "init", "--layout", layout]);
  sh(["umoci", "new", "--image", `${layout}:busybox`]);
  const bundle = join(dir, "bundle");
  sh(["umoci", "unpack", "--image", `${layout}:busybox`, bundle]);
  const rootfs = join(bundle, "rootfs");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  mkdirSync(join(rootfs, "etc"), { recursive: true });
  cpSync("/bin/busybox", join(rootfs, "bin/busybox"));
  for (const app of ["sh", "ls", "cat", "echo"]) sh(["ln", "-s", "busybox", join(rootfs, "bin", app)]);
  writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  sh(["umoci", "repack", "--image", `${layout}:busybox`, bundle]);
  sh(["umoci", "config", "--image", `${layout}:busybox`, "--config.cmd", "/bin/sh"]);
  sh(["tar", "-C", layout, "-cf", layoutTar, "."]);
  sh(["skopeo", "copy", "-q", `oci:${layout}:busybox`, `docker-archive:${dockerTar}:busybox:latest`]);
});

afterAll(() => {
  for (const r of readdirSync(dir).filter((d) => d.startsWith("root")))
    for (const id of existsSync(join(dir, r, "containers")) ? readdirSync(join(dir, r, "containers")) : []) unmountRootfs(join(dir, r), id);
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const freshRoot = () => join(dir, `root${++n}`);

async function checkRuns(root: string, name: string, id: string) {
  const m = await prepareRootfs(root, name, id);
  expect(m.mode).toBe("overlay");
  expect(readlinkSync(join(m.target, "bin/sh"))).toBe("busybox");
  expect(readFileSync(join(m.target, "bin/busybox")).equals(readFileSync("/bin/busybox"))).toBe(true);
  // The unpacked busybox really runs (chroot through busybox itself).
  expect(sh(["chroot", m.target, "/bin/echo", "hello from", id]).trim()).toBe(`hello from ${id}`);
  return m;
}

describe("import", () => {
  test("OCI layout directory", async () => {
    const root = freshRoot();
    const imported = await importImage(root, layout);
    expect(imported.map((i) => i.name)).toEqual(["busybox"]);
    expect(imported[0]!.format).toBe("oci-layout");
    const img = resolveImage(root, "busybox");
    expect(img.config.config?.Cmd).toEqual(["/bin/sh"]);
    expect(img.layers.length).toBe(1);
    for (const d of [img.manifestDescriptor.digest, img.manifest.config.digest, ...img.layers.map((l) => l.descriptor.digest)]) expect(contentStore(root).has(d)).toBe(true);
    await checkRuns(root, "busybox", "dir1");
    // A second container of the same image: a mount, no unpack.
    const again = await prepareRootfs(root, "busybox", "dir2");
    expect(again.unpacked).toBe(0);
    expect(again.ms).toBeLessThan(50);
    unmountRootfs(root, "dir1");
    unmountRootfs(root, "dir2");
  });

  test("OCI layout tar, renamed with --name", async () => {
    const root = freshRoot();
    const imported = await importImage(root, layoutTar, { name: "local/busybox:1" });
    expect(imported.map((i) => i.name)).toEqual(["local/busybox:1"]);
    expect(getImage(root, "busybox")).toBeUndefined();
    await checkRuns(root, "local/busybox:1", "tar1");
    unmountRootfs(root, "tar1");
  });

  test("docker-archive: converted to an OCI manifest, config digest = sha256 of the config file", async () => {
    const root = freshRoot();
    const imported = await importImage(root, dockerTar);
    expect(imported.map((i) => i.name)).toEqual(["docker.io/library/busybox:latest"]);
    expect(imported[0]!.format).toBe("docker-archive");
    const img = resolveImage(root, "docker.io/library/busybox:latest");
    expect(img.manifest.mediaType).toBe(mediaTypes.imageManifest);
    const manifestJson = JSON.parse(sh(["tar", "-xOf", dockerTar, "manifest.json"])) as Array<{ Config: string }>;
    const configBytes = Buffer.from(sh(["tar", "-xOf", dockerTar, manifestJson[0]!.Config]));
    expect(img.manifest.config.digest).toBe(sha256Digest(configBytes));
    // The same layer content as the OCI layout's, so the same chain id.
    const fromLayout = freshRoot();
    await importImage(fromLayout, layout);
    expect(img.chainId).toBe(resolveImage(fromLayout, "busybox").chainId!);
    await checkRuns(root, "docker.io/library/busybox:latest", "dock1");
    unmountRootfs(root, "dock1");
  });

  test("importing twice is idempotent; remove keeps shared blobs; gc sweeps the rest", async () => {
    const root = freshRoot();
    await importImage(root, layout, { name: "a" });
    await importImage(root, layout, { name: "a" });
    await importImage(root, dockerTar, { name: "b" });
    expect(listImages(root).map((i) => i.name)).toEqual(["a", "b"]);
    const layer = resolveImage(root, "a").layers[0]!.descriptor.digest;
    await prepareRootfs(root, "a", "x");
    unmountRootfs(root, "x");
    expect(removeImage(root, "a")).toBe(true);
    expect(removeImage(root, "a")).toBe(false);
    // b (from the docker archive) has the same layer, uncompressed: a's gzip blob goes, b's stays.
    const bLayer = resolveImage(root, "b").layers[0]!.descriptor.digest;
    expect(contentStore(root).has(bLayer)).toBe(true);
    expect(contentStore(root).has(layer)).toBe(layer === bLayer);
    // The snapshot is keyed by chain id: b still uses it.
    expect(listSnapshots(root).length).toBe(1);
    removeImage(root, "b");
    expect(contentStore(root).list()).toEqual([]);
    expect(listSnapshots(root)).toEqual([]);
    expect(collectGarbage(root)).toEqual({ blobs: [], snapshots: [] });
  });
});

describe("bad archives", () => {
  function copyLayout(): string {
    const d = join(dir, `layout${++n}`);
    cpSync(layout, d, { recursive: true });
    return d;
  }
  const index = (d: string) => JSON.parse(readFileSync(join(d, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
  const blob = (d: string, digest: string) => join(d, "blobs", "sha256", digest.slice(7));

  test("a blob whose content does not match its digest: error naming the image, no record", async () => {
    const d = copyLayout();
    const m = JSON.parse(readFileSync(blob(d, index(d).manifests[0]!.digest), "utf8")) as { layers: Array<{ digest: string }> };
    const layerPath = blob(d, m.layers[0]!.digest);
    const bytes = readFileSync(layerPath);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(layerPath, bytes);
    const root = freshRoot();
    const err = await importImage(root, d).catch((e: unknown) => e);
    expect((err as Error).message).toContain("image busybox");
    expect((err as Error).message).toContain("mismatch");
    expect(listImages(root)).toEqual([]);
    expect(contentStore(root).has(m.layers[0]!.digest)).toBe(false);
    // The original imports fine into the same store afterwards.
    expect((await importImage(root, layout)).length).toBe(1);
  });

  test("a manifest for another platform: error listing what there is", async () => {
    const root = freshRoot();
    const err = await importImage(root, layout, { platform: { os: "linux", architecture: "s390x" } }).catch((e: unknown) => e);
    expect((err as Error).message).toContain("no manifest for linux/s390x");
    expect((err as Error).message).toContain(`linux/${hostPlatform().architecture}`);
    expect(listImages(root)).toEqual([]);
  });

  test("an unknown layer media type is refused", async () => {
    const d = copyLayout();
    const idx = index(d);
    const mPath = blob(d, idx.manifests[0]!.digest);
    const m = JSON.parse(readFileSync(mPath, "utf8")) as { layers: Array<{ mediaType: string }> };
    m.layers[0]!.mediaType = "application/vnd.example.layer.v1.squashfs";
    const bytes = Buffer.from(JSON.stringify(m));
    const digest = sha256Digest(bytes);
    writeFileSync(blob(d, digest), bytes);
    const raw = JSON.parse(readFileSync(join(d, "index.json"), "utf8")) as { manifests: Array<{ digest: string; size: number }> };
    raw.manifests[0]!.digest = digest;
    raw.manifests[0]!.size = bytes.length;
    writeFileSync(join(d, "index.json"), JSON.stringify(raw));
    const err = await importImage(freshRoot(), d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImportError);
    expect((err as Error).message).toContain("application/vnd.example.layer.v1.squashfs");
    expect((err as Error).message).toContain("busybox");
  });

  test("an invalid index.json is reported with its problems", async () => {
    const d = copyLayout();
    writeFileSync(join(d, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ digest: "sha256:nothex" }] }));
    const err = await importImage(freshRoot(), d).catch((e: unknown) => e);
    expect((err as Error).message).toContain("index.json is not a valid imageIndex");
    expect((err as Error).message).toContain("/manifests/0");
  });

  test("--name on an archive with several images is refused; a nameless image asks for --name", async () => {
    const d = copyLayout();
    const raw = JSON.parse(readFileSync(join(d, "index.json"), "utf8")) as { manifests: Array<Record<string, unknown>> };
    raw.manifests.push({ ...raw.manifests[0]!, annotations: {} });
    writeFileSync(join(d, "index.json"), JSON.stringify(raw));
    expect(((await importImage(freshRoot(), d, { name: "x" }).catch((e: unknown) => e)) as Error).message).toContain("holds 2 images");
    expect(((await importImage(freshRoot(), d).catch((e: unknown) => e)) as Error).message).toContain("--name");
  });

  test("neither layout nor docker-archive", async () => {
    const d = join(dir, "empty");
    mkdirSync(d);
    expect(((await importImage(freshRoot(), d).catch((e: unknown) => e)) as Error).message).toContain("neither an OCI image layout");
  });
});
