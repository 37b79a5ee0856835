// The content store: every blob of every image, kept once, named by its digest, and never visible
// under that name before its bytes were checked against it. Each writer streams into a file of
// its own in ingest/ (random name, O_EXCL, 0600, in a 0700 dir), then hashes that file's bytes
// and renames it into `blobs/<alg>/<hex>` only when size and digest match: two writers of one
// digest, one of them lying, each check their own bytes and the liar's are never renamed. A
// download cut short is parked as `ingest/<alg>-<hex>` so that a later fetch can claim it (by
// renaming it to its own name, which only one claimant can do) and resume where it stopped.
import { chmodSync, closeSync, constants, existsSync, fstatSync, ftruncateSync, linkSync, mkdirSync, openSync, read, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseDigest, type RegisteredDigestAlgorithm } from "@tsrun/ocispec";

/** A blob's bytes did not match the digest or size it was announced with. */
export class DigestMismatchError extends Error {
  override name = "DigestMismatchError";
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly expectedSize: number | undefined,
    readonly actualSize: number,
    what: string,
  ) {
    super(
      expectedSize !== undefined && expectedSize !== actualSize
        ? `${what}: size mismatch: expected ${expectedSize} bytes for ${expected}, got ${actualSize}`
        : `${what}: digest mismatch: expected ${expected}, content hashes to ${actual} (${actualSize} bytes)`,
    );
  }
}

/**
 * A resumed ingest found no partial download to continue (another ingest of the same digest
 * claimed it, or it was shorter than the offset the source starts at). Nothing was read from the
 * source; the caller fetches the blob from the start instead.
 */
export class ResumeLostError extends Error {
  override name = "ResumeLostError";
  constructor(
    readonly digest: string,
    readonly offset: number,
  ) {
    super(`blob ${digest}: the partial download to resume from byte ${offset} is gone (another download of it took it over); fetch from the start`);
  }
}

export type ByteSource = Uint8Array | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

export interface IngestOptions {
  /** What the blob is, for error messages (e.g. "layer 2 of docker.io/library/busybox:latest"). */
  what?: string;
  /**
   * The source starts at this byte of the blob and continues the partial download on disk (what
   * `ingestOffset` said when, e.g., the HTTP Range request was made). Without it the source is
   * read from byte 0. Throws ResumeLostError when that partial is no longer there to continue.
   */
  resumeFrom?: number;
}

export interface ContentStoreOptions {
  /** Create the directories when missing (default true). */
  create?: boolean;
}

function hasherFor(algorithm: string): Bun.CryptoHasher {
  if (algorithm !== "sha256" && algorithm !== "sha512")
    throw new Error(`cannot verify content with digest algorithm "${algorithm}": only sha256 and sha512 are supported`);
  return new Bun.CryptoHasher(algorithm as RegisteredDigestAlgorithm);
}

async function* chunks(source: ByteSource): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  if (source instanceof ReadableStream) {
    const reader = source.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  yield* source as AsyncIterable<Uint8Array>;
}

/**
 * Writes `source` to fd at `position`; returns the bytes written. Stops once more than `limit`
 * bytes came (the caller reports the size mismatch), so a lying source cannot fill the disk.
 */
async function copy(source: ByteSource, fd: number, position: number, limit?: number): Promise<number> {
  let n = 0;
  for await (const c of chunks(source)) {
    let off = 0;
    while (off < c.length) off += writeSync(fd, c, off, c.length - off, position + n + off);
    n += c.length;
    if (limit !== undefined && n > limit) break;
  }
  return n;
}

const readAt = promisify(read);

/**
 * Digest and size of what the file open at fd holds, read back from the file itself: that,
 * not the stream that was written, is what gets renamed into place.
 */
async function hashFile(fd: number, algorithm: string): Promise<{ digest: string; size: number }> {
  const hasher = hasherFor(algorithm);
  const buf = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  for (;;) {
    const { bytesRead } = await readAt(fd, buf, 0, buf.length, size);
    if (bytesRead === 0) break;
    hasher.update(buf.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { digest: `${algorithm}:${hasher.digest("hex")}`, size };
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** sha256 digest of bytes, in "sha256:<hex>" form. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;

  /** `root` is the store's own directory, e.g. /var/lib/tsrun/content. */
  constructor(
    readonly root: string,
    opts: ContentStoreOptions = {},
  ) {
    this.blobsDir = join(root, "blobs");
    this.ingestDir = join(root, "ingest");
    if (opts.create !== false) {
      mkdirSync(this.blobsDir, { recursive: true, mode: 0o700 });
      mkdirSync(this.ingestDir, { recursive: true, mode: 0o700 });
      // Only its owner may add, rename or remove files here between an ingest's hash and its
      // rename; a dir made looser by hand (or by an older version) is tightened.
      if ((statSync(this.ingestDir).mode & 0o077) !== 0) chmodSync(this.ingestDir, 0o700);
    }
  }

  /** Where the blob with this digest lives (whether or not it is there). Throws on a malformed digest. */
  blobPath(digest: string): string {
    const d = parseDigest(digest);
    if (!d.registered) throw new Error(`digest ${digest}: algorithm "${d.algorithm}" is not one tsrun can verify (sha256, sha512)`);
    return join(this.blobsDir, d.algorithm, d.encoded);
  }

  /** Where a download cut short waits to be resumed. */
  private parkedPath(digest: string): string {
    const d = parseDigest(digest);
    return join(this.ingestDir, `${d.algorithm}-${d.encoded}`);
  }

  /** A name nobody else uses, for one ingest's own file. */
  private privatePath(prefix: string): string {
    return join(this.ingestDir, `${prefix}.${process.pid}.${randomBytes(8).toString("hex")}.tmp`);
  }

  has(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** Size of a stored blob, or undefined when it is not in the store. */
  size(digest: string): number | undefined {
    try {
      return statSync(this.blobPath(digest)).size;
    } catch {
      return undefined;
    }
  }

  /** Bytes of a partial ingest on disk, to resume from (0 when none). */
  ingestOffset(digest: string): number {
    try {
      return statSync(this.parkedPath(digest)).size;
    } catch {
      return 0;
    }
  }

  /**
   * A stored blob's bytes, checked against its digest: meant for manifests, configs and indexes,
   * which are small and read whole anyway, so the check costs next to nothing and a blob changed
   * on disk is not trusted. Throws DigestMismatchError naming the digest and the file.
   */
  readBytes(digest: string): Uint8Array {
    const path = this.blobPath(digest);
    const bytes = readFileSync(path);
    const { algorithm } = parseDigest(digest);
    const actual = `${algorithm}:${hasherFor(algorithm).update(bytes).digest("hex")}`;
    if (actual !== digest)
      throw new DigestMismatchError(
        digest,
        actual,
        undefined,
        bytes.length,
        `content store: stored blob ${digest} (${path}) is corrupt; remove the file and pull or import its image again`,
      );
    return bytes;
  }

  /** A stored blob parsed as JSON, checked against its digest first (see readBytes). */
  readJson(digest: string): unknown {
    return JSON.parse(new TextDecoder().decode(this.readBytes(digest)));
  }

  /** A stream of a stored blob's bytes. */
  openStream(digest: string): ReadableStream<Uint8Array> {
    return Bun.file(this.blobPath(digest)).stream();
  }

  /**
   * Stores the bytes of `source` under `digest`, verifying size (when given) and digest of the
   * file that is renamed into place. When the blob is already present the source is not read at
   * all. On a mismatch nothing is stored, the ingest's file is removed and a DigestMismatchError
   * is thrown. When the source fails midway its bytes are parked for a later `resumeFrom`.
   * Concurrent ingests of one digest each write their own file and all succeed if honest.
   */
  async ingest(expected: { digest: string; size?: number }, source: ByteSource, opts: IngestOptions = {}): Promise<void> {
    const what = opts.what ?? `blob ${expected.digest}`;
    const final = this.blobPath(expected.digest);
    if (existsSync(final)) return;
    const { algorithm, encoded } = parseDigest(expected.digest);
    // Refused before a byte is read or written.
    hasherFor(algorithm);
    const parked = this.parkedPath(expected.digest);
    const own = this.privatePath(`${algorithm}-${encoded}`);
    let fd: number;
    let start = 0;
    if (opts.resumeFrom !== undefined && opts.resumeFrom > 0) {
      start = opts.resumeFrom;
      // Renaming the parked partial to our own name is the claim: of two resumers only one
      // finds it there.
      try {
        renameSync(parked, own);
      } catch (e) {
        if (errnoCode(e) === "ENOENT") throw new ResumeLostError(expected.digest, start);
        throw e;
      }
      try {
        fd = openSync(own, constants.O_RDWR | constants.O_NOFOLLOW);
      } catch {
        // Not a file it can continue (a symlink or a directory): nothing to resume.
        rmSync(own, { recursive: true, force: true });
        throw new ResumeLostError(expected.digest, start);
      }
      const st = fstatSync(fd);
      if (!st.isFile() || st.size < start) {
        closeSync(fd);
        if (st.isFile()) this.park(own, parked);
        else rmSync(own, { force: true });
        throw new ResumeLostError(expected.digest, start);
      }
      // Bytes past the offset the source starts at would sit between the old and new parts.
      if (st.size > start) ftruncateSync(fd, start);
    } else {
      fd = openSync(own, "wx+", 0o600);
    }
    let stored = false;
    let broken = false;
    try {
      let written: number;
      try {
        written = start + (await copy(source, fd, start, expected.size === undefined ? undefined : expected.size - start));
      } catch (e) {
        broken = true;
        throw e;
      }
      if (expected.size !== undefined && written !== expected.size)
        throw new DigestMismatchError(expected.digest, "", expected.size, written, what);
      const got = await hashFile(fd, algorithm);
      if (got.digest !== expected.digest || (expected.size !== undefined && got.size !== expected.size))
        throw new DigestMismatchError(expected.digest, got.digest, expected.size, got.size, what);
      mkdirSync(join(this.blobsDir, algorithm), { recursive: true, mode: 0o700 });
      // A concurrent honest ingest may have renamed its copy first; replacing it with the same
      // verified bytes is atomic, so a reader sees one or the other.
      renameSync(own, final);
      stored = true;
      // A partial left by an earlier broken download is no longer needed.
      rmSync(parked, { force: true });
    } finally {
      closeSync(fd);
      // What a broken source delivered is checked, with the rest, by whoever resumes it.
      if (!stored && broken) this.park(own, parked);
      else if (!stored) rmSync(own, { force: true });
    }
  }

  /** Keeps a broken download's bytes under the digest's parked name, unless another is there. */
  private park(own: string, parked: string): void {
    try {
      if (statSync(own).size === 0) throw new Error("nothing to resume from");
      // link fails when something is already parked: that one stays, ours goes.
      linkSync(own, parked);
    } catch {
      // Nothing to resume from is only slower.
    }
    rmSync(own, { force: true });
  }

  /** Stores bytes whose digest is computed here (sha256); returns digest and size. */
  async put(bytes: Uint8Array | string): Promise<{ digest: string; size: number }> {
    const data = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
    const digest = sha256Digest(data);
    await this.ingest({ digest, size: data.length }, data);
    return { digest, size: data.length };
  }

  /**
   * Stores a stream whose digest is not known in advance (e.g. a docker-archive layer.tar),
   * computing its sha256 while writing; returns digest and size. As with ingest, the blob
   * becomes visible under its name only when complete.
   */
  async putStream(source: ByteSource, opts: { what?: string } = {}): Promise<{ digest: string; size: number }> {
    const partial = this.privatePath("unknown");
    const fd = openSync(partial, "wx+", 0o600);
    try {
      await copy(source, fd, 0);
      // The name is the digest of the file's bytes as they are on disk, like ingest's check.
      const { digest, size } = await hashFile(fd, "sha256");
      if (!this.has(digest)) {
        mkdirSync(join(this.blobsDir, "sha256"), { recursive: true, mode: 0o700 });
        renameSync(partial, this.blobPath(digest));
      }
      return { digest, size };
    } catch (e) {
      throw new Error(`${opts.what ?? "blob"}: ${e instanceof Error ? e.message : e}`, { cause: e });
    } finally {
      closeSync(fd);
      rmSync(partial, { force: true });
    }
  }

  /** Every stored blob's digest. */
  list(): string[] {
    const out: string[] = [];
    for (const alg of existsSync(this.blobsDir) ? readdirSync(this.blobsDir) : [])
      for (const hex of readdirSync(join(this.blobsDir, alg))) out.push(`${alg}:${hex}`);
    return out;
  }

  delete(digest: string): void {
    rmSync(this.blobPath(digest), { force: true });
  }
}
