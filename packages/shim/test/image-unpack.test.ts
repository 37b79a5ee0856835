// Layer unpack, snapshots and rootfs on crafted layers (run as root: ownership, devices, xattrs,
// overlay mounts). Hostile layers aim at real host paths under a temp dir, checked afterwards.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chainId, chainIds } from "../src/image/chainid.ts";
import { lgetxattr } from "../src/image/fsys.ts";
import { collectGarbage, contentStore, removeImage } from "../src/image/images.ts";
import { resolveImage } from "../src/image/resolve.ts";
import { mountRootfs, prepareRootfs, readRootfs, unmountRootfs } from "../src/image/rootfs.ts";
import { ensureSnapshots, hasSnapshot, listSnapshots, snapshotFsDir } from "../src/image/snapshots.ts";
import { sha256Digest } from "../src/image/store.ts";
import { cleanEntryPath, EntryError, LayerUnpackError, unpackLayer } from "../src/image/unpack.ts";
import { buildLayer, rawPax, storeImage, type TarEntry } from "./fixtures/image-layers.ts";

const dir = mkdtempSync(join(tmpdir(), "tsrun-unpack-"));
afterAll(() => {
  // Every store root the tests made (root1, root2, ...): a test that failed between mount and
  // unmount must not leave its overlay mounted, nor make the removal below fail with EBUSY.
  for (const r of readdirSync(dir).filter((d) => /^root\d+$/.test(d)).map((d) => join(dir, d))) {
    const containers = join(r, "containers");
    for (const id of existsSync(containers) ? readdirSync(containers) : []) unmountRootfs(r, id);
  }
  // Anything still mounted is a bug to report; it is detached first so the removal still works.
  const left = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "").filter((p) => p.startsWith(`${dir}/`));
  for (const p of left.reverse()) Bun.spawnSync(["umount", "-l", p]);
  rmSync(dir, { recursive: true, force: true });
  if (left.length) throw new Error(`test mounts were left under ${dir}: ${left.join(", ")}`);
});

let n = 0;
function freshRoot(): string {
  const r = join(dir, `root${++n}`);
  mkdirSync(r);
  return r;
}

const t0 = new Date("2020-01-02T03:04:05Z");

describe("chain ids", () => {
  test("follow the image-spec definition", () => {
    const a = sha256Digest("a");
    const b = sha256Digest("b");
    const c = sha256Digest("c");
    const ids = chainIds([a, b, c]);
    expect(ids[0]).toBe(a);
    expect(ids[1]).toBe(sha256Digest(`${a} ${b}`));
    expect(ids[2]).toBe(sha256Digest(`${ids[1]} ${c}`));
    expect(chainId([a, b, c])).toBe(ids[2]!);
    expect(chainId([])).toBeUndefined();
  });
});

describe("entry paths", () => {
  test("leading / and . are dropped, .. refused", () => {
    expect(cleanEntryPath("/etc/passwd")).toBe("etc/passwd");
    expect(cleanEntryPath("./a/./b/")).toBe("a/b");
    expect(cleanEntryPath("./")).toBe("");
    expect(() => cleanEntryPath("a/../../x")).toThrow('".."');
  });
});

async function unpackInto(entries: TarEntry[], compression: "none" | "gzip" | "zstd" = "gzip") {
  const root = freshRoot();
  const layer = await buildLayer(entries, compression);
  await storeImage(root, "test/unpack", [layer]);
  const dest = join(root, "out");
  mkdirSync(dest);
  const result = await unpackLayer(contentStore(root), layer.descriptor, layer.diffId, dest, { image: "test/unpack", index: 0 });
  return { root, dest, result, layer };
}

describe("unpack", () => {
  for (const compression of ["none", "gzip", "zstd"] as const)
    test(`files, dirs, links, nodes, ownership, modes, times, xattrs (${compression})`, async () => {
      const longName = `deep/${"d".repeat(120)}/${"f".repeat(150)}`;
      // VFS_CAP_REVISION_2, effective, cap_net_raw permitted: what `setcap cap_net_raw+ep` writes.
      const cap = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      const binary = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x41]);
      const { dest, result, layer } = await unpackInto(
        [
          { name: "./", type: "directory", mode: 0o755, mtime: t0 },
          { name: "bin/", type: "directory", mode: 0o755, mtime: t0 },
          { name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755, uid: 1000, gid: 1001, mtime: t0 },
          { name: "bin/alias", type: "symlink", linkname: "tool", mtime: t0 },
          { name: "bin/hard", type: "link", linkname: "bin/tool" },
          { name: "tmp/", type: "directory", mode: 0o1777, mtime: t0 },
          { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
          { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
          { name: "run/fifo", type: "fifo", mode: 0o600 },
          { name: longName, body: "long", mtime: t0 },
          { name: "bin/ping", body: "elf", mode: 0o755, pax: { "SCHILY.xattr.user.note": "hello" } },
          rawPax({ "SCHILY.xattr.security.capability": cap, "SCHILY.xattr.user.bin": binary }),
          { name: "bin/capped", body: "elf", mode: 0o755 },
          { name: "etc/", type: "directory", mode: 0o700, mtime: t0, uid: 5 },
        ],
        compression,
      );
      expect(result.diffId).toBe(layer.diffId);
      expect(result.size).toBe(layer.tar.length);
      const tool = lstatSync(join(dest, "bin/tool"));
      expect(tool.mode & 0o7777).toBe(0o4755);
      expect([tool.uid, tool.gid]).toEqual([1000, 1001]);
      expect(tool.mtime.getTime()).toBe(t0.getTime());
      expect(readFileSync(join(dest, "bin/tool"), "utf8")).toBe("#!/bin/sh\n");
      expect(readlinkSync(join(dest, "bin/alias"))).toBe("tool");
      expect(lstatSync(join(dest, "bin/alias")).mtime.getTime()).toBe(t0.getTime());
      expect(lstatSync(join(dest, "bin/hard")).ino).toBe(tool.ino);
      expect(lstatSync(join(dest, "tmp")).mode & 0o7777).toBe(0o1777);
      const devnull = lstatSync(join(dest, "dev/null"));
      expect(devnull.isCharacterDevice()).toBe(true);
      expect(devnull.rdev).toBe(0x103);
      const sda = lstatSync(join(dest, "dev/sda"));
      expect(sda.isBlockDevice()).toBe(true);
      expect(sda.rdev).toBe(0x800);
      expect(sda.gid).toBe(6);
      expect(lstatSync(join(dest, "run/fifo")).isFIFO()).toBe(true);
      expect(readFileSync(join(dest, longName), "utf8")).toBe("long");
      expect(lgetxattr(join(dest, "bin/ping"), "user.note")?.toString()).toBe("hello");
      // A PAX value that is not UTF-8 must come through byte for byte.
      expect(lgetxattr(join(dest, "bin/capped"), "security.capability")).toEqual(cap);
      expect(lgetxattr(join(dest, "bin/capped"), "user.bin")).toEqual(binary);
      // Directory times survive the entries written into them afterwards.
      expect(statSync(join(dest, "bin")).mtime.getTime()).toBe(t0.getTime());
      const etc = lstatSync(join(dest, "etc"));
      expect([etc.mode & 0o7777, etc.uid]).toEqual([0o700, 5]);
    });

  test("OCI whiteouts become overlayfs whiteouts; a later entry replaces an earlier one", async () => {
    const { dest } = await unpackInto([
      { name: "etc/.wh.motd", body: "" },
      { name: "var/cache/.wh..wh..opq", body: "" },
      { name: "var/cache/kept", body: "new" },
      { name: "x", body: "first" },
      { name: "x", body: "second" },
      { name: "d/f", body: "in a dir" },
      { name: "d", type: "symlink", linkname: "/etc" },
    ]);
    const wh = lstatSync(join(dest, "etc/motd"));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(existsSync(join(dest, "etc/.wh.motd"))).toBe(false);
    expect(lgetxattr(join(dest, "var/cache"), "trusted.overlay.opaque")?.toString()).toBe("y");
    expect(existsSync(join(dest, "var/cache/.wh..wh..opq"))).toBe(false);
    expect(readFileSync(join(dest, "var/cache/kept"), "utf8")).toBe("new");
    expect(readFileSync(join(dest, "x"), "utf8")).toBe("second");
    expect(lstatSync(join(dest, "d")).isSymbolicLink()).toBe(true);
  });

  test("trusted.overlay xattrs from a layer are dropped", async () => {
    const { dest } = await unpackInto([{ name: "a/", type: "directory", pax: { "SCHILY.xattr.trusted.overlay.redirect": "/etc" } }]);
    expect(lgetxattr(join(dest, "a"), "trusted.overlay.redirect")).toBeUndefined();
  });
});

describe("tar-slip", () => {
  // Each attack aims at a file outside the store; after the refusal it must not exist.
  const victim = join(dir, "victim");
  mkdirSync(victim, { recursive: true });

  /**
   * Unpacks a hostile layer and checks that it was refused for `reason` at `entryName`: the exact
   * refusal (an EntryError), not just any failure that names the entry, since a crash while
   * writing through an escape would name the entry too.
   */
  async function attack(entries: TarEntry[], entryName: string, target: string, reason: string) {
    const root = freshRoot();
    const layer = await buildLayer(entries);
    await storeImage(root, "evil/image:1", [layer]);
    const store = contentStore(root);
    const img = resolveImage(root, "evil/image:1");
    const err = await ensureSnapshots(root, store, img.layers, { image: "evil/image:1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerUnpackError);
    const msg = (err as Error).message;
    expect(msg).toEndWith(`, entry ${JSON.stringify(entryName)}: ${reason}`);
    expect((err as Error).cause).toBeInstanceOf(EntryError);
    expect(msg).toContain(layer.descriptor.digest);
    expect(msg).toContain("evil/image:1");
    expect(existsSync(target)).toBe(false);
    // Nothing half-made is visible and no temporary copy is left.
    expect(hasSnapshot(root, img.layers[0]!.chainId)).toBe(false);
    expect(readdirSync(join(root, "snapshots", "tmp"))).toEqual([]);
    return msg;
  }
  const DOTDOT = 'the path has a ".." component (would leave the layer root)';
  const symlinkParent = (p: string) => `its parent "${p}" is a symlink in the layer; refusing to follow it`;

  test("../ escapes are refused", async () => {
    const depth = "../".repeat(12);
    await attack([{ name: "ok", body: "" }, { name: `${depth}${victim.slice(1)}/dotdot`, body: "pwned" }], `${depth}${victim.slice(1)}/dotdot`, join(victim, "dotdot"), DOTDOT);
  });

  test("a whiteout that names no file (.wh., .wh.., .wh...) is refused, at the root and below it", async () => {
    for (const [dir, wh] of [["", ".wh."], ["", ".wh.."], ["", ".wh..."], ["a/", ".wh."], ["a/", ".wh.."], ["a/b/", ".wh..."]] as const) {
      const entries: TarEntry[] = [{ name: "a/b/keep", body: "k" }, { name: `${dir}${wh}`, body: "" }];
      const msg = await attack(entries, `${dir}${wh}`, join(victim, "never"), `the whiteout "${wh}" names no file in its directory`);
      expect(msg).not.toContain("ENOTDIR");
    }
  });

  test("absolute paths land inside the snapshot", async () => {
    const { dest } = await unpackInto([{ name: `${victim}/abs`, body: "inside" }]);
    expect(existsSync(join(victim, "abs"))).toBe(false);
    expect(readFileSync(join(dest, victim.slice(1), "abs"), "utf8")).toBe("inside");
  });

  test("a symlinked parent is not followed", async () => {
    await attack(
      [
        { name: "a", type: "symlink", linkname: victim },
        { name: "a/file", body: "pwned" },
      ],
      "a/file",
      join(victim, "file"),
      symlinkParent("a"),
    );
  });

  test("a directory replaced by a symlink later in the layer is not written through", async () => {
    // The writer remembers the directories it made; the symlink that replaces one must make it
    // forget that one and everything below it, or the next entry goes through onto the host.
    const dirThenLink: TarEntry[] = [
      { name: "a/", type: "directory" },
      { name: "a/b/", type: "directory" },
      { name: "a/x", body: "inside" },
      { name: "a", type: "symlink", linkname: victim },
    ];
    await attack([...dirThenLink, { name: "a/y", body: "pwned" }], "a/y", join(victim, "y"), symlinkParent("a"));
    mkdirSync(join(victim, "b"));
    await attack([...dirThenLink, { name: "a/b/y", body: "pwned" }], "a/b/y", join(victim, "b/y"), symlinkParent("a"));
    rmSync(join(victim, "b"), { recursive: true });
    await attack([...dirThenLink, { name: "a/fifo", type: "fifo" }], "a/fifo", join(victim, "fifo"), symlinkParent("a"));
    // A whiteout there would delete the host's file.
    writeFileSync(join(victim, "kept"), "host file");
    await attack([...dirThenLink, { name: "a/.wh.kept", body: "" }], "a/.wh.kept", join(victim, "never"), symlinkParent("a"));
    expect(readFileSync(join(victim, "kept"), "utf8")).toBe("host file");
    // A hard link's target looked up through it would link a host file into the layer.
    await attack([...dirThenLink, { name: "hl", type: "link", linkname: "a/kept" }], "hl", join(victim, "never"), '"a" is a symlink in the layer');
    expect(lstatSync(join(victim, "kept")).nlink).toBe(1);
    rmSync(join(victim, "kept"));
  });

  test("a directory replaced by a symlink keeps no pending time: nothing on the host is touched", async () => {
    // Directory times are set at the end; one set on a path through the symlink would change a
    // host directory's times (or fail the layer when the host has no such directory).
    const hostSub = join(victim, "times");
    mkdirSync(hostSub);
    utimesSync(hostSub, t0, t0);
    const { dest } = await unpackInto([
      { name: "a/", type: "directory", mtime: new Date("2001-01-01T00:00:00Z") },
      { name: "a/times/", type: "directory", mtime: new Date("2001-01-01T00:00:00Z") },
      { name: "a/missing/", type: "directory", mtime: new Date("2001-01-01T00:00:00Z") },
      { name: "a", type: "symlink", linkname: victim },
    ]);
    expect(lstatSync(join(dest, "a")).isSymbolicLink()).toBe(true);
    expect(statSync(hostSub).mtime.getTime()).toBe(t0.getTime());
    rmSync(hostSub, { recursive: true });
  });

  test("a symlinked parent is not followed for nodes or links either", async () => {
    await attack(
      [
        { name: "a", type: "symlink", linkname: victim },
        { name: "a/dev", type: "fifo" },
      ],
      "a/dev",
      join(victim, "dev"),
      symlinkParent("a"),
    );
    await attack(
      [
        { name: "f", body: "x" },
        { name: "a", type: "symlink", linkname: victim },
        { name: "a/sub/hl", type: "link", linkname: "f" },
      ],
      "a/sub/hl",
      join(victim, "sub"),
      symlinkParent("a"),
    );
  });

  test("hard links out of the layer are refused", async () => {
    writeFileSync(join(victim, "secret"), "host secret");
    await attack([{ name: "hl", type: "link", linkname: "../../../../../../../../../etc/passwd" }], "hl", join(dir, "never"), DOTDOT);
    // Through a symlinked directory inside the layer.
    await attack(
      [
        { name: "v", type: "symlink", linkname: victim },
        { name: "hl", type: "link", linkname: "v/secret" },
      ],
      "hl",
      join(dir, "never"),
      '"v" is a symlink in the layer',
    );
    // An absolute target is taken inside the layer, where it does not exist.
    await attack([{ name: "hl", type: "link", linkname: join(victim, "secret") }], "hl", join(dir, "never"), `"${victim.slice(1).split("/")[0]}" is missing in the layer`);
    expect(lstatSync(join(victim, "secret")).nlink).toBe(1);
  });

  test("a hard link to a symlink links the symlink, not what it points at", async () => {
    const { dest } = await unpackInto([
      { name: "s", type: "symlink", linkname: join(victim, "secret") },
      { name: "hl", type: "link", linkname: "s" },
    ]);
    expect(lstatSync(join(dest, "hl")).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(victim, "secret")).nlink).toBe(1);
  });
});

describe("bad layers", () => {
  test("a wrong diff id fails naming the layer; nothing visible; a corrected image unpacks", async () => {
    const root = freshRoot();
    const layer = await buildLayer([{ name: "f", body: "data" }]);
    await storeImage(root, "bad/diffid", [layer], [sha256Digest("something else")]);
    const store = contentStore(root);
    const img = resolveImage(root, "bad/diffid");
    const err = await ensureSnapshots(root, store, img.layers, { image: "bad/diffid" }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(layer.descriptor.digest);
    expect((err as Error).message).toContain("diff id");
    expect(listSnapshots(root)).toEqual([]);
    expect(readdirSync(join(root, "snapshots", "tmp"))).toEqual([]);
    await storeImage(root, "bad/diffid", [layer]);
    const good = resolveImage(root, "bad/diffid");
    expect((await ensureSnapshots(root, store, good.layers)).unpacked).toBe(1);
  });

  test("a truncated gzip layer fails clearly; the store stays consistent; rerun succeeds", async () => {
    const root = freshRoot();
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
    const layer = await buildLayer([{ name: "big", body: big }, { name: "after", body: "x" }]);
    const cut = layer.blob.subarray(0, Math.floor(layer.blob.length / 2));
    const truncated = { blob: cut, descriptor: { ...layer.descriptor, digest: sha256Digest(cut), size: cut.length }, diffId: layer.diffId };
    await storeImage(root, "bad/truncated", [truncated]);
    const store = contentStore(root);
    const img = resolveImage(root, "bad/truncated");
    const err = await ensureSnapshots(root, store, img.layers, { image: "bad/truncated" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerUnpackError);
    expect((err as Error).message).toMatch(/truncated|corrupt|diff id/);
    expect((err as Error).message).toContain(truncated.descriptor.digest);
    expect(listSnapshots(root)).toEqual([]);
    expect(readdirSync(join(root, "snapshots", "tmp"))).toEqual([]);
    await storeImage(root, "bad/truncated", [layer]);
    const r = await ensureSnapshots(root, store, resolveImage(root, "bad/truncated").layers);
    expect(readFileSync(join(r.fsDirs[0]!, "big"))).toEqual(big);
  });

  test("corrupt gzip fails naming the layer", async () => {
    const root = freshRoot();
    const layer = await buildLayer([{ name: "f", body: "data".repeat(1000) }]);
    const bad = Buffer.from(layer.blob);
    bad.fill(0x55, 20, 40);
    await storeImage(root, "bad/corrupt", [{ blob: bad, descriptor: { ...layer.descriptor, digest: sha256Digest(bad) }, diffId: layer.diffId }]);
    const err = await ensureSnapshots(root, contentStore(root), resolveImage(root, "bad/corrupt").layers, { image: "bad/corrupt" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerUnpackError);
    expect((err as Error).message).toContain("bad/corrupt");
  });

  test("an unknown layer media type is refused by name", async () => {
    const root = freshRoot();
    const layer = await buildLayer([{ name: "f", body: "x" }]);
    await storeImage(root, "bad/mediatype", [{ ...layer, descriptor: { ...layer.descriptor, mediaType: "application/x-squashfs" } }]);
    expect(() => resolveImage(root, "bad/mediatype")).toThrow('"application/x-squashfs"');
    const err = await unpackLayer(contentStore(root), { ...layer.descriptor, mediaType: "application/x-squashfs" }, layer.diffId, join(root)).catch((e: unknown) => e);
    expect((err as Error).message).toContain("application/x-squashfs");
  });
});

describe("snapshots and rootfs", () => {
  async function twoLayerImage(root: string) {
    const l0 = await buildLayer([
      { name: "etc/motd", body: "hello" },
      { name: "etc/keep", body: "kept" },
      { name: "var/cache/old1", body: "1" },
      { name: "var/cache/sub/old2", body: "2" },
      { name: "bin/sh", body: "shell", mode: 0o755 },
      { name: "data/h1", body: "linked" },
      { name: "data/h2", type: "link", linkname: "data/h1" },
    ]);
    const l1 = await buildLayer(
      [
        { name: "etc/.wh.motd", body: "" },
        { name: "var/cache/.wh..wh..opq", body: "" },
        { name: "var/cache/new", body: "n" },
        { name: "etc/added", body: "added" },
      ],
      "zstd",
    );
    await storeImage(root, "test/two:1", [l0, l1]);
  }

  function checkMerged(rootfs: string) {
    expect(existsSync(join(rootfs, "etc/motd"))).toBe(false);
    expect(readFileSync(join(rootfs, "etc/keep"), "utf8")).toBe("kept");
    expect(readFileSync(join(rootfs, "etc/added"), "utf8")).toBe("added");
    expect(readdirSync(join(rootfs, "var/cache"))).toEqual(["new"]);
    expect(readFileSync(join(rootfs, "bin/sh"), "utf8")).toBe("shell");
  }

  test("overlay: whiteouts and opaque dirs across two layers; writes stay in the container", async () => {
    const root = freshRoot();
    await twoLayerImage(root);
    const a = await prepareRootfs(root, "test/two:1", "a", { mode: "overlay" });
    expect(a.mode).toBe("overlay");
    expect(a.unpacked).toBe(2);
    checkMerged(a.target);
    writeFileSync(join(a.target, "etc/keep"), "changed");
    const b = await prepareRootfs(root, "test/two:1", "b", { mode: "overlay" });
    expect(b.unpacked).toBe(0);
    expect(readFileSync(join(b.target, "etc/keep"), "utf8")).toBe("kept");
    expect(readFileSync(join(root, "containers/a/upper/etc/keep"), "utf8")).toBe("changed");
    expect(readFileSync(join(snapshotFsDir(root, a.chainIds[0]!), "etc/keep"), "utf8")).toBe("kept");
    expect(readRootfs(root, "b")?.chainIds).toEqual(a.chainIds);
    unmountRootfs(root, "a");
    unmountRootfs(root, "b");
    expect(existsSync(join(root, "containers/a"))).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(join(root, "containers"));
  });

  test("copying fallback gives the same tree", async () => {
    const root = freshRoot();
    await twoLayerImage(root);
    const c = await prepareRootfs(root, "test/two:1", "c", { mode: "copy" });
    expect(c.mode).toBe("copy");
    checkMerged(c.target);
    expect(lstatSync(join(c.target, "data/h1")).ino).toBe(lstatSync(join(c.target, "data/h2")).ino);
    expect(lstatSync(join(c.target, "bin/sh")).mode & 0o777).toBe(0o755);
    unmountRootfs(root, "c");
    expect(existsSync(join(root, "containers/c"))).toBe(false);
  });

  test("copying fallback: a directory a later layer replaced by a symlink is not written through by the next", async () => {
    const root = freshRoot();
    const host = join(dir, "copy-victim");
    mkdirSync(host);
    const layers = [
      await buildLayer([{ name: "a/", type: "directory" }, { name: "a/x", body: "0" }]),
      await buildLayer([{ name: "a", type: "symlink", linkname: host }]),
      await buildLayer([{ name: "a/y", body: "pwned" }]),
    ];
    await storeImage(root, "test/relink", layers);
    for (const mode of ["copy", "overlay"] as const) {
      const r = await prepareRootfs(root, "test/relink", mode, { mode });
      try {
        expect(readdirSync(host)).toEqual([]);
        expect(lstatSync(join(r.target, "a")).isDirectory()).toBe(true);
        expect(readdirSync(join(r.target, "a"))).toEqual(["y"]);
      } finally {
        unmountRootfs(root, mode);
      }
    }
    rmSync(host, { recursive: true });
  });

  test("many layers: lower dir list longer than a page still mounts (relative paths)", async () => {
    const root = freshRoot();
    const layers = [];
    for (let i = 0; i < 40; i++) layers.push(await buildLayer([{ name: `l${i}`, body: String(i) }], "none"));
    await storeImage(root, "test/many", layers);
    const m = await prepareRootfs(root, "test/many", "many", { mode: "overlay" });
    expect(readdirSync(m.target).length).toBe(40);
    unmountRootfs(root, "many");
    // Beyond what even relative paths fit: a clear error, nothing left behind.
    const chains = resolveImage(root, "test/many").layers.map((l) => l.chainId);
    const tooMany = Array.from({ length: 60 }, (_, i) => chains[i % chains.length]!);
    expect(() => mountRootfs(root, "toomany", tooMany, { mode: "overlay" })).toThrow("too many for one overlay mount");
    expect(existsSync(join(root, "containers/toomany"))).toBe(false);
  });

  test("garbage collection keeps what images and containers use", async () => {
    const root = freshRoot();
    await twoLayerImage(root);
    const shared = await buildLayer([{ name: "only", body: "x" }]);
    await storeImage(root, "test/other", [shared]);
    await prepareRootfs(root, "test/two:1", "g", { mode: "overlay" });
    const before = contentStore(root).list().length;
    expect(removeImage(root, "test/two:1")).toBe(true);
    // The container still mounts the snapshots: they stay; its blobs go.
    expect(listSnapshots(root).length).toBe(2);
    expect(contentStore(root).list().length).toBeLessThan(before);
    expect(contentStore(root).has(shared.descriptor.digest)).toBe(true);
    unmountRootfs(root, "g");
    const swept = collectGarbage(root);
    expect(swept.snapshots.length).toBe(2);
    expect(listSnapshots(root)).toEqual([]);
  });

  test("two processes unpacking the same image at once both succeed with one snapshot each layer", async () => {
    const root = freshRoot();
    const big = Buffer.alloc(4 << 20, 7);
    const layers = [await buildLayer([{ name: "big", body: big }]), await buildLayer([{ name: "small", body: "s" }])];
    await storeImage(root, "test/race", layers);
    const script = join(dir, "race.ts");
    writeFileSync(
      script,
      `import { contentStore } from ${JSON.stringify(join(import.meta.dir, "../src/image/images.ts"))};
import { resolveImage } from ${JSON.stringify(join(import.meta.dir, "../src/image/resolve.ts"))};
import { ensureSnapshots } from ${JSON.stringify(join(import.meta.dir, "../src/image/snapshots.ts"))};
const root = process.argv[2]!;
const r = await ensureSnapshots(root, contentStore(root), resolveImage(root, "test/race").layers);
console.log(JSON.stringify(r));`,
    );
    const run = () => Bun.spawn([process.execPath, script, root], { stdout: "pipe", stderr: "pipe" });
    const procs = [run(), run()];
    const codes = await Promise.all(procs.map((p) => p.exited));
    const outs = await Promise.all(procs.map((p) => new Response(p.stdout).text()));
    const errs = await Promise.all(procs.map((p) => new Response(p.stderr).text()));
    expect({ codes, errs }).toEqual({ codes: [0, 0], errs: ["", ""] });
    const results = outs.map((o) => JSON.parse(o) as { fsDirs: string[]; unpacked: number });
    expect(results[0]!.fsDirs).toEqual(results[1]!.fsDirs);
    expect(listSnapshots(root).length).toBe(2);
    expect(readdirSync(join(root, "snapshots", "tmp"))).toEqual([]);
    expect(readFileSync(join(results[0]!.fsDirs[0]!, "big")).equals(big)).toBe(true);
  });
});
