// commit and unpack are inverses: an overlay upper dir committed as a layer and unpacked again
// (unpack writes overlayfs form: whiteout devices, opaque xattrs) gives back the same tree:
// types, content, modes, owners, mtimes, link targets, device numbers, hardlink structure, xattrs.
// Needs root (mount, mknod, chown, trusted.* xattrs).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore, sha256Digest } from "../src/image/store.ts";
import { layerFromUpper } from "../src/image/diff.ts";
import { unpackLayer } from "../src/image/unpack.ts";
import { lgetxattr, llistxattr, lsetxattr, mknod, S_IFCHR } from "../src/image/fsys.ts";

function sh(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
}

/** Attributes the layer is meant to keep; overlay's bookkeeping (origin, impure) is not among them. */
function keptXattrs(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of llistxattr(path).sort()) {
    if (name.startsWith("trusted.overlay.") && name !== "trusted.overlay.opaque") continue;
    out[name] = lgetxattr(path, name)?.toString("hex") ?? "";
  }
  return out;
}

/** A comparable description of every file under `root`, hardlinks as groups of names. */
function describeTree(root: string): { files: Record<string, unknown>; links: string[][] } {
  const files: Record<string, unknown> = {};
  const inodes = new Map<string, string[]>();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path, { bigint: true });
      const type = Number(st.mode) & 0o170000;
      const d: Record<string, unknown> = { type: type.toString(8), uid: st.uid, gid: st.gid, xattrs: keptXattrs(path) };
      if (type === 0o020000 && st.rdev === 0n) {
        files[r] = { whiteout: true };
        continue;
      }
      d.mode = (Number(st.mode) & 0o7777).toString(8);
      if (type !== 0o120000) d.mtime = st.mtimeNs / 1_000_000_000n;
      if (type === 0o100000) d.sha = sha256Digest(readFileSync(path));
      if (type === 0o120000) d.target = readlinkSync(path);
      if (type === 0o020000 || type === 0o060000) d.rdev = st.rdev;
      files[r] = d;
      if (type === 0o040000) walk(path, r);
      else if (st.nlink > 1n) {
        const k = `${st.dev}:${st.ino}`;
        inodes.set(k, [...(inodes.get(k) ?? []), r]);
      }
    }
  };
  walk(root, "");
  return { files, links: [...inodes.values()].filter((g) => g.length > 1).sort() };
}

let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "tsrun-commit-rt-"));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("an upper dir committed and unpacked again is the same tree", async () => {
  const lower = join(tmp, "lower");
  const upper = join(tmp, "upper");
  const work = join(tmp, "work");
  const merged = join(tmp, "merged");
  for (const d of [upper, work, merged]) mkdirSync(d);
  mkdirSync(join(lower, "etc/conf.d"), { recursive: true });
  mkdirSync(join(lower, "var/cache"), { recursive: true });
  writeFileSync(join(lower, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(lower, "etc/conf.d/old"), "old");
  writeFileSync(join(lower, "var/cache/blob"), Buffer.alloc(70_000, 7));

  sh(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  try {
    const m = (p: string) => join(merged, p);
    writeFileSync(m("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n");
    unlinkSync(m("etc/conf.d/old"));
    rmSync(m("var/cache"), { recursive: true });
    mkdirSync(m("var/cache"));
    writeFileSync(m("var/cache/new"), Buffer.alloc(3 * 1024 * 1024 + 17, 0xab));
    mkdirSync(m("app"), { mode: 0o750 });
    chownSync(m("app"), 1000, 1000);
    writeFileSync(m("app/run"), "#!/bin/sh\n");
    chmodSync(m("app/run"), 0o6755);
    linkSync(m("app/run"), m("app/run2"));
    symlinkSync("../etc/passwd", m("app/passwd"));
    sh(["mkfifo", m("app/pipe")]);
    mknod(m("app/tty"), S_IFCHR | 0o620, 5, 0);
    lsetxattr(m("app/run"), "user.origin", Buffer.from("commit test"));
    lsetxattr(m("app/run"), "trusted.bin", Buffer.from([0xff, 0x00, 0x80]));
  } finally {
    sh(["umount", merged]);
  }

  const store = new ContentStore(join(tmp, "content"));
  const layer = await layerFromUpper(upper, store);
  const dest = join(tmp, "unpacked");
  mkdirSync(dest);
  const r = await unpackLayer(store, layer.descriptor, layer.diffId, dest);
  expect(r.diffId).toBe(layer.diffId);

  const want = describeTree(upper);
  const got = describeTree(dest);
  // Guard: the upper really has a whiteout and an opaque dir, so the comparison covers both.
  expect(want.files["etc/conf.d/old"]).toEqual({ whiteout: true });
  expect((want.files["var/cache"] as { xattrs: Record<string, string> }).xattrs["trusted.overlay.opaque"]).toBe(Buffer.from("y").toString("hex"));
  expect(want.links).toEqual([["app/run", "app/run2"]]);
  expect(got).toEqual(want);
});
