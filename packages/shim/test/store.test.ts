import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore, DigestMismatchError, ResumeLostError, sha256Digest } from "../src/image/store.ts";

const dir = mkdtempSync(join(tmpdir(), "tsrun-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("content store", () => {
  const store = new ContentStore(join(dir, "content"));

  test("put stores by sha256 and reads back", async () => {
    const { digest, size } = await store.put("hello");
    expect(digest).toBe(sha256Digest("hello"));
    expect(size).toBe(5);
    expect(store.has(digest)).toBe(true);
    expect(new TextDecoder().decode(store.readBytes(digest))).toBe("hello");
    expect(store.list()).toContain(digest);
  });

  test("a digest mismatch stores nothing and names the blob", async () => {
    const digest = sha256Digest("good");
    const err = await store.ingest({ digest }, new TextEncoder().encode("evil"), { what: "layer 1 of x" }).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(String(err.message)).toContain("layer 1 of x");
    expect(store.has(digest)).toBe(false);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("a size mismatch is refused", async () => {
    const digest = sha256Digest("abc");
    const err = await store.ingest({ digest, size: 4 }, new TextEncoder().encode("abc")).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(String(err.message)).toContain("size mismatch");
  });

  test("resume appends to the partial ingest and verifies the whole", async () => {
    const body = "0123456789abcdef";
    const digest = sha256Digest(body);
    writeFileSync(join(store.ingestDir, `sha256-${digest.slice(7)}`), body.slice(0, 6));
    expect(store.ingestOffset(digest)).toBe(6);
    async function* rest() {
      yield new TextEncoder().encode(body.slice(6, 10));
      yield new TextEncoder().encode(body.slice(10));
    }
    await store.ingest({ digest, size: body.length }, rest(), { resumeFrom: 6 });
    expect(new TextDecoder().decode(store.readBytes(digest))).toBe(body);
    expect(store.ingestOffset(digest)).toBe(0);
  });

  test("a stream source is accepted and a present blob is not re-read", async () => {
    const digest = sha256Digest("stream");
    await store.ingest({ digest }, new Blob(["str", "eam"]).stream());
    expect(store.has(digest)).toBe(true);
    await store.ingest({ digest }, new Blob(["ignored"]).stream());
    expect(new TextDecoder().decode(store.readBytes(digest))).toBe("stream");
  });

  test("malformed and unverifiable digests are refused", () => {
    expect(() => store.blobPath("sha256:abc")).toThrow(/64/);
    expect(() => store.blobPath("md5:abc")).toThrow(/verify/);
    store.delete(sha256Digest("hello"));
    expect(existsSync(store.blobPath(sha256Digest("hello")))).toBe(false);
  });
});

describe("concurrent ingests (issue 13, item 5)", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);

  /** An async source that yields its chunks one by one, each only when `gates[i]` resolves. */
  async function* gated(parts: Uint8Array[], gates: Promise<unknown>[]): AsyncIterable<Uint8Array> {
    for (let i = 0; i < parts.length; i++) {
      await gates[i];
      yield parts[i]!;
    }
  }

  test("an attacker writing other bytes around an honest ingest of the same digest cannot get them stored", async () => {
    const store = new ContentStore(join(dir, "attack"));
    const honest = "the honest layer's bytes, all of them".repeat(50);
    const evil = "X".repeat(honest.length);
    const digest = sha256Digest(honest);
    const half = honest.length >> 1;

    let honestDone!: () => void;
    const afterHonest = new Promise<void>((r) => (honestDone = r));
    // The attacker starts first and delivers its second half only once the honest ingest is over.
    const attacker = store
      .ingest({ digest, size: evil.length }, gated([enc(evil.slice(0, half)), enc(evil.slice(half))], [Promise.resolve(), afterHonest]))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    await Bun.sleep(5);
    await store.ingest(
      { digest, size: honest.length },
      gated([enc(honest.slice(0, 100)), enc(honest.slice(100))], [Bun.sleep(1), Bun.sleep(2)]),
    );
    honestDone();
    const err = await attacker;

    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(String((err as Error).message)).toContain("digest mismatch");
    expect(dec(store.readBytes(digest))).toBe(honest);
    expect(dec(readFileSync(store.blobPath(digest)))).toBe(honest);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("an attacker who finishes first is refused and leaves nothing; the honest ingest after it succeeds", async () => {
    const store = new ContentStore(join(dir, "attack-first"));
    const honest = "honest".repeat(100);
    const digest = sha256Digest(honest);
    let honestStarted!: () => void;
    const started = new Promise<void>((r) => (honestStarted = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const honestRun = store.ingest(
      { digest, size: honest.length },
      (async function* () {
        yield enc(honest.slice(0, 10));
        honestStarted();
        await released;
        yield enc(honest.slice(10));
      })(),
    );
    await started;
    const err = await store.ingest({ digest, size: honest.length }, enc("h".repeat(honest.length))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(store.has(digest)).toBe(false);
    release();
    await honestRun;
    expect(dec(store.readBytes(digest))).toBe(honest);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("N concurrent honest ingests of one digest all succeed and leave no temporary files", async () => {
    const store = new ContentStore(join(dir, "honest"));
    const body = "0123456789".repeat(1000);
    const digest = sha256Digest(body);
    const parts = [body.slice(0, 3000), body.slice(3000, 7000), body.slice(7000)].map(enc);
    const runs = Array.from({ length: 8 }, (_, i) =>
      store.ingest({ digest, size: body.length }, gated(parts, [Bun.sleep(i % 3), Bun.sleep((i * 7) % 5), Bun.sleep(i % 2)])),
    );
    const results = await Promise.allSettled(runs);
    expect(results.map((r) => r.status)).toEqual(Array(8).fill("fulfilled"));
    expect(dec(store.readBytes(digest))).toBe(body);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("each ingest writes its own 0600 file, created exclusively, in the 0700 ingest dir", async () => {
    const store = new ContentStore(join(dir, "modes"));
    expect(statSync(store.ingestDir).mode & 0o777).toBe(0o700);
    const body = "mode check";
    const digest = sha256Digest(body);
    let seen: string[] = [];
    const modes: number[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const src = (async function* () {
      yield enc(body.slice(0, 4));
      await released;
      yield enc(body.slice(4));
    })();
    const a = store.ingest({ digest, size: body.length }, src);
    const b = store.ingest({ digest, size: body.length }, gated([enc(body.slice(0, 4)), enc(body.slice(4))], [released, Promise.resolve()]));
    await Bun.sleep(5);
    seen = readdirSync(store.ingestDir);
    for (const f of seen) modes.push(statSync(join(store.ingestDir, f)).mode & 0o777);
    release();
    await Promise.all([a, b]);
    expect(seen.length).toBe(2);
    expect(new Set(seen).size).toBe(2);
    expect(modes).toEqual([0o600, 0o600]);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("a partial download is resumed by one ingest only; a second resume of the same partial is told to start over", async () => {
    const store = new ContentStore(join(dir, "resume-race"));
    const body = "abcdefghijklmnopqrstuvwxyz".repeat(40);
    const digest = sha256Digest(body);
    writeFileSync(join(store.ingestDir, `sha256-${digest.slice(7)}`), body.slice(0, 100));
    expect(store.ingestOffset(digest)).toBe(100);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const first = store.ingest({ digest, size: body.length }, gated([enc(body.slice(100))], [released]), { resumeFrom: 100 });
    await Bun.sleep(2);
    const second = await store.ingest({ digest, size: body.length }, enc(body.slice(100)), { resumeFrom: 100 }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(ResumeLostError);
    release();
    await first;
    expect(dec(store.readBytes(digest))).toBe(body);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("a broken stream keeps its bytes for a later resume; a resume onto wrong bytes is refused and discarded", async () => {
    const store = new ContentStore(join(dir, "resume-bad"));
    const body = "0123456789".repeat(20);
    const digest = sha256Digest(body);
    const err = await store
      .ingest(
        { digest, size: body.length },
        (async function* () {
          yield enc("Y".repeat(50));
          throw new Error("connection reset");
        })(),
      )
      .catch((e: unknown) => e);
    expect(String((err as Error).message)).toBe("connection reset");
    expect(store.ingestOffset(digest)).toBe(50);
    const bad = await store.ingest({ digest, size: body.length }, enc(body.slice(50)), { resumeFrom: 50 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(DigestMismatchError);
    expect(store.has(digest)).toBe(false);
    expect(readdirSync(store.ingestDir)).toEqual([]);
  });

  test("a stored manifest or config corrupted on disk is refused on read, naming its digest", async () => {
    const store = new ContentStore(join(dir, "corrupt"));
    const { digest } = await store.put(JSON.stringify({ schemaVersion: 2, layers: [] }));
    expect(store.readJson(digest)).toEqual({ schemaVersion: 2, layers: [] });
    writeFileSync(store.blobPath(digest), JSON.stringify({ schemaVersion: 2, layers: ["evil"] }));
    for (const read of [() => store.readJson(digest), () => store.readBytes(digest)]) {
      let err: unknown;
      try {
        read();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect(String((err as Error).message)).toContain(digest);
      expect(String((err as Error).message)).toContain("corrupt");
    }
  });
});
