// The content store: every blob of every image, kept once, named by its digest, and never visible
// under that name before its bytes were checked against it. Writers stream into
// `ingest/<alg>-<hex>` (so an interrupted fetch can resume where it stopped) and rename into
// `blobs/<alg>/<hex>` only after size and digest match; a reader therefore never sees a half
// blob, and a crash leaves at most a partial file in ingest/.
import { createReadStream, existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
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

export type ByteSource = Uint8Array | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

export interface IngestOptions {
  /** What the blob is, for error messages (e.g. "layer 2 of docker.io/library/busybox:latest"). */
  what?: string;
  /**
   * The source continues the partial ingest already on disk (from `ingestOffset`), e.g. an HTTP
   * Range response. Without it any partial file is discarded and the source is read from byte 0.
   */
  resume?: boolean;
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
 * Writes `source` to fd and through `hasher`; returns the bytes written. Stops once more than
 * `limit` bytes came (the caller reports the size mismatch), so a lying source cannot fill the disk.
 */
async function copyHashed(source: ByteSource, fd: number, hasher: Bun.CryptoHasher, limit?: number): Promise<number> {
  let n = 0;
  for await (const c of chunks(source)) {
    hasher.update(c);
    let off = 0;
    while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    n += c.length;
    if (limit !== undefined && n > limit) break;
  }
  return n;
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
    }
  }

  /** Where the blob with this digest lives (whether or not it is there). Throws on a malformed digest. */
  blobPath(digest: string): string {
    const d = parseDigest(digest);
    if (!d.registered) throw new Error(`digest ${digest}: algorithm "${d.algorithm}" is not one tsrun can verify (sha256, sha512)`);
    return join(this.blobsDir, d.algorithm, d.encoded);
  }

  private ingestPath(digest: string): string {
    const d = parseDigest(digest);
    return join(this.ingestDir, `${d.algorithm}-${d.encoded}`);
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
      return statSync(this.ingestPath(digest)).size;
    } catch {
      return 0;
    }
  }

  readBytes(digest: string): Uint8Array {
    return readFileSync(this.blobPath(digest));
  }

  readJson(digest: string): unknown {
    return JSON.parse(readFileSync(this.blobPath(digest), "utf8"));
  }

  /** A stream of a stored blob's bytes. */
  openStream(digest: string): ReadableStream<Uint8Array> {
    return Bun.file(this.blobPath(digest)).stream();
  }

  /**
   * Stores the bytes of `source` under `digest`, verifying size (when given) and digest. When the
   * blob is already present the source is not read at all. On a mismatch nothing is stored and
   * a DigestMismatchError is thrown.
   */
  async ingest(expected: { digest: string; size?: number }, source: ByteSource, opts: IngestOptions = {}): Promise<void> {
    const what = opts.what ?? `blob ${expected.digest}`;
    const final = this.blobPath(expected.digest);
    if (existsSync(final)) return;
    const { algorithm } = parseDigest(expected.digest);
    const hasher = hasherFor(algorithm);
    const partial = this.ingestPath(expected.digest);
    let written = 0;
    let fd: number;
    if (opts.resume && existsSync(partial)) {
      // Re-hash what is already on disk, then append.
      for await (const c of createReadStream(partial)) {
        hasher.update(c as Buffer);
        written += (c as Buffer).length;
      }
      fd = openSync(partial, "a", 0o600);
    } else {
      fd = openSync(partial, "w", 0o600);
    }
    try {
      written += await copyHashed(source, fd, hasher, expected.size === undefined ? undefined : expected.size - written);
    } finally {
      closeSync(fd);
    }
    const actual = `${algorithm}:${hasher.digest("hex")}`;
    if (actual !== expected.digest || (expected.size !== undefined && written !== expected.size)) {
      rmSync(partial, { force: true });
      throw new DigestMismatchError(expected.digest, actual, expected.size, written, what);
    }
    mkdirSync(join(this.blobsDir, algorithm), { recursive: true, mode: 0o700 });
    renameSync(partial, final);
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
    const hasher = new Bun.CryptoHasher("sha256");
    const partial = join(this.ingestDir, `unknown-${process.pid}-${crypto.randomUUID()}`);
    let size = 0;
    const fd = openSync(partial, "w", 0o600);
    try {
      try {
        size = await copyHashed(source, fd, hasher);
      } finally {
        closeSync(fd);
      }
      const digest = `sha256:${hasher.digest("hex")}`;
      if (!this.has(digest)) {
        mkdirSync(join(this.blobsDir, "sha256"), { recursive: true, mode: 0o700 });
        renameSync(partial, this.blobPath(digest));
      }
      return { digest, size };
    } catch (e) {
      throw new Error(`${opts.what ?? "blob"}: ${e instanceof Error ? e.message : e}`, { cause: e });
    } finally {
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
