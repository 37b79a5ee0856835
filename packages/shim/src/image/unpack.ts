// Layer unpack: one layer blob, streamed from the content store through its decompressor and a
// tar parser straight into a directory (no tar on disk), with the uncompressed bytes hashed on
// the way so the result is only trusted when they match the image config's diff id.
//
// The directory is one overlayfs lower dir, so OCI whiteouts are written in overlayfs form:
// `.wh.NAME` becomes a 0:0 character device NAME, `.wh..wh..opq` the xattr
// trusted.overlay.opaque=y on its directory. Nothing of the lower layers is needed.
//
// Safety rules (the layer is untrusted input; the directory is fresh and private to this call):
// - a name or hard-link target with a `..` component is refused;
// - a leading `/` is dropped, so `/etc/x` lands at `<dest>/etc/x` (what containerd and
//   `tar` do: in an image every path is relative to the image root anyway);
// - every parent directory is looked at with lstat before use and a symlink there is refused,
//   files are created with O_EXCL|O_NOFOLLOW, nodes and links with calls that never follow the
//   final component; so a layer holding `a -> /etc` and then `a/passwd` gets an error instead
//   of writing the host's /etc/passwd;
// - a hard link's target must be an existing non-directory inside the layer, reached through
//   real directories only (the same parent walk);
// - trusted.overlay.* xattrs from the tar are dropped: only whiteouts may speak to overlayfs.
import { closeSync, constants as C, fchmodSync, fchownSync, futimesSync, linkSync, lchownSync, lstatSync, chmodSync, createReadStream, lutimesSync, mkdirSync, openSync, rmSync, symlinkSync, writeSync, type Stats } from "node:fs";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { layerFormat, type Descriptor } from "@tsrun/ocispec";
import * as tar from "tar-stream";
import { EOPNOTSUPP, lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from "./fsys.ts";
import type { ContentStore } from "./store.ts";

/** A layer could not be unpacked; says which image, which layer and (when known) which entry. */
export class LayerUnpackError extends Error {
  override name = "LayerUnpackError";
  constructor(
    message: string,
    readonly layer: string,
    readonly entry?: string,
    readonly image?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface UnpackOptions {
  /** The image name, for error messages. */
  image?: string;
  /** The layer's position in the manifest (0 = base), for error messages. */
  index?: number;
}

export interface UnpackResult {
  /** sha256 of the uncompressed tar, checked equal to the expected diff id. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  /** Tar entries applied (whiteouts included). */
  entries: number;
}

const OVERLAY_OPAQUE = "trusted.overlay.opaque";
const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
/** Other `.wh..wh.` names are AUFS bookkeeping (hard-link dirs), meaningless here. */
const AUFS_META = ".wh..wh.";

/** Linux's O_CLOEXEC (node:fs does not export it): no descriptor leaks into a concurrently spawned child. */
const O_CLOEXEC = 0o2000000;

/** A tar entry refused by the safety rules (the cause of the LayerUnpackError that reports it). */
export class EntryError extends Error {
  override name = "EntryError";
}

/**
 * Cleans a tar path into a path relative to the layer root ("" for the root itself). A leading
 * `/` and `.` components are dropped; a `..` component is refused rather than resolved, since
 * no honest layer needs one.
 */
export function cleanEntryPath(raw: string): string {
  const parts: string[] = [];
  for (const p of raw.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") throw new EntryError(`the path has a ".." component (would leave the layer root)`);
    parts.push(p);
  }
  return parts.join("/");
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf("/") + 1);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Extended attributes of the next entry, decoded from its PAX header with binary values intact. */
type Xattrs = Map<string, Buffer>;

/**
 * PAX records are `LEN KEY=VALUE\n`; tar-stream decodes values as UTF-8, which corrupts binary
 * xattrs such as security.capability, so the records are read again here from the raw bytes.
 */
function paxXattrs(buf: Buffer): Xattrs {
  const out: Xattrs = new Map();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number.parseInt(buf.toString("ascii", off, sp), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) {
      const key = rec.toString("utf8", 0, eq);
      const value = rec.subarray(eq + 1);
      if (key.startsWith("SCHILY.xattr.")) out.set(key.slice("SCHILY.xattr.".length), Buffer.from(value));
      else if (key.startsWith("LIBARCHIVE.xattr."))
        out.set(decodeURIComponent(key.slice("LIBARCHIVE.xattr.".length)), Buffer.from(value.toString("ascii"), "base64"));
    }
    off += len;
  }
  return out;
}

interface TarExtractInternals {
  _header: { type?: string } | null;
  _decodeLongHeader(buf: Buffer): void;
}

/**
 * A tar-stream extractor that also hands over each entry's xattrs. It hooks the (pinned, 3.1.x)
 * extractor's long-header decoding, the one place the raw PAX bytes are visible.
 */
function extractorWithXattrs(): { extract: tar.Extract; takeXattrs: () => Xattrs | undefined } {
  const extract = tar.extract();
  const internals = extract as unknown as TarExtractInternals;
  const original = internals._decodeLongHeader;
  let pending: Xattrs | undefined;
  if (typeof original !== "function") throw new Error("tar-stream changed: _decodeLongHeader is gone (the xattr hook needs updating)");
  internals._decodeLongHeader = function (this: TarExtractInternals, buf: Buffer) {
    if (this._header?.type === "pax-header") {
      const x = paxXattrs(buf);
      pending = x.size > 0 ? x : undefined;
    }
    original.call(this, buf);
  };
  return {
    extract,
    takeXattrs: () => {
      const x = pending;
      pending = undefined;
      return x;
    },
  };
}

/** Writes tar entries under `dest`, refusing every way out of it. */
class LayerWriter {
  /** Directories (relative) known to be real directories created or checked by this writer. */
  private readonly dirs = new Set<string>([""]);
  /** Directory times are set last: creating entries inside a directory changes its mtime. */
  private readonly dirTimes: Array<[string, Date]> = [];
  /** Xattrs of the regular file being written, applied once its owner is final. */
  private pendingXattrs: Xattrs | undefined;

  constructor(readonly dest: string) {}

  abs(rel: string): string {
    return rel === "" ? this.dest : join(this.dest, rel);
  }

  /** Makes `rel` an existing real directory, each component checked with lstat (never followed). */
  ensureDir(rel: string): void {
    if (this.dirs.has(rel)) return;
    this.ensureDir(parentOf(rel));
    const abs = this.abs(rel);
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) mkdirSync(abs, { mode: 0o755 });
    else if (st.isSymbolicLink()) throw new EntryError(`its parent "${rel}" is a symlink in the layer; refusing to follow it`);
    else if (!st.isDirectory()) throw new EntryError(`its parent "${rel}" is not a directory in the layer`);
    this.dirs.add(rel);
  }

  /** Checks that `rel`'s parents are real directories without creating any. */
  private checkParents(rel: string): void {
    const parts = rel.split("/");
    let cur = "";
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === "" ? parts[i]! : `${cur}/${parts[i]}`;
      if (this.dirs.has(cur)) continue;
      const st = lstatSync(this.abs(cur), { throwIfNoEntry: false });
      if (st === undefined || !st.isDirectory())
        throw new EntryError(`"${cur}" is ${st?.isSymbolicLink() ? "a symlink" : st ? "not a directory" : "missing"} in the layer`);
      this.dirs.add(cur);
    }
  }

  /** Clears the way for a new entry at `rel`: a later tar entry replaces an earlier one. */
  private replace(rel: string, keepDir: boolean): Stats | undefined {
    const abs = this.abs(rel);
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) return undefined;
    if (keepDir && st.isDirectory()) return st;
    rmSync(abs, { recursive: true, force: true });
    if (st.isDirectory()) {
      for (const d of this.dirs) if (d === rel || d.startsWith(`${rel}/`)) this.dirs.delete(d);
      // Their pending times go too: set at the end, they would go through whatever replaces the
      // directory (a symlink to a host directory) or fail the layer on a path that is gone.
      const gone = (p: string) => p === abs || p.startsWith(`${abs}/`);
      for (let i = this.dirTimes.length - 1; i >= 0; i--) if (gone(this.dirTimes[i]![0])) this.dirTimes.splice(i, 1);
    }
    return undefined;
  }

  private owner(abs: string, h: tar.Headers): void {
    lchownSync(abs, h.uid ?? 0, h.gid ?? 0);
  }

  private xattrs(abs: string, xattrs: Xattrs | undefined): void {
    if (xattrs === undefined) return;
    for (const [name, value] of xattrs) {
      if (name.startsWith("trusted.overlay.")) continue;
      try {
        lsetxattr(abs, name, value);
      } catch (e) {
        // A file system without that namespace (e.g. security.selinux off SELinux hosts) only
        // loses labels it could not honour anyway.
        if ((e as { errno?: number }).errno !== EOPNOTSUPP) throw e;
      }
    }
  }

  /**
   * Applies one non-file entry, or prepares a regular file and returns its open descriptor
   * (the caller streams the data, then calls finishFile).
   */
  apply(h: tar.Headers, xattrs: Xattrs | undefined): number | undefined {
    const rel = cleanEntryPath(h.name);
    const base = baseOf(rel);
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = h.mtime ?? new Date(0);
    if (base.startsWith(WHITEOUT)) {
      const dir = parentOf(rel);
      this.ensureDir(dir);
      if (base === OPAQUE) {
        lsetxattr(this.abs(dir), OVERLAY_OPAQUE, Buffer.from("y"));
        return undefined;
      }
      if (base.startsWith(AUFS_META)) return undefined;
      const name = base.slice(WHITEOUT.length);
      // ".wh.", ".wh.." and ".wh..." name the directory itself or the one above it: a whiteout
      // there would replace the layer root, or the store's directory around it.
      if (name === "" || name === "." || name === "..") throw new EntryError(`the whiteout "${base}" names no file in its directory`);
      const target = dir === "" ? name : `${dir}/${name}`;
      this.replace(target, false);
      mknod(this.abs(target), S_IFCHR, 0, 0);
      return undefined;
    }
    if (rel === "") {
      // The layer root: only its metadata, applied to the snapshot directory itself.
      if (h.type !== "directory") throw new EntryError("the layer root is not a directory");
      this.owner(this.dest, h);
      chmodSync(this.dest, mode);
      this.xattrs(this.dest, xattrs);
      this.dirTimes.push([this.dest, mtime]);
      return undefined;
    }
    this.ensureDir(parentOf(rel));
    const abs = this.abs(rel);
    switch (h.type) {
      case "directory": {
        if (this.replace(rel, true) === undefined) mkdirSync(abs, { mode: 0o700 });
        this.dirs.add(rel);
        this.owner(abs, h);
        chmodSync(abs, mode);
        this.xattrs(abs, xattrs);
        this.dirTimes.push([abs, mtime]);
        return undefined;
      }
      case "file":
      case "contiguous-file":
      case undefined:
      case null: {
        this.replace(rel, false);
        this.pendingXattrs = xattrs;
        return openSync(abs, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | O_CLOEXEC, 0o600);
      }
      case "symlink": {
        this.replace(rel, false);
        symlinkSync(h.linkname ?? "", abs);
        this.owner(abs, h);
        this.xattrs(abs, xattrs);
        lutimesSync(abs, mtime, mtime);
        return undefined;
      }
      case "link": {
        const target = cleanEntryPath(h.linkname ?? "");
        if (target === "") throw new EntryError("the hard link has no target");
        this.checkParents(target);
        const st = lstatSync(this.abs(target), { throwIfNoEntry: false });
        if (st === undefined) throw new EntryError(`the hard link's target "${target}" is not in the layer (it must come earlier in the same layer)`);
        if (st.isDirectory()) throw new EntryError(`the hard link's target "${target}" is a directory`);
        if (target === rel) return undefined;
        this.replace(rel, false);
        // link(2) on Linux never follows a symlink named as its target: a link to a symlink is
        // a second name for the symlink itself, still inside the layer.
        linkSync(this.abs(target), abs);
        return undefined;
      }
      case "character-device":
      case "block-device":
      case "fifo": {
        this.replace(rel, false);
        const type = h.type === "fifo" ? S_IFIFO : h.type === "block-device" ? S_IFBLK : S_IFCHR;
        mknod(abs, type | mode, h.devmajor ?? 0, h.devminor ?? 0);
        this.owner(abs, h);
        chmodSync(abs, mode); // after chown, which clears set-id bits
        this.xattrs(abs, xattrs);
        lutimesSync(abs, mtime, mtime);
        return undefined;
      }
      default:
        throw new EntryError(`unsupported tar entry type "${h.type}"`);
    }
  }

  finishFile(fd: number, h: tar.Headers): void {
    const xattrs = this.pendingXattrs;
    this.pendingXattrs = undefined;
    try {
      fchownSync(fd, h.uid ?? 0, h.gid ?? 0);
      fchmodSync(fd, (h.mode ?? 0o644) & 0o7777); // after chown, which clears set-id bits
      // After chown too, which drops security.capability.
      this.xattrs(this.abs(cleanEntryPath(h.name)), xattrs);
      const mtime = h.mtime ?? new Date(0);
      futimesSync(fd, mtime, mtime);
    } finally {
      closeSync(fd);
    }
  }

  /** Directory times, deepest last-created first so no later step disturbs them. */
  finish(): void {
    for (let i = this.dirTimes.length - 1; i >= 0; i--) {
      const [abs, t] = this.dirTimes[i]!;
      lutimesSync(abs, t, t);
    }
  }
}

function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}

/**
 * Unpacks the layer `layer` (whose blob is in `store`) into `dest`, an existing empty directory,
 * and checks the uncompressed content against `diffId`. On any error `dest` is left partly
 * written: the caller (snapshots.ts) unpacks into a temporary directory and discards it.
 */
export async function unpackLayer(store: ContentStore, layer: Descriptor, diffId: string, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const what = `layer ${opts.index !== undefined ? `${opts.index} ` : ""}(${layer.digest})${opts.image ? ` of image ${opts.image}` : ""}`;
  const fail = (message: string, entry?: string, cause?: unknown): LayerUnpackError =>
    new LayerUnpackError(`${what}${entry !== undefined ? `, entry ${JSON.stringify(entry)}` : ""}: ${message}`, layer.digest, entry, opts.image, { cause });

  const format = layerFormat(layer.mediaType);
  if (format === undefined) throw fail(`unknown layer media type "${layer.mediaType}" (tsrun reads OCI and Docker tar layers: uncompressed, gzip or zstd)`);
  if (!store.has(layer.digest)) throw fail("the blob is not in the content store (import or pull the image again)");
  if (!diffId.startsWith("sha256:")) throw fail(`diff id ${diffId} does not use sha256, the only algorithm diff ids are computed with`);

  const writer = new LayerWriter(dest);
  const { extract, takeXattrs } = extractorWithXattrs();
  const hasher = new Bun.CryptoHasher("sha256");
  let size = 0;
  let entries = 0;
  let failure: LayerUnpackError | undefined;

  extract.on("entry", (h: tar.Headers, stream: Readable, next: (err?: unknown) => void) => {
    const xattrs = takeXattrs();
    entries++;
    // Passing an error to next() destroys the extractor, which destroys this entry's stream with
    // the same error; the pipeline reports it, this listener only keeps it from being unhandled.
    stream.on("error", (e: unknown) => {
      failure ??= fail(describe(e), h.name, e);
    });
    const abort = (e: unknown): void => {
      failure ??= e instanceof LayerUnpackError ? e : fail(describe(e), h.name, e);
      stream.resume();
      next(failure);
    };
    let fd: number | undefined;
    try {
      fd = writer.apply(h, xattrs);
    } catch (e) {
      abort(e);
      return;
    }
    if (fd === undefined) {
      stream.on("end", () => next());
      stream.resume();
      return;
    }
    const file = fd;
    let closed = false;
    stream.on("data", (chunk: Buffer) => {
      if (closed) return;
      try {
        writeAll(file, chunk);
      } catch (e) {
        closed = true;
        closeSync(file);
        abort(e);
      }
    });
    stream.on("end", () => {
      if (closed) return;
      closed = true;
      try {
        writer.finishFile(file, h);
      } catch (e) {
        abort(e);
        return;
      }
      next();
    });
    stream.on("error", () => {
      if (!closed) {
        closed = true;
        closeSync(file);
      }
    });
  });

  const stages: Array<NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream> = [
    createReadStream(store.blobPath(layer.digest), { highWaterMark: 1 << 20 }),
  ];
  if (format.compression === "gzip") stages.push(createGunzip({ chunkSize: 1 << 18 }));
  else if (format.compression === "zstd") stages.push(createZstdDecompress({ chunkSize: 1 << 18 }));
  stages.push(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hasher.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    }),
  );
  stages.push(extract);
  try {
    await (pipeline as (...s: unknown[]) => Promise<void>)(...stages);
  } catch (e) {
    if (failure) throw failure;
    const reason = describe(e);
    throw fail(
      /unexpected end|end of data/i.test(reason)
        ? `the layer is truncated or corrupt (${reason})`
        : `${format.compression === "none" ? "" : `${format.compression} `}stream error: ${reason}`,
      undefined,
      e,
    );
  }
  if (failure) throw failure;
  const actual = `sha256:${hasher.digest("hex")}`;
  if (actual !== diffId) throw fail(`the uncompressed content hashes to ${actual}, but the image config's diff id for it is ${diffId}`);
  try {
    writer.finish();
  } catch (e) {
    throw fail(describe(e), undefined, e);
  }
  return { diffId: actual, size, entries };
}
