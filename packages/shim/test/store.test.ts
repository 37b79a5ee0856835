import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore, DigestMismatchError, sha256Digest } from "../src/image/store.ts";

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
    await store.ingest({ digest, size: body.length }, rest(), { resume: true });
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
