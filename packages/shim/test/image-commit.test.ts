// commit's layer and image, made from a real overlay: a lower dir, an overlay mount, changes made
// through the mount like a container would, then the upper dir turned into a layer and read back.
// Needs root (mount, mknod, chown, trusted.* xattrs), like the other integration tests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { extract, type Headers } from "tar-stream";
import { mediaTypes, validateImageDocument, type ImageConfig, type ImageManifest } from "@tsrun/ocispec";
import { ContentStore, sha256Digest } from "../src/image/store.ts";
import { layerFromUpper, tarFromUpper, writeLayerFromUpper, UpperDirError, OPAQUE_MARKER } from "../src/image/diff.ts";
import { canonicalJson, commitConfig, commitImage, COMMIT_CREATED_BY } from "../src/image/commit.ts";
import { lgetxattr, lsetxattr, mknod, S_IFCHR } from "../src/image/fsys.ts";

interface TarEntry {
  header: Headers;
  pax: Record<string, string>;
  body: Buffer;
}

async function readTar(tar: Uint8Array): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const h = entry.header as Headers & { pax?: Record<string, string> | null };
      out.push({ header: h, pax: h.pax ?? {}, body: Buffer.concat(chunks) });
    }
  })();
  ex.end(Buffer.from(tar));
  await done;
  return out;
}

function sh(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
}

const LONG_DIR = `deep/${"d".repeat(60)}/${"e".repeat(60)}`;
// Fits ustar's prefix + name split (no PAX); the next one does not (PAX path).
const LONG_FILE = `${LONG_DIR}/${"f".repeat(40)}.txt`;
const VERY_LONG_FILE = `${LONG_DIR}/${"g".repeat(90)}/${"h".repeat(90)}.txt`;
const BINARY_XATTR = Buffer.from([0x01, 0x00, 0x80, 0xff, 0xfe, 0x00, 0x41, 0xc3]);
const T0 = 1_700_000_000;

let tmp: string;
let lower: string;
let upper: string;
let store: ContentStore;
let entries: TarEntry[];
let byName: Map<string, TarEntry>;
let tarBytes: Buffer;
let layer: Awaited<ReturnType<typeof layerFromUpper>>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "tsrun-commit-"));
  lower = join(tmp, "lower");
  upper = join(tmp, "upper");
  const work = join(tmp, "work");
  const merged = join(tmp, "merged");
  for (const d of [upper, work, merged]) mkdirSync(d);
  // The image as a container starts from it.
  mkdirSync(join(lower, "etc"), { recursive: true });
  mkdirSync(join(lower, "bin"));
  mkdirSync(join(lower, "data/sub"), { recursive: true });
  writeFileSync(join(lower, "etc/hostname"), "lower\n");
  writeFileSync(join(lower, "etc/keep"), "to be deleted\n");
  writeFileSync(join(lower, "bin/tool"), "#!/bin/sh\n", { mode: 0o755 });
  writeFileSync(join(lower, "data/a"), "a");
  writeFileSync(join(lower, "data/sub/c"), "c");
  symlinkSync("etc/hostname", join(lower, "hostname-link"));

  sh(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  try {
    const m = (p: string) => join(merged, p);
    writeFileSync(m("new.txt"), "new file\n");
    writeFileSync(m("etc/hostname"), "changed\n");
    chmodSync(m("bin/tool"), 0o4755);
    unlinkSync(m("etc/keep"));
    rmSync(m("data"), { recursive: true });
    mkdirSync(m("data"));
    writeFileSync(m("data/fresh"), "fresh");
    sh(["mkfifo", m("fifo")]);
    linkSync(m("new.txt"), m("hard.txt"));
    symlinkSync("/new.txt", m("sym"));
    lsetxattr(m("new.txt"), "user.note", Buffer.from("hello"));
    lsetxattr(m("new.txt"), "trusted.bin", BINARY_XATTR);
    mknod(m("null"), S_IFCHR | 0o666, 1, 3);
    writeFileSync(m("locked"), "x");
    chmodSync(m("locked"), 0o000);
    writeFileSync(m("owned"), "x");
    chownSync(m("owned"), 1234, 5678);
    writeFileSync(m("bigid"), "x");
    chownSync(m("bigid"), 3_000_000, 3_000_001);
    mkdirSync(m(LONG_DIR), { recursive: true });
    writeFileSync(m(LONG_FILE), "long");
    mkdirSync(m(VERY_LONG_FILE.slice(0, VERY_LONG_FILE.lastIndexOf("/"))));
    writeFileSync(m(VERY_LONG_FILE), "very long");
    writeFileSync(m("café"), "utf-8 name");
    utimesSync(m("new.txt"), T0, T0);
  } finally {
    sh(["umount", merged]);
  }

  store = new ContentStore(join(tmp, "content"));
  layer = await layerFromUpper(upper, store);
  tarBytes = gunzipSync(store.readBytes(layer.descriptor.digest));
  entries = await readTar(tarBytes);
  byName = new Map(entries.map((e) => [e.header.name, e]));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("layerFromUpper on a real overlay upper dir", () => {
  test("the upper dir has overlay's forms of deletion (whiteout device, opaque xattr)", () => {
    // Guards the test itself: if the kernel stored changes differently, the layer checks would
    // prove nothing about the conversion.
    expect(readdirSync(join(upper, "etc")).sort()).toEqual(["hostname", "keep"]);
    expect(readdirSync(join(upper, "data"))).toEqual(["fresh"]);
  });

  test("descriptor, diffId and stored blob agree", () => {
    expect(layer.descriptor.mediaType).toBe(mediaTypes.layerGzip);
    expect(store.has(layer.descriptor.digest)).toBe(true);
    const blob = store.readBytes(layer.descriptor.digest);
    expect(blob.length).toBe(layer.descriptor.size);
    expect(sha256Digest(blob)).toBe(layer.descriptor.digest);
    expect(sha256Digest(tarBytes)).toBe(layer.diffId);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("entries are relative, sorted depth first, dirs with a trailing slash", () => {
    const names = entries.map((e) => e.header.name);
    for (const n of names) expect(n.startsWith("/") || n.startsWith("./")).toBe(false);
    for (const e of entries) if (e.header.type === "directory") expect(e.header.name.endsWith("/")).toBe(true);
    expect(names).toContain("etc/");
    expect(names).toContain("bin/");
    // Byte order within a dir, each dir right before its contents.
    const top = names.filter((n) => !n.replace(/\/$/, "").includes("/"));
    expect(top).toEqual([...top].sort((a, b) => Buffer.compare(Buffer.from(a.replace(/\/$/, "")), Buffer.from(b.replace(/\/$/, "")))));
    expect(names.indexOf("data/")).toBeLessThan(names.indexOf("data/fresh"));
    // Untouched lower files are not in the layer.
    expect(names).not.toContain("data/sub/");
    expect(names).not.toContain("hostname-link");
  });

  test("modified and new files carry their content", () => {
    expect(byName.get("etc/hostname")?.body.toString()).toBe("changed\n");
    expect(byName.get("data/fresh")?.body.toString()).toBe("fresh");
    expect(byName.get("café")?.body.toString()).toBe("utf-8 name");
    expect(byName.get(LONG_FILE)?.body.toString()).toBe("long");
    expect(byName.get(VERY_LONG_FILE)?.body.toString()).toBe("very long");
  });

  test("a deleted file becomes an empty .wh. file, the device is not in the tar", () => {
    const wh = byName.get("etc/.wh.keep");
    expect(wh?.header.type).toBe("file");
    expect(wh?.header.size).toBe(0);
    expect(byName.has("etc/keep")).toBe(false);
    expect(entries.some((e) => e.header.type === "character-device" && e.header.devmajor === 0 && e.header.devminor === 0)).toBe(false);
  });

  test("a deleted and recreated dir is opaque: dir entry, then the marker", () => {
    const names = entries.map((e) => e.header.name);
    const i = names.indexOf("data/");
    expect(i).toBeGreaterThanOrEqual(0);
    expect(names[i + 1]).toBe(`data/${OPAQUE_MARKER}`);
    expect(byName.get(`data/${OPAQUE_MARKER}`)?.header.type).toBe("file");
    expect(byName.get(`data/${OPAQUE_MARKER}`)?.header.size).toBe(0);
    // etc/ was only copied up, not replaced.
    expect(byName.has(`etc/${OPAQUE_MARKER}`)).toBe(false);
  });

  test("modes (setuid, 000), ownership, mtime", () => {
    expect(byName.get("bin/tool")?.header.mode).toBe(0o4755);
    expect(byName.get("locked")?.header.mode).toBe(0o000);
    expect(byName.get("owned")?.header.uid).toBe(1234);
    expect(byName.get("owned")?.header.gid).toBe(5678);
    // Beyond ustar's 7 octal digits: carried in PAX, which tar-stream's reader applies.
    const big = byName.get("bigid");
    expect(big?.pax.uid).toBe("3000000");
    expect(big?.pax.gid).toBe("3000001");
    expect(byName.get("hard.txt")?.header.mtime?.getTime()).toBe(T0 * 1000);
  });

  test("fifo, device node, symlink, hardlink", () => {
    expect(byName.get("fifo")?.header.type).toBe("fifo");
    const dev = byName.get("null");
    expect(dev?.header.type).toBe("character-device");
    expect([dev?.header.devmajor, dev?.header.devminor]).toEqual([1, 3]);
    expect(byName.get("sym")?.header.type).toBe("symlink");
    expect(byName.get("sym")?.header.linkname).toBe("/new.txt");
    // Same inode twice: the first name in byte order holds the data, the second links to it.
    expect(byName.get("hard.txt")?.header.type).toBe("file");
    expect(byName.get("hard.txt")?.body.toString()).toBe("new file\n");
    expect(byName.get("new.txt")?.header.type).toBe("link");
    expect(byName.get("new.txt")?.header.linkname).toBe("hard.txt");
  });

  test("xattrs as SCHILY.xattr PAX records, overlay's own left out, binary values byte-exact", () => {
    expect(byName.get("hard.txt")?.pax["SCHILY.xattr.user.note"]).toBe("hello");
    for (const e of entries) for (const k of Object.keys(e.pax)) expect(k.includes("overlay")).toBe(false);
    // tar-stream's reader decodes PAX values as UTF-8, so look for the raw record in the bytes.
    const value = Buffer.concat([Buffer.from(" SCHILY.xattr.trusted.bin="), BINARY_XATTR, Buffer.from("\n")]);
    const record = Buffer.concat([Buffer.from(String(value.length + 2)), value]);
    expect(tarBytes.indexOf(record)).toBeGreaterThan(0);
    // Only entries that need one get a PAX header.
    expect(Object.keys(byName.get("etc/hostname")?.pax ?? {})).toEqual([]);
    expect(Object.keys(byName.get(LONG_FILE)?.pax ?? {})).toEqual([]);
    expect(Object.keys(byName.get(VERY_LONG_FILE)?.pax ?? {})).toEqual(["path"]);
    expect(Object.keys(byName.get("café")?.pax ?? {})).toEqual(["path"]);
  });

  test("GNU tar reads the layer the same way (names, link, xattrs)", () => {
    const dir = join(tmp, "gnu");
    mkdirSync(dir);
    writeFileSync(join(tmp, "layer.tar"), tarBytes);
    sh(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", join(tmp, "layer.tar"), "-C", dir]);
    // A UTF-8 locale: under C or POSIX (the default where LANG is unset) tar escapes the
    // name's bytes as caf\303\251. C.UTF-8 is in every Debian libc.
    const r = Bun.spawnSync(["tar", "-tvf", join(tmp, "layer.tar")], { env: { ...process.env, LC_ALL: "C.UTF-8" } });
    const listing = r.stdout.toString();
    expect(listing).toContain("new.txt link to hard.txt");
    expect(listing).toContain(LONG_FILE);
    expect(listing).toContain(VERY_LONG_FILE);
    expect(listing).toContain("café");
    expect(readdirSync(join(dir, "etc")).sort()).toEqual([".wh.keep", "hostname"]);
    const got = Bun.spawnSync(["stat", "-c", "%u:%g %a", join(dir, "bigid"), join(dir, "bin/tool")]).stdout.toString();
    expect(got).toBe("3000000:3000001 644\n0:0 4755\n");
    expect(lgetxattr(join(dir, "hard.txt"), "trusted.bin")).toEqual(BINARY_XATTR);
  });

  test("deterministic: the same upper dir gives the same digests", async () => {
    const again = await layerFromUpper(upper, new ContentStore(join(tmp, "content2")));
    expect(again).toEqual(layer);
    const chunks: Uint8Array[] = [];
    for await (const c of tarFromUpper(upper)) chunks.push(c);
    expect(sha256Digest(Buffer.concat(chunks))).toBe(layer.diffId);
  });

  test("writeLayerFromUpper streams to a WritableStream and closes it", async () => {
    const chunks: Uint8Array[] = [];
    let closed = false;
    const out = new WritableStream<Uint8Array>({
      write: (c) => void chunks.push(c),
      close: () => void (closed = true),
    });
    const d = await writeLayerFromUpper(upper, out);
    expect(closed).toBe(true);
    expect(d).toEqual({ diffId: layer.diffId, digest: layer.descriptor.digest, size: layer.descriptor.size });
    expect(sha256Digest(Buffer.concat(chunks))).toBe(layer.descriptor.digest);
  });
});

describe("layerFromUpper edge cases", () => {
  test("an empty upper dir gives an empty tar (two zero blocks)", async () => {
    const empty = mkdtempSync(join(tmp, "empty-"));
    const s = new ContentStore(join(tmp, "content-empty"));
    const l = await layerFromUpper(empty, s);
    const tar = gunzipSync(s.readBytes(l.descriptor.digest));
    expect(tar).toEqual(Buffer.alloc(1024));
    expect(l.diffId).toBe("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
  });

  test("redirect_dir and metacopy uppers are refused, nothing stored", async () => {
    for (const attr of ["trusted.overlay.redirect", "trusted.overlay.metacopy"]) {
      const u = mkdtempSync(join(tmp, "redir-"));
      mkdirSync(join(u, "moved"));
      writeFileSync(join(u, "moved/f"), "x");
      lsetxattr(join(u, "moved"), attr, Buffer.from("/orig"));
      const s = new ContentStore(join(tmp, `content-${attr}`));
      const err = await layerFromUpper(u, s).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UpperDirError);
      expect(String((err as Error).message)).toContain(attr);
      expect(String((err as Error).message)).toContain("moved");
      expect(s.list()).toEqual([]);
      expect(readdirSync(s.ingestDir)).toEqual([]);
    }
  });

  test("a real file named like a whiteout is refused", async () => {
    const u = mkdtempSync(join(tmp, "wh-"));
    mkdirSync(join(u, "etc"));
    writeFileSync(join(u, "etc/.wh.passwd"), "not a whiteout");
    const err = await layerFromUpper(u, store).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpperDirError);
    expect(String((err as Error).message)).toContain("etc/.wh.passwd");
  });

  test("mount points: the runtime's empty placeholders are left out, content at them is kept", async () => {
    const u = mkdtempSync(join(tmp, "mnt-"));
    mkdirSync(join(u, "etc"));
    // What a networked container leaves: empty files the runtime made to bind hosts, hostname, resolv.conf on.
    for (const f of ["hosts", "hostname", "resolv.conf"]) writeFileSync(join(u, "etc", f), "");
    mkdirSync(join(u, "data"));
    // A mount destination holding something is content (written before a mount, or never mounted).
    mkdirSync(join(u, "full"));
    writeFileSync(join(u, "full/f"), "kept");
    writeFileSync(join(u, "etc/motd"), "");
    writeFileSync(join(u, "etc/written"), "x");
    const s = new ContentStore(join(tmp, "content-mnt"));
    const mountPoints = new Set(["etc/hosts", "etc/hostname", "etc/resolv.conf", "data", "full", "etc/written"]);
    const l = await layerFromUpper(u, s, { mountPoints });
    const names = (await readTar(gunzipSync(s.readBytes(l.descriptor.digest)))).map((e) => e.header.name);
    // etc/motd is empty but no mount destination: a change the container made.
    expect(names).toEqual(["etc/", "etc/motd", "etc/written", "full/", "full/f"]);
    // Without the option every entry is there.
    const all = await layerFromUpper(u, s);
    expect((await readTar(gunzipSync(s.readBytes(all.descriptor.digest)))).map((e) => e.header.name)).toEqual(["data/", "etc/", "etc/hostname", "etc/hosts", "etc/motd", "etc/resolv.conf", "etc/written", "full/", "full/f"]);
  });

  test("a missing upper dir is a clear error", async () => {
    const err = await layerFromUpper(join(tmp, "nope"), store).catch((e: unknown) => e);
    expect(String(err)).toContain("does not exist");
  });
});

describe("commitImage", () => {
  async function baseImage(s: ContentStore): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    const base = await layerFromUpper(lower, s);
    const config: ImageConfig = {
      created: "2026-01-01T00:00:00Z",
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/bin:/bin", "LANG=C"], Cmd: ["/bin/sh"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: [base.diffId] },
      history: [{ created: "2026-01-01T00:00:00Z", created_by: "test base" }],
    };
    const cd = await s.put(canonicalJson(config));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: mediaTypes.imageManifest,
      config: { mediaType: mediaTypes.imageConfig, ...cd },
      layers: [base.descriptor],
    };
    return { manifest, config };
  }

  test("stores valid config and manifest with the new layer appended", async () => {
    const s = new ContentStore(join(tmp, "content-commit"));
    const base = await baseImage(s);
    const r = await commitImage({
      store: s,
      baseManifest: base.manifest,
      baseConfig: base.config,
      upperDir: upper,
      author: "tester <t@example.org>",
      message: "added things",
      created: "2026-02-03T04:05:06Z",
      changes: { cmd: ["/bin/tool", "-v"], env: ["LANG=C.UTF-8", "EXTRA=1"], workingDir: "/data", user: "1000:1000" },
    });
    expect(validateImageDocument("imageConfig", r.config).ok).toBe(true);
    expect(validateImageDocument("imageManifest", r.manifest).ok).toBe(true);
    for (const d of [r.manifestDescriptor, r.configDescriptor, r.layer.descriptor]) expect(s.has(d.digest)).toBe(true);
    // Stored bytes are the canonical form of the returned documents.
    expect(s.readBytes(r.configDescriptor.digest).toString()).toBe(canonicalJson(r.config));
    expect(s.readBytes(r.manifestDescriptor.digest).toString()).toBe(canonicalJson(r.manifest));
    expect(r.manifestDescriptor.size).toBe(s.readBytes(r.manifestDescriptor.digest).length);
    expect(r.manifestDescriptor.mediaType).toBe(mediaTypes.imageManifest);
    expect(r.manifestDescriptor.platform).toEqual({ architecture: "amd64", os: "linux" });

    expect(r.manifest.config).toEqual(r.configDescriptor);
    expect(r.manifest.layers).toEqual([...base.manifest.layers, r.layer.descriptor]);
    expect(r.config.rootfs.diff_ids).toEqual([...base.config.rootfs.diff_ids, r.layer.diffId]);
    expect(r.layer.diffId).toBe(layer.diffId);
    expect(r.config.created).toBe("2026-02-03T04:05:06Z");
    expect(r.config.author).toBe("tester <t@example.org>");
    expect(r.config.history).toEqual([
      { created: "2026-01-01T00:00:00Z", created_by: "test base" },
      { created: "2026-02-03T04:05:06Z", created_by: COMMIT_CREATED_BY, author: "tester <t@example.org>", comment: "added things" },
    ]);
    expect(r.config.config).toEqual({
      Env: ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "EXTRA=1"],
      Cmd: ["/bin/tool", "-v"],
      WorkingDir: "/data",
      User: "1000:1000",
    });
    // The base documents are not modified.
    expect(base.config.rootfs.diff_ids.length).toBe(1);
    expect(base.config.config?.Cmd).toEqual(["/bin/sh"]);
  });

  test("a Docker schema 2 base becomes an OCI manifest with OCI layer types", async () => {
    const s = new ContentStore(join(tmp, "content-docker"));
    const base = await baseImage(s);
    const docker: ImageManifest = {
      ...base.manifest,
      mediaType: mediaTypes.dockerManifest,
      config: { ...base.manifest.config, mediaType: mediaTypes.dockerConfig },
      layers: base.manifest.layers.map((l) => ({ ...l, mediaType: mediaTypes.dockerLayerGzip })),
    };
    const r = await commitImage({ store: s, baseManifest: docker, baseConfig: base.config, upperDir: upper });
    expect(r.manifest.mediaType).toBe(mediaTypes.imageManifest);
    expect(r.manifest.layers.map((l) => l.mediaType)).toEqual([mediaTypes.layerGzip, mediaTypes.layerGzip]);
    expect(r.manifest.layers[0]?.digest).toBe(base.manifest.layers[0]?.digest);
  });

  test("an inconsistent base (layers vs diff_ids) is refused before anything is stored", async () => {
    const s = new ContentStore(join(tmp, "content-bad"));
    const base = await baseImage(s);
    const before = s.list().length;
    const bad = { ...base.config, rootfs: { type: "layers" as const, diff_ids: [] } };
    await expect(commitImage({ store: s, baseManifest: base.manifest, baseConfig: bad, upperDir: upper })).rejects.toThrow(/1 layers but its config 0 diff_ids/);
    expect(s.list().length).toBe(before);
  });

  test("entrypoint without cmd drops the base cmd; bad env and created are refused", () => {
    const config: ImageConfig = {
      architecture: "arm64",
      os: "linux",
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: [] },
    };
    const d = `sha256:${"a".repeat(64)}`;
    const c = commitConfig(config, d, { created: "2026-01-01T00:00:00Z", changes: { entrypoint: ["/app"] } });
    expect(c.config).toEqual({ Entrypoint: ["/app"] });
    expect(c.history).toEqual([{ created: "2026-01-01T00:00:00Z", created_by: COMMIT_CREATED_BY }]);
    expect(() => commitConfig(config, d, { created: "x", changes: { env: ["NOVALUE"] } })).toThrow(/NAME=value/);
  });

  test("canonical JSON sorts keys at every depth and has no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  });
});
