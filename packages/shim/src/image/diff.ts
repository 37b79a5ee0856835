// A container's changes as an OCI layer: the overlayfs upper dir walked in sorted order and
// written as a tar stream, gzip-compressed and stored, with both digests (DiffID of the tar, digest
// of the blob) computed while the bytes pass, so no temporary tar is ever written.
//
// Overlayfs keeps its own bookkeeping in the upper dir, which an OCI layer expresses differently:
// a deleted name is a char device 0:0 (OCI: an empty `.wh.NAME` file); a dir that hides the lower
// dirs' contents carries trusted.overlay.opaque=y (OCI: the dir plus `DIR/.wh..wh..opq`); the
// other trusted.overlay.* attributes (origin, impure, nlink) describe the upper's relation to its
// lower dirs and mean nothing in a layer, so they are dropped. Renamed lower dirs (redirect_dir)
// and metadata-only copy-ups (metacopy) cannot be expressed in a tar at all; tsrun mounts without
// them, and an upper that has them is refused rather than turned into a wrong layer.
//
// The upper dir is read by file descriptor, never by path: each name is looked up in its parent
// dir's fd with O_NOFOLLOW, its type and identity come from that fd, and a file's content is read
// from the fd that was checked to be that regular file. A process of the container that swaps a
// file or a dir for a symlink mid-walk (while the container was not frozen, or one that escaped
// the freeze) therefore cannot make the walk read a host file into the layer: the swap is seen
// and the commit refused.
//
// The tar is deterministic: the same upper dir gives the same bytes, hence the same digests.
// Entries come in byte order of their names, depth first, each dir before its contents; owner,
// mode and mtime (whole seconds) come from the files; atime and ctime are not recorded; user and
// group names are left empty (the host's names are not the image's); PAX records are written only
// when the ustar header cannot hold a value (long or non-ASCII names, large ids, far mtimes) or
// for xattrs.
import { closeSync, constants as C, openSync, readSync, renameSync, rmSync, mkdirSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { randomBytes } from "node:crypto";
import { pack, type Headers, type Pack } from "tar-stream";
// @ts-expect-error tar-stream ships no types for its ustar header codec; the part used is typed below
import * as untypedTarHeaders from "tar-stream/headers.js";
import { mediaTypes, type Descriptor } from "@tsrun/ocispec";
import { AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, fdGetxattr, fdListxattr, fstatat, O_PATH, openat, readdirFd, readlinkat, type FileStat } from "./fsys.ts";
import { O_CLOEXEC } from "@tsrun/runtime/linux";
import type { ContentStore } from "./store.ts";

/** Name prefix of an OCI whiteout file (the entry deletes NAME from the layers below). */
export const WHITEOUT_PREFIX = ".wh.";
/** An OCI opaque-dir marker: the dir's contents in the layers below are hidden. */
export const OPAQUE_MARKER = ".wh..wh..opq";

/** An upper dir that no layer tar can express, or that changed while it was read. */
export class UpperDirError extends Error {
  override name = "UpperDirError";
}

export interface LayerFromUpperOptions {
  /** gzip level; the default (6) is gzip's and Docker's, so layers compress like theirs. */
  gzipLevel?: number;
  /**
   * Called with each entry's path (relative to the upper dir) after the entry was listed and
   * stat'ed and before it is opened: where a process of a running container would swap it, which
   * tests use to play that process.
   */
  beforeOpen?: (rel: string) => void;
  /**
   * The container's mount destinations, relative to its root ("etc/hosts"). The runtime makes an
   * empty file or dir at a destination missing from the image to mount on; that placeholder is
   * the runtime's, not a change the container made (what was mounted there is not in the upper
   * dir at all), so it is left out of the layer, as Docker leaves its init layer out of a commit.
   * Only an empty file or an empty dir is left out: anything else at such a path is content.
   */
  mountPoints?: ReadonlySet<string>;
}

export interface LayerDigests {
  /** sha256 of the uncompressed tar: the DiffID that goes into the image config's rootfs. */
  diffId: string;
  /** sha256 of the gzip blob: the layer descriptor's digest. */
  digest: string;
  /** Bytes of the gzip blob. */
  size: number;
}

/** Where writeLayerFromUpper sends the gzip blob; a returned promise is awaited (backpressure). */
export interface LayerSink {
  write(chunk: Uint8Array): unknown;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;

/** Overlay's own attributes live in trusted.overlay.*, or user.overlay.* on a `userxattr` mount. */
const OVERLAY_XATTR_PREFIXES = ["trusted.overlay.", "user.overlay."];
/** Overlay attributes that mean the upper depends on lower-dir state a tar cannot carry. */
const INEXPRESSIBLE = new Map<string, string>([
  ["redirect", "a renamed or moved lower dir (mount option redirect_dir=on)"],
  ["metacopy", "a metadata-only copy-up whose data stays in a lower dir (mount option metacopy=on)"],
  ["whiteout", "a whiteout stored as an xattr (an overlay 'xwhiteout', meant for lower dirs)"],
  ["whiteouts", "a dir of xattr whiteouts (an overlay 'xwhiteout' dir, meant for lower dirs)"],
]);

// ustar numeric fields are octal text of fixed width; beyond that a value goes into a PAX record.
const USTAR_MAX_ID = 0o7777777;
// tar-stream writes mtime as a 32-bit signed int of seconds; later or negative times go to PAX.
const USTAR_MAX_MTIME = 2 ** 31 - 1;

const READ_CHUNK = 1 << 20;

const tarHeaders = untypedTarHeaders as { encode(header: EntryHeader): Buffer | null };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A tar header as tar-stream takes it, plus the PAX records this module encodes itself. */
interface EntryHeader extends Headers {
  /** Set (truthy) to make tar-stream route the header through `_encodePax`. */
  pax?: Buffer;
}

/**
 * One tar entry to write; `contentFd` (regular files that are not hardlinks) is the file, open,
 * whose bytes go into the entry; whoever takes the entry closes it.
 */
interface PlannedEntry {
  header: EntryHeader;
  contentFd?: number;
}

/** O_NOFOLLOW and O_DIRECTORY differ between architectures; node's constants are this one's. */
const OPEN_DIR = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW | O_CLOEXEC;
// O_NONBLOCK: should the name have become a fifo meanwhile, the open must not wait for a writer.
const OPEN_FILE = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | O_CLOEXEC;
// Symlinks, devices and fifos are never opened for I/O: an O_PATH fd names them for readlink and
// xattrs without the side effects of opening a device or a fifo.
const OPEN_OTHER = O_PATH | C.O_NOFOLLOW | O_CLOEXEC;

/** One PAX extended-header record: "<len> key=value\n", where len counts the whole record. */
function paxRecord(key: string, value: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + String(body.length).length;
  if (String(len).length !== String(body.length).length) len = body.length + String(len).length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Whether tar-stream's ustar encoder can hold this name and link name (ASCII, length limits). */
function ustarFits(name: string, linkname: string | null | undefined): boolean {
  return tarHeaders.encode({ name, linkname, type: "file", mode: 0, uid: 0, gid: 0, size: 0, mtime: new Date(0) }) !== null;
}

/**
 * An ASCII stand-in for a name carried in a PAX record, short enough for the ustar field; readers
 * that know PAX ignore it, the others at least see something recognisable.
 */
function ustarStandIn(name: string, dir: boolean): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, "_");
  const max = dir ? 99 : 100;
  return ascii.length <= max ? ascii : ascii.slice(ascii.length - max);
}

/**
 * Makes `p` write the PAX records prepared in `header.pax` byte for byte. tar-stream's own PAX
 * writer takes string values and encodes them as UTF-8, which corrupts binary xattr values such as
 * security.capability; the PAX header block itself is still made by tar-stream's ustar encoder.
 * Depends on tar-stream 3.1.x internals (`_encodePax`, `push`): the version is pinned, and the
 * binary-xattr test catches a change.
 */
function writeOwnPaxRecords(p: Pack): void {
  const internals = p as unknown as { push(chunk: Uint8Array): boolean; _encodePax?: (header: EntryHeader) => void };
  if (typeof internals._encodePax !== "function" || typeof internals.push !== "function")
    throw new Error("tar-stream changed: Pack._encodePax is gone, so binary-safe PAX records need another hook (see diff.ts)");
  internals._encodePax = (header: EntryHeader): void => {
    const records = header.pax ?? Buffer.alloc(0);
    const base = header.name.replace(/\/$/, "").split("/").pop() ?? "";
    const paxHeader = tarHeaders.encode({
      name: ustarStandIn(`PaxHeaders/${base}`, false),
      type: "pax-header",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: records.length,
      mtime: header.mtime,
    });
    const real = tarHeaders.encode({ ...header, pax: undefined });
    if (paxHeader === null || real === null) throw new Error(`internal error: no ustar header for tar entry ${header.name}`);
    internals.push(paxHeader);
    internals.push(records);
    const pad = records.length % 512;
    if (pad !== 0) internals.push(Buffer.alloc(512 - pad));
    internals.push(real);
  };
}

function decodeName(raw: Buffer, where: string): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw new UpperDirError(
      `${where}: the name ${JSON.stringify(raw.toString("latin1"))} is not valid UTF-8; tsrun writes layer paths as UTF-8 and will not guess an encoding`,
    );
  }
}

/** The overlay part of an attribute name ("opaque"), or undefined for an ordinary attribute. */
function overlayAttribute(name: string): string | undefined {
  for (const prefix of OVERLAY_XATTR_PREFIXES) if (name.startsWith(prefix)) return name.slice(prefix.length);
  return undefined;
}

/**
 * The xattrs of the file open as `fd` to record (sorted by name) and whether overlay marks it
 * opaque. Throws on overlay attributes a layer cannot express.
 */
function readXattrs(fd: number, rel: string, upperDir: string): { xattrs: [string, Buffer][]; opaque: boolean } {
  const xattrs: [string, Buffer][] = [];
  let opaque = false;
  for (const name of fdListxattr(fd).sort()) {
    const ovl = overlayAttribute(name);
    if (ovl === undefined) {
      const value = fdGetxattr(fd, name);
      // Gone between list and get: it was removed meanwhile, so it is not part of the layer.
      if (value !== undefined) xattrs.push([name, Buffer.from(value)]);
      continue;
    }
    const why = INEXPRESSIBLE.get(ovl);
    if (why !== undefined)
      throw new UpperDirError(
        `upper dir ${upperDir}: ${rel} has the overlay attribute ${name}, ${why}, which an OCI layer cannot express; ` +
          `commit only upper dirs of overlays mounted without redirect_dir, metacopy and xwhiteouts (as tsrun mounts them)`,
      );
    if (ovl === "opaque") {
      const value = fdGetxattr(fd, name)?.toString("latin1");
      if (value === "y") opaque = true;
      else if (value !== undefined)
        throw new UpperDirError(
          `upper dir ${upperDir}: ${rel} has ${name}=${JSON.stringify(value)}; only "y" (an opaque dir) has a layer equivalent`,
        );
    }
    // origin, impure, nlink, uuid, ...: the upper's bookkeeping about its lower dirs.
  }
  return { xattrs, opaque };
}

/** PAX records (path first, then ids, mtime, xattrs) for what the ustar header cannot hold. */
function finishHeader(header: EntryHeader, ids: { uid: number; gid: number; mtime: number }, xattrs: [string, Buffer][]): EntryHeader {
  const records: Buffer[] = [];
  const dir = header.type === "directory";
  if (!ustarFits(header.name, null)) {
    records.push(paxRecord("path", Buffer.from(header.name)));
    header.name = ustarStandIn(header.name, dir) + (dir ? "/" : "");
  }
  if (header.linkname && !ustarFits("x", header.linkname)) {
    records.push(paxRecord("linkpath", Buffer.from(header.linkname)));
    header.linkname = ustarStandIn(header.linkname, false);
  }
  if (ids.uid > USTAR_MAX_ID) {
    records.push(paxRecord("uid", Buffer.from(String(ids.uid))));
    header.uid = 0;
  }
  if (ids.gid > USTAR_MAX_ID) {
    records.push(paxRecord("gid", Buffer.from(String(ids.gid))));
    header.gid = 0;
  }
  if (ids.mtime < 0 || ids.mtime > USTAR_MAX_MTIME) {
    records.push(paxRecord("mtime", Buffer.from(String(ids.mtime))));
    header.mtime = new Date(0);
  }
  for (const [name, value] of xattrs) records.push(paxRecord(`SCHILY.xattr.${name}`, value));
  if (records.length > 0) header.pax = Buffer.concat(records);
  return header;
}

/** The fd's own stat: what the walk records, never what the name pointed at a moment earlier. */
function fdStat(fd: number): FileStat {
  return fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
}

/** An empty regular file, or a dir with nothing in it: what a runtime makes to mount on. */
function isPlaceholder(dirFd: number, raw: Buffer, st: FileStat): boolean {
  const fmt = st.mode & S_IFMT;
  if (fmt === S_IFREG) return st.size === 0n;
  if (fmt !== S_IFDIR) return false;
  let fd: number;
  try {
    fd = openat(dirFd, raw, OPEN_DIR);
  } catch {
    return false;
  }
  try {
    return readdirFd(fd).length === 0;
  } finally {
    closeSync(fd);
  }
}

/**
 * The tar entries for the upper dir `upperDir`, in the order they are written. Synchronous and
 * lazy: each dir is listed when the walk reaches it. Every fd opened is closed when the walk ends
 * or is abandoned, except the `contentFd`s handed out with the entries.
 */
function* planEntries(upperDir: string, opts: LayerFromUpperOptions = {}): Generator<PlannedEntry> {
  // First path of each multiply-linked inode, so later paths become hardlink entries.
  const seen = new Map<string, string>();
  const changed = (rel: string, what: string) =>
    new UpperDirError(
      `upper dir ${upperDir}: ${rel} ${what} while it was read, so something still changes the container's files; stop or pause the container and commit again`,
    );

  /**
   * Opens `raw` in `dirFd` without following it and checks it is still the file `st` saw; returns
   * the fd and the fd's own stat.
   */
  function openChecked(dirFd: number, raw: Buffer, rel: string, st: FileStat, flags: number): { fd: number; st: FileStat } {
    let fd: number;
    try {
      fd = openat(dirFd, raw, flags);
    } catch (e) {
      const code = (e as { code?: string }).code ?? "";
      // ELOOP: a symlink now; ENOTDIR: no longer a dir; ENOENT: gone; ENXIO: a socket or a fifo.
      if (["ELOOP", "ENOTDIR", "ENOENT", "ENXIO"].includes(code)) throw changed(rel, `was replaced (${(e as Error).message})`);
      throw new UpperDirError(`upper dir ${upperDir}: cannot open ${rel}: ${(e as Error).message}`);
    }
    const now = fdStat(fd);
    if (now.ino !== st.ino || now.devMajor !== st.devMajor || now.devMinor !== st.devMinor || (now.mode & S_IFMT) !== (st.mode & S_IFMT)) {
      closeSync(fd);
      throw changed(rel, "was replaced by another file");
    }
    return { fd, st: now };
  }

  function* walk(dirFd: number, relDir: string): Generator<PlannedEntry> {
    let names: Buffer[];
    try {
      names = readdirFd(dirFd);
    } catch (e) {
      throw new UpperDirError(`upper dir ${upperDir}: cannot list ${relDir || "."}: ${(e as Error).message}`);
    }
    names.sort(Buffer.compare);
    for (const raw of names) {
      const name = decodeName(raw, `upper dir ${upperDir}: in ${relDir || "."}`);
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      let st: FileStat;
      try {
        st = fstatat(dirFd, raw, AT_SYMLINK_NOFOLLOW);
      } catch (e) {
        throw new UpperDirError(`upper dir ${upperDir}: cannot stat ${rel} (was the container still running?): ${(e as Error).message}`);
      }
      const fmt = st.mode & S_IFMT;

      if (fmt === S_IFCHR && st.rdevMajor === 0 && st.rdevMinor === 0) {
        // An overlay whiteout. Since Linux 5.8 overlay hardlinks all whiteouts to one inode, so this
        // check comes before hardlink detection. Nothing of it is read, so it is not opened.
        const ids = { uid: st.uid, gid: st.gid, mtime: Number(st.mtimeSec) };
        const wh = relDir === "" ? `${WHITEOUT_PREFIX}${name}` : `${relDir}/${WHITEOUT_PREFIX}${name}`;
        yield { header: finishHeader({ name: wh, type: "file", mode: S_IFREG | 0o600, uid: ids.uid, gid: ids.gid, mtime: tarTime(ids.mtime), size: 0 }, ids, []) };
        continue;
      }
      if (name.startsWith(WHITEOUT_PREFIX))
        throw new UpperDirError(
          `upper dir ${upperDir}: ${rel}: a name starting with "${WHITEOUT_PREFIX}" cannot be stored in an OCI layer, every reader would take it for a whiteout; rename it in the container and commit again`,
        );
      if (fmt === S_IFSOCK) continue; // a socket is a live endpoint, not content; tar has no type for it
      if (opts.mountPoints?.has(rel) && isPlaceholder(dirFd, raw, st)) continue;

      opts.beforeOpen?.(rel);
      // From here on everything comes from the open file, which no rename can change.
      const opened = openChecked(dirFd, raw, rel, st, fmt === S_IFDIR ? OPEN_DIR : fmt === S_IFREG ? OPEN_FILE : OPEN_OTHER);
      const fd = opened.fd;
      st = opened.st;
      let handedOut = false;
      try {
        const ids = { uid: st.uid, gid: st.gid, mtime: Number(st.mtimeSec) };
        // Full st_mode, not just the permission bits: tar-stream replaces a falsy mode (chmod 000)
        // with its default, and its encoder masks the type bits off anyway.
        const base: EntryHeader = { name: rel, mode: st.mode, uid: ids.uid, gid: ids.gid, mtime: tarTime(ids.mtime) };
        const { xattrs, opaque } = readXattrs(fd, rel, upperDir);

        if (fmt === S_IFDIR) {
          yield { header: finishHeader({ ...base, name: `${rel}/`, type: "directory" }, ids, xattrs) };
          if (opaque) {
            const marker = `${rel}/${OPAQUE_MARKER}`;
            yield { header: finishHeader({ ...base, name: marker, type: "file", mode: S_IFREG | 0o600, size: 0 }, ids, []) };
          }
          yield* walk(fd, rel);
          continue;
        }

        if (st.nlink > 1) {
          const key = `${st.devMajor}:${st.devMinor}:${st.ino}`;
          const first = seen.get(key);
          if (first !== undefined) {
            yield { header: finishHeader({ ...base, type: "link", linkname: first, size: 0 }, ids, xattrs) };
            continue;
          }
          seen.set(key, rel);
        }

        switch (fmt) {
          case S_IFREG:
            handedOut = true;
            yield { header: finishHeader({ ...base, type: "file", size: Number(st.size) }, ids, xattrs), contentFd: fd };
            break;
          case S_IFLNK: {
            const target = decodeName(readlinkat(fd, ""), `upper dir ${upperDir}: symlink ${rel}`);
            yield { header: finishHeader({ ...base, type: "symlink", linkname: target }, ids, xattrs) };
            break;
          }
          case S_IFCHR:
          case S_IFBLK:
            yield {
              header: finishHeader(
                { ...base, type: fmt === S_IFCHR ? "character-device" : "block-device", devmajor: st.rdevMajor, devminor: st.rdevMinor },
                ids,
                xattrs,
              ),
            };
            break;
          case S_IFIFO:
            yield { header: finishHeader({ ...base, type: "fifo" }, ids, xattrs) };
            break;
          default:
            throw new UpperDirError(`upper dir ${upperDir}: ${rel} has file type 0o${fmt.toString(8)}, which a layer tar cannot hold`);
        }
      } finally {
        if (!handedOut) closeSync(fd);
      }
    }
  }

  let rootFd: number;
  try {
    // O_NOFOLLOW: the upper dir itself is the store's (under 0700 dirs); a symlink there is not ours.
    rootFd = openat(AT_FDCWD, upperDir, OPEN_DIR);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UpperDirError(`upper dir ${upperDir} ${code === "ENOENT" ? "does not exist" : code === "ENOTDIR" || code === "ELOOP" ? "is not a directory" : `cannot be opened: ${(e as Error).message}`}`);
  }
  try {
    // The root itself is not an entry: a layer's root is the image's root, whose attributes come
    // from the base layer, as in Docker's layer tars.
    yield* walk(rootFd, "");
  } finally {
    closeSync(rootFd);
  }
}

/** A tar header's mtime: whole seconds, clamped to what ustar holds (PAX carries the rest). */
function tarTime(seconds: number): Date {
  return new Date(Math.min(Math.max(seconds, 0), USTAR_MAX_MTIME) * 1000);
}

function waitDrain(sink: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      sink.off("drain", onDrain);
      sink.off("error", onError);
      sink.off("close", onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (e: Error) => done(e);
    const onClose = () => done(new Error("tar entry closed before its content was written"));
    sink.on("drain", onDrain);
    sink.on("error", onError);
    sink.on("close", onClose);
  });
}

/** Streams one open file's content into its entry, exactly `size` bytes or an error. */
async function writeContent(entry: NodeJS.WritableStream, fd: number, size: number, rel: string, upperDir: string): Promise<void> {
  let done = 0;
  while (done < size) {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - done));
    const n = readSync(fd, buf, 0, buf.length, done);
    if (n === 0)
      throw new UpperDirError(`upper dir ${upperDir}: ${rel} shrank from ${size} to ${done} bytes while it was read; stop or pause the container before committing`);
    done += n;
    if (!entry.write(buf.subarray(0, n))) await waitDrain(entry);
  }
}

/** Feeds every entry of the upper dir into `p`, then finalizes it; destroys `p` on failure. */
async function feed(p: Pack, upperDir: string, opts: LayerFromUpperOptions): Promise<void> {
  try {
    for (const { header, contentFd } of planEntries(upperDir, opts)) {
      try {
        await new Promise<void>((resolve, reject) => {
          const entry = p.entry(header, (err) => (err ? reject(err) : resolve()));
          if (contentFd === undefined) {
            entry.end();
            return;
          }
          writeContent(entry, contentFd, header.size ?? 0, header.name, upperDir).then(
            () => entry.end(),
            (e: unknown) => {
              reject(e);
              entry.destroy(e as Error);
            },
          );
        });
      } finally {
        if (contentFd !== undefined) closeSync(contentFd);
      }
    }
    p.finalize();
  } catch (e) {
    p.destroy(e as Error);
    throw e;
  }
}

/**
 * The uncompressed layer tar of an overlay upper dir, as a stream. The walk happens while the
 * stream is read; the container must be stopped or paused meanwhile.
 */
export function tarFromUpper(upperDir: string, opts: LayerFromUpperOptions = {}): AsyncIterable<Uint8Array> {
  const p = pack();
  writeOwnPaxRecords(p);
  // The failure surfaces through the stream (destroy), so the promise itself needs no handler.
  feed(p, upperDir, opts).catch(() => {});
  return p;
}

async function sinkWriter(out: WritableStream<Uint8Array> | LayerSink): Promise<{ write(c: Uint8Array): Promise<void>; close(): Promise<void> }> {
  if (out instanceof WritableStream) {
    const writer = out.getWriter();
    return {
      write: async (c) => {
        await writer.ready;
        await writer.write(c);
      },
      close: () => writer.close(),
    };
  }
  return { write: async (c) => void (await out.write(c)), close: async () => {} };
}

/**
 * Writes the gzip layer of `upperDir` to `out` and returns its digests. A WritableStream is closed
 * at the end (and aborted on failure); a LayerSink is only written to.
 */
export async function writeLayerFromUpper(upperDir: string, out: WritableStream<Uint8Array> | LayerSink, opts: LayerFromUpperOptions = {}): Promise<LayerDigests> {
  const tarHash = new Bun.CryptoHasher("sha256");
  const blobHash = new Bun.CryptoHasher("sha256");
  let size = 0;
  const writer = await sinkWriter(out);
  try {
    await pipeline(
      tarFromUpper(upperDir, opts),
      async function* (tar: AsyncIterable<Uint8Array>) {
        for await (const chunk of tar) {
          tarHash.update(chunk);
          yield chunk;
        }
      },
      createGzip({ level: opts.gzipLevel ?? 6 }),
      async function (gz: AsyncIterable<Uint8Array>) {
        for await (const chunk of gz) {
          blobHash.update(chunk);
          size += chunk.length;
          await writer.write(chunk);
        }
      },
    );
  } catch (e) {
    if (out instanceof WritableStream) await out.abort(e).catch(() => {});
    throw e;
  }
  await writer.close();
  return { diffId: `sha256:${tarHash.digest("hex")}`, digest: `sha256:${blobHash.digest("hex")}`, size };
}

export interface UpperLayer {
  /** sha256 of the uncompressed tar, for the config's rootfs.diff_ids. */
  diffId: string;
  /** The stored gzip blob, for the manifest's layers. */
  descriptor: Descriptor;
}

/**
 * Turns an overlay upper dir into a gzip layer blob in `store`. The blob is written once, into a
 * private file in the store's ingest dir, while both digests are computed; it is then renamed to
 * its digest's name, so a reader never sees it partial and a failure leaves no blob behind. (The
 * store's ingest() wants the digest before the bytes, which only exists after them here.)
 */
export async function layerFromUpper(upperDir: string, store: ContentStore, opts: LayerFromUpperOptions = {}): Promise<UpperLayer> {
  const partial = join(store.ingestDir, `commit-${process.pid}-${randomBytes(8).toString("hex")}`);
  const fd = openSync(partial, "wx", 0o600);
  let digests: LayerDigests;
  try {
    digests = await writeLayerFromUpper(
      upperDir,
      {
        write(chunk) {
          let off = 0;
          while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        },
      },
      opts,
    );
  } catch (e) {
    closeSync(fd);
    rmSync(partial, { force: true });
    throw e;
  }
  closeSync(fd);
  if (store.has(digests.digest)) {
    rmSync(partial, { force: true });
  } else {
    const final = store.blobPath(digests.digest);
    mkdirSync(dirname(final), { recursive: true, mode: 0o700 });
    renameSync(partial, final);
  }
  return { diffId: digests.diffId, descriptor: { mediaType: mediaTypes.layerGzip, digest: digests.digest, size: digests.size } };
}
