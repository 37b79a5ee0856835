// Image-spec documents: every fixture under fixtures/image goes through validateImageDocument.
// good/*.json must have no problem at all; bad/*.json must have problems at exactly the JSON
// pointers listed in "expect" (each pointer at least once, no other pointer).
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  imageSemanticProblems,
  layerFormat,
  mediaTypes,
  parseDigest,
  validateImageDocument,
  type ImageDocumentKind,
} from "../src/image.ts";

const fixtures = join(import.meta.dir, "fixtures/image");
const kinds: readonly ImageDocumentKind[] = ["descriptor", "imageIndex", "imageManifest", "imageConfig", "ociLayout"];

interface Fixture {
  kind: ImageDocumentKind;
  expect?: string[];
  doc: unknown;
}

function load(dir: "good" | "bad"): [string, Fixture][] {
  return readdirSync(join(fixtures, dir))
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => [f, JSON.parse(readFileSync(join(fixtures, dir, f), "utf8")) as Fixture]);
}

const good = load("good");
const bad = load("bad");

describe("image fixtures", () => {
  test("every document kind has good and bad fixtures", () => {
    for (const k of kinds) {
      expect(good.some(([, f]) => f.kind === k)).toBe(true);
      expect(bad.some(([, f]) => f.kind === k)).toBe(true);
    }
    for (const [name, f] of [...good, ...bad]) expect({ name, kind: kinds.includes(f.kind) }).toEqual({ name, kind: true });
    for (const [name, f] of bad) expect({ name, expect: Array.isArray(f.expect) && f.expect.length > 0 }).toEqual({ name, expect: true });
  });

  test.each(good)("good/%s has no problem", (_name, f) => {
    const r = validateImageDocument(f.kind, f.doc);
    expect(r.ok ? [] : r.problems).toEqual([]);
    if (r.ok) expect(r.value).toBe(f.doc as never);
  });

  test.each(bad)("bad/%s has problems exactly at the expected pointers", (_name, f) => {
    const r = validateImageDocument(f.kind, f.doc);
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems;
    const pointers = [...new Set(problems.map((p) => p.pointer))].sort();
    expect({ pointers, problems }).toMatchObject({ pointers: [...new Set(f.expect)].sort() });
    for (const p of problems) {
      expect(typeof p.message).toBe("string");
      expect(p.message.length).toBeGreaterThan(0);
    }
  });
});

describe("problem wording", () => {
  const sha = (c: string) => `sha256:${c.repeat(64)}`;

  test("a digest of the wrong length gets one clear problem instead of the schema's pattern", () => {
    const r = validateImageDocument("descriptor", { mediaType: mediaTypes.imageManifest, digest: sha("a").slice(0, -2), size: 1 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]!.pointer).toBe("/digest");
    expect(r.problems[0]!.message).toContain("64 lowercase hex");
    expect(r.problems[0]!.message).toContain("62 characters");
  });

  test("an uppercase sha256 digest is told how to fix it", () => {
    const r = validateImageDocument("descriptor", { mediaType: mediaTypes.imageManifest, digest: sha("A"), size: 1 });
    expect(r.ok ? undefined : r.problems[0]?.hint).toBe(`write "${sha("a")}"`);
  });

  test("rootfs.type gets the image-spec explanation", () => {
    const r = validateImageDocument("imageConfig", { architecture: "amd64", os: "linux", rootfs: { type: "overlay", diff_ids: [] } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ pointer: "/rootfs/type", message: 'must be "layers", found "overlay"' });
  });

  test("an unknown layer media type in an image has a hint", () => {
    const layer = { mediaType: "application/x-squashfs", digest: sha("b"), size: 9 };
    const doc = { schemaVersion: 2, config: { mediaType: mediaTypes.imageConfig, digest: sha("c"), size: 2 }, layers: [layer] };
    const r = validateImageDocument("imageManifest", doc);
    expect(r.ok ? [] : r.problems.map((p) => [p.pointer, typeof p.hint])).toEqual([["/layers/0/mediaType", "string"]]);
    // The same layer is fine in an artifact.
    expect(validateImageDocument("imageManifest", { ...doc, artifactType: "application/vnd.example.fs.v1" }).ok).toBe(true);
  });

  test("uname architecture names suggest the GOARCH name and arm variant", () => {
    const ps = imageSemanticProblems("descriptor", {
      mediaType: mediaTypes.imageManifest, digest: sha("d"), size: 1, platform: { architecture: "armhf", os: "linux" },
    });
    expect(ps).toEqual([expect.objectContaining({ pointer: "/platform/architecture", hint: 'use "arm" with variant "v7"' })]);
  });

  test("unregistered digest algorithms pass unless registered ones are required", () => {
    const doc = { mediaType: "application/octet-stream", digest: "blake3:abcdef0123", size: 3 };
    expect(validateImageDocument("descriptor", doc).ok).toBe(true);
    const r = validateImageDocument("descriptor", doc, { requireRegisteredDigests: true });
    expect(r.ok ? [] : r.problems.map((p) => p.pointer)).toEqual(["/digest"]);
  });

  test("schema problems are not repeated by semantic checks", () => {
    const r = validateImageDocument("imageManifest", { schemaVersion: 2, config: { mediaType: mediaTypes.empty, digest: "nope", size: 2 }, layers: [] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.filter((p) => p.pointer === "/config/digest")).toHaveLength(1);
  });
});

describe("parseDigest", () => {
  const hex64 = "0123456789abcdef".repeat(4);
  const hex128 = hex64 + hex64;

  test("splits registered digests", () => {
    expect(parseDigest(`sha256:${hex64}`)).toEqual({ algorithm: "sha256", encoded: hex64, registered: true });
    expect(parseDigest(`sha512:${hex128}`)).toEqual({ algorithm: "sha512", encoded: hex128, registered: true });
  });

  test("accepts unregistered algorithms that fit the grammar", () => {
    expect(parseDigest("multihash+base58:QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")).toEqual({
      algorithm: "multihash+base58",
      encoded: "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
      registered: false,
    });
    expect(parseDigest("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564").registered).toBe(false);
    expect(parseDigest("a.b_c-d:x=").algorithm).toBe("a.b_c-d");
  });

  test.each([
    ["", /no ":"/],
    [hex64, /no ":".*sha256:0123/],
    [`:${hex64}`, /algorithm "" must be lowercase/],
    [`SHA256:${hex64}`, /algorithm "SHA256".*write "sha256"/],
    [`sha256+:${hex64}`, /algorithm "sha256\+"/],
    ["sha256:", /encoded part is empty/],
    [`sha256:${hex64.slice(1)}`, /exactly 64 lowercase hex.*63 characters/],
    [`sha256:${hex64.toUpperCase()}`, /uppercase letters.*write "sha256:0123/],
    [`sha256:${"g".repeat(64)}`, /not hexadecimal/],
    [`sha512:${hex64}`, /exactly 128 lowercase hex/],
    ["foo:bar baz", /may only contain/],
    [`sha256:${hex64}:x`, /may only contain/],
  ])("rejects %p", (s, message) => {
    expect(() => parseDigest(s)).toThrow(message);
  });

  test("rejects non-strings", () => {
    expect(() => parseDigest(42 as unknown as string)).toThrow(TypeError);
    expect(() => parseDigest(null as unknown as string)).toThrow(/found null/);
  });
});

describe("mediaTypes and layerFormat", () => {
  test("OCI and Docker constants", () => {
    expect(mediaTypes.imageManifest).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(mediaTypes.dockerManifestList).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
    expect(mediaTypes.dockerConfig).toBe("application/vnd.docker.container.image.v1+json");
  });

  test("layer formats", () => {
    expect(layerFormat(mediaTypes.layerZstd)).toEqual({ compression: "zstd", nondistributable: false });
    expect(layerFormat(mediaTypes.dockerForeignLayerGzip)).toEqual({ compression: "gzip", nondistributable: true });
    expect(layerFormat(mediaTypes.layer)).toEqual({ compression: "none", nondistributable: false });
    expect(layerFormat(mediaTypes.imageConfig)).toBeUndefined();
  });
});

describe("refined schema messages", () => {
  const base = { digest: `sha256:${"e".repeat(64)}`, size: 1 };

  test("a media type with parameters is told to drop them", () => {
    const r = validateImageDocument("descriptor", { ...base, mediaType: "application/json; charset=utf-8" });
    expect(r.ok ? [] : r.problems).toEqual([
      expect.objectContaining({ pointer: "/mediaType", hint: 'drop the parameters: "application/json"' }),
    ]);
  });

  test("URL-safe base64 in data is named", () => {
    const r = validateImageDocument("descriptor", { ...base, mediaType: "text/plain", data: "-_8=" });
    expect(r.ok ? [] : r.problems).toEqual([expect.objectContaining({ pointer: "/data", hint: "use + and / rather than the URL-safe - and _" })]);
  });

  test("imageSemanticProblems returns plain problems", () => {
    const ps = imageSemanticProblems("ociLayout", { imageLayoutVersion: "2.0.0" });
    expect(ps).toEqual([{ pointer: "/imageLayoutVersion", message: 'image layout version "2.0.0" is not supported', hint: 'this implementation reads layout version "1.0.0"' }]);
    expect(imageSemanticProblems("descriptor", { ...base, mediaType: "nope" })[0]).not.toHaveProperty("refines");
  });
});
