// OCI image-spec documents (descriptor, image index, image manifest, image config, oci-layout):
// the schema check plus the rules a JSON Schema cannot state well: registered digest forms,
// media types that fit where they are used, embedded data that matches its descriptor, platform
// names a runtime can match, and the fixed rootfs type and layout version. Runs on documents that
// may have failed the schema, so every value's type is looked at before it is trusted.
import { createHash } from "node:crypto";
import type { Descriptor, ImageConfig, ImageIndex, ImageLayout, ImageManifest } from "../generated/types.ts";
import type { Validated } from "./config.ts";
import { pointerToken, type Problem } from "./problem.ts";
import { descriptor } from "../generated/validators/descriptor.js";
import { imageIndex } from "../generated/validators/imageIndex.js";
import { imageManifest } from "../generated/validators/imageManifest.js";
import { imageConfig } from "../generated/validators/imageConfig.js";
import { ociLayout } from "../generated/validators/ociLayout.js";
import type { Validator } from "../generated/validator.ts";
import { problemsFrom } from "./schema.ts";

const IMAGE_VALIDATORS: Record<ImageDocumentKind, Validator> = { descriptor, imageIndex, imageManifest, imageConfig, ociLayout };

/** Media types of the OCI image-spec v1.1 and of Docker's image manifest v2 schema 2. */
export const mediaTypes = {
  descriptor: "application/vnd.oci.descriptor.v1+json",
  layoutHeader: "application/vnd.oci.layout.header.v1+json",
  imageIndex: "application/vnd.oci.image.index.v1+json",
  imageManifest: "application/vnd.oci.image.manifest.v1+json",
  imageConfig: "application/vnd.oci.image.config.v1+json",
  empty: "application/vnd.oci.empty.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  /** Deprecated by image-spec 1.1, still to be read. */
  layerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  /** Deprecated by image-spec 1.1, still to be read. */
  layerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  /** Deprecated by image-spec 1.1, still to be read. */
  layerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export type KnownMediaType = (typeof mediaTypes)[keyof typeof mediaTypes];

/** How a layer blob of a known media type is stored. */
export interface LayerFormat {
  compression: "none" | "gzip" | "zstd";
  /** Non-distributable (OCI) or foreign (Docker): registries are not expected to hold the blob. */
  nondistributable: boolean;
}

const LAYER_FORMATS: ReadonlyMap<string, LayerFormat> = new Map<string, LayerFormat>([
  [mediaTypes.layer, { compression: "none", nondistributable: false }],
  [mediaTypes.layerGzip, { compression: "gzip", nondistributable: false }],
  [mediaTypes.layerZstd, { compression: "zstd", nondistributable: false }],
  [mediaTypes.layerNondistributable, { compression: "none", nondistributable: true }],
  [mediaTypes.layerNondistributableGzip, { compression: "gzip", nondistributable: true }],
  [mediaTypes.layerNondistributableZstd, { compression: "zstd", nondistributable: true }],
  [mediaTypes.dockerLayer, { compression: "none", nondistributable: false }],
  [mediaTypes.dockerLayerGzip, { compression: "gzip", nondistributable: false }],
  [mediaTypes.dockerLayerZstd, { compression: "zstd", nondistributable: false }],
  [mediaTypes.dockerForeignLayer, { compression: "none", nondistributable: true }],
  [mediaTypes.dockerForeignLayerGzip, { compression: "gzip", nondistributable: true }],
]);

/** The storage format of a layer media type this package knows, else undefined. */
export function layerFormat(mediaType: string): LayerFormat | undefined {
  return LAYER_FORMATS.get(mediaType);
}

const MANIFEST_TYPES: readonly string[] = [mediaTypes.imageManifest, mediaTypes.dockerManifest];
const INDEX_TYPES: readonly string[] = [mediaTypes.imageIndex, mediaTypes.dockerManifestList];
const IMAGE_CONFIG_TYPES: readonly string[] = [mediaTypes.imageConfig, mediaTypes.dockerConfig];
/** Known types that can never be the target of an index entry or the config of a manifest. */
const NOT_A_MANIFEST: readonly string[] = [
  ...LAYER_FORMATS.keys(),
  ...IMAGE_CONFIG_TYPES,
  mediaTypes.empty,
  mediaTypes.descriptor,
  mediaTypes.layoutHeader,
];

/** Digest algorithms registered by the image-spec, with the exact form of their encoded part. */
export const registeredDigestAlgorithms = {
  sha256: { hexLength: 64 },
  sha512: { hexLength: 128 },
} as const;

export type RegisteredDigestAlgorithm = keyof typeof registeredDigestAlgorithms;

export interface ParsedDigest {
  algorithm: string;
  encoded: string;
  /** The algorithm is one the image-spec registers (sha256, sha512), so content can be verified. */
  registered: boolean;
}

const ALGORITHM = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/;
const ENCODED = /^[a-zA-Z0-9=_-]+$/;

function isRegistered(algorithm: string): algorithm is RegisteredDigestAlgorithm {
  return Object.hasOwn(registeredDigestAlgorithms, algorithm);
}

/** Why `s` is not a digest, or undefined when it is one (any algorithm that fits the grammar). */
function digestError(s: string): { message: string; hint?: string } | undefined {
  const colon = s.indexOf(":");
  if (colon < 0)
    return {
      message: `${JSON.stringify(s)} is not a digest: it has no ":" between algorithm and encoded value`,
      hint: /^[a-f0-9]{64}$/.test(s) ? `prefix the algorithm: "sha256:${s}"` : `a digest looks like "sha256:<64 lowercase hex characters>"`,
    };
  const algorithm = s.slice(0, colon);
  const encoded = s.slice(colon + 1);
  if (!ALGORITHM.test(algorithm)) {
    const lower = algorithm.toLowerCase();
    return {
      message: `${JSON.stringify(s)} is not a digest: the algorithm ${JSON.stringify(algorithm)} must be lowercase letters and digits, optionally joined by one of + . _ -`,
      ...(isRegistered(lower) ? { hint: `write "${lower}"` } : {}),
    };
  }
  if (!ENCODED.test(encoded))
    return {
      message: `${JSON.stringify(s)} is not a digest: the encoded part ${encoded === "" ? "is empty" : "may only contain letters, digits, =, _ and -"}`,
    };
  if (isRegistered(algorithm)) {
    const want = registeredDigestAlgorithms[algorithm].hexLength;
    if (encoded.length !== want || !/^[a-f0-9]+$/.test(encoded)) {
      const problems: string[] = [];
      if (encoded.length !== want) problems.push(`has ${encoded.length} characters`);
      if (/[A-F]/.test(encoded)) problems.push("has uppercase letters");
      if (/[^a-fA-F0-9]/.test(encoded)) problems.push("is not hexadecimal");
      return {
        message: `a ${algorithm} digest needs exactly ${want} lowercase hex characters after "${algorithm}:", this one ${problems.join(" and ")}`,
        ...(encoded.length === want && /^[a-fA-F0-9]+$/.test(encoded) ? { hint: `write "${algorithm}:${encoded.toLowerCase()}"` } : {}),
      };
    }
  }
  return undefined;
}

/**
 * Splits a digest into algorithm and encoded value. Throws, saying what is wrong, when the string
 * does not follow the digest grammar or a registered algorithm's exact form (sha256: 64, sha512:
 * 128 lowercase hex characters). Unregistered algorithms that fit the grammar are accepted, as
 * the image-spec asks; check `registered` before trying to verify content with one.
 */
export function parseDigest(s: string): ParsedDigest {
  if (typeof s !== "string") throw new TypeError(`a digest must be a string, found ${s === null ? "null" : typeof s}`);
  const err = digestError(s);
  if (err) throw new Error(err.hint ? `${err.message} (${err.hint})` : err.message);
  const colon = s.indexOf(":");
  const algorithm = s.slice(0, colon);
  return { algorithm, encoded: s.slice(colon + 1), registered: isRegistered(algorithm) };
}

/** Document kinds of the image-spec, and the type each validates to. */
export interface ImageDocumentTypes {
  descriptor: Descriptor;
  imageIndex: ImageIndex;
  imageManifest: ImageManifest;
  imageConfig: ImageConfig;
  ociLayout: ImageLayout;
}

export type ImageDocumentKind = keyof ImageDocumentTypes;

export const IMAGE_LAYOUT_VERSION = "1.0.0";

export interface ImageValidationOptions {
  /**
   * Refuse digests whose algorithm the image-spec does not register (only sha256 and sha512
   * remain). Off by default: the spec asks implementations to let such digests pass validation.
   */
  requireRegisteredDigests?: boolean;
}

/**
 * Validates an image-spec document of `kind`: the schema first, then the semantic rules. Every
 * problem is returned at once. A semantic finding that explains a schema error better (a digest
 * of the wrong length, a wrong rootfs type) takes that error's place.
 */
export function validateImageDocument<K extends ImageDocumentKind>(
  kind: K,
  value: unknown,
  opts: ImageValidationOptions = {},
): Validated<ImageDocumentTypes[K]> {
  const problems = merge(problemsFrom(IMAGE_VALIDATORS[kind], value), findings(kind, value, opts));
  if (problems.length === 0) return { ok: true, value: value as ImageDocumentTypes[K] };
  return { ok: false, problems };
}

/** A semantic problem; `refines` ones replace schema problems reported at the same pointer. */
interface Finding extends Problem {
  refines?: boolean;
}

const strip = ({ refines: _, ...p }: Finding): Problem => p;

function merge(schema: Problem[], semantic: Finding[]): Problem[] {
  const refined = new Set(semantic.filter((f) => f.refines).map((f) => f.pointer));
  const schemaPointers = new Set(schema.map((p) => p.pointer));
  const out: Problem[] = [];
  const replaced = new Set<string>();
  for (const p of schema) {
    if (!refined.has(p.pointer)) out.push(p);
    else if (!replaced.has(p.pointer)) {
      // The better explanation takes the place of the first schema problem at that pointer.
      replaced.add(p.pointer);
      for (const f of semantic) if (f.refines && f.pointer === p.pointer) out.push(strip(f));
    }
  }
  for (const f of semantic) {
    if (f.refines && replaced.has(f.pointer)) continue;
    if (!f.refines && schemaPointers.has(f.pointer) && !replaced.has(f.pointer)) continue;
    out.push(strip(f));
  }
  return out;
}

type Obj = Record<string, unknown>;
type Add = (pointer: string, message: string, hint?: string, refines?: boolean) => void;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): v is string => typeof v === "string";
const ptr = (base: string, ...tokens: (string | number)[]) => base + tokens.map((t) => `/${pointerToken(t)}`).join("");

/** The semantic problems alone (no schema check) of an image-spec document of `kind`. */
export function imageSemanticProblems(kind: ImageDocumentKind, value: unknown, opts: ImageValidationOptions = {}): Problem[] {
  return findings(kind, value, opts).map(strip);
}

function findings(kind: ImageDocumentKind, value: unknown, opts: ImageValidationOptions): Finding[] {
  const out: Finding[] = [];
  if (!isObj(value)) return out;
  const add: Add = (pointer, message, hint, refines) => {
    const f: Finding = { pointer, message };
    if (hint !== undefined) f.hint = hint;
    if (refines) f.refines = true;
    out.push(f);
  };
  const c = new Checker(add, opts);
  switch (kind) {
    case "descriptor":
      c.descriptor("", value);
      break;
    case "imageIndex":
      c.index(value);
      break;
    case "imageManifest":
      c.manifest(value);
      break;
    case "imageConfig":
      c.config(value);
      break;
    case "ociLayout":
      c.layout(value);
      break;
  }
  return out;
}

const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/** GOARCH / GOOS spellings for names that other tools (uname, Debian, Rust) use. */
const ARCH_ALIASES: Record<string, string> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  x64: "amd64",
  aarch64: "arm64",
  armhf: "arm",
  armel: "arm",
  armv5l: "arm",
  armv6l: "arm",
  armv7l: "arm",
  armv7: "arm",
  armv6: "arm",
  i386: "386",
  i486: "386",
  i586: "386",
  i686: "386",
  x86: "386",
  ppc64el: "ppc64le",
  powerpc64le: "ppc64le",
  powerpc64: "ppc64",
  riscv: "riscv64",
  loongarch64: "loong64",
};
const OS_ALIASES: Record<string, string> = {
  macos: "darwin",
  osx: "darwin",
  win: "windows",
  win32: "windows",
  win64: "windows",
};
/** The arm variant that the non-Go spellings above stand for. */
const ARM_VARIANTS: Record<string, string> = { armhf: "v7", armel: "v5", armv5l: "v5", armv6l: "v6", armv6: "v6", armv7l: "v7", armv7: "v7" };

class Checker {
  constructor(
    private readonly add: Add,
    private readonly opts: ImageValidationOptions,
  ) {}

  digest(pointer: string, v: unknown): void {
    if (!str(v)) return;
    const err = digestError(v);
    if (err) return this.add(pointer, err.message, err.hint, true);
    const algorithm = v.slice(0, v.indexOf(":"));
    if (this.opts.requireRegisteredDigests && !isRegistered(algorithm))
      this.add(pointer, `digest algorithm ${JSON.stringify(algorithm)} is not registered by the image-spec`, `use sha256 (or sha512)`);
  }

  mediaType(pointer: string, v: unknown): void {
    if (!str(v) || MEDIA_TYPE.test(v)) return;
    const params = v.indexOf(";");
    this.add(
      pointer,
      `${JSON.stringify(v)} is not a media type: RFC 6838 wants type/subtype, each starting with a letter or digit and using only letters, digits and ! # $ & ^ _ . + -`,
      params > 0 && MEDIA_TYPE.test(v.slice(0, params).trim()) ? `drop the parameters: "${v.slice(0, params).trim()}"` : undefined,
      true,
    );
  }

  dateTime(pointer: string, v: unknown): void {
    if (!str(v)) return;
    const m = DATE_TIME.exec(v);
    if (!m) return this.add(pointer, `${JSON.stringify(v)} is not an RFC 3339 date-time`, `e.g. "2024-05-01T12:30:00Z"`, true);
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const days = [31, year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    const offH = m[7] === undefined ? 0 : Number(m[7]);
    const offM = m[8] === undefined ? 0 : Number(m[8]);
    if (month < 1 || month > 12 || day < 1 || day > days[month - 1]! || hour > 23 || minute > 59 || second > 60 || offH > 23 || offM > 59)
      this.add(pointer, `${JSON.stringify(v)} is not a real date and time`, undefined, true);
  }

  annotations(pointer: string, v: unknown): void {
    if (!isObj(v)) return;
    const created = v["org.opencontainers.image.created"];
    if (created !== undefined) this.dateTime(ptr(pointer, "org.opencontainers.image.created"), created);
  }

  platform(pointer: string, p: Obj): void {
    const arch = p.architecture;
    const os = p.os;
    if (str(arch)) {
      const alias = ARCH_ALIASES[arch.toLowerCase()];
      if (arch === "") this.add(ptr(pointer, "architecture"), "must not be empty", `a GOARCH value such as "amd64" or "arm64"`);
      else if (alias !== undefined) {
        const armVariant = ARM_VARIANTS[arch.toLowerCase()];
        const variant = armVariant !== undefined ? ` with variant "${armVariant}"` : "";
        this.add(ptr(pointer, "architecture"), `${JSON.stringify(arch)} is not a Go GOARCH name, so no runtime will match it`, `use "${alias}"${variant}`);
      } else if (arch !== arch.toLowerCase())
        this.add(ptr(pointer, "architecture"), `${JSON.stringify(arch)} is not a Go GOARCH name: they are lowercase`, `use "${arch.toLowerCase()}"`);
    }
    if (str(os)) {
      const alias = OS_ALIASES[os.toLowerCase()];
      if (os === "") this.add(ptr(pointer, "os"), "must not be empty", `a GOOS value such as "linux" or "windows"`);
      else if (alias !== undefined) this.add(ptr(pointer, "os"), `${JSON.stringify(os)} is not a Go GOOS name, so no runtime will match it`, `use "${alias}"`);
      else if (os !== os.toLowerCase()) this.add(ptr(pointer, "os"), `${JSON.stringify(os)} is not a Go GOOS name: they are lowercase`, `use "${os.toLowerCase()}"`);
    }
    const variant = p.variant;
    if (str(variant)) {
      if (variant === "") this.add(ptr(pointer, "variant"), "must not be empty when present", "leave variant out instead");
      else if (/^[0-9]/.test(variant) && (arch === "arm" || arch === "arm64" || arch === "amd64"))
        this.add(ptr(pointer, "variant"), `CPU variants of ${arch} are written with a leading "v"`, `use "v${variant}"`);
      else if (variant !== variant.toLowerCase()) this.add(ptr(pointer, "variant"), `${JSON.stringify(variant)}: variants are lowercase`, `use "${variant.toLowerCase()}"`);
    }
  }

  descriptor(pointer: string, d: Obj): void {
    this.mediaType(ptr(pointer, "mediaType"), d.mediaType);
    this.mediaType(ptr(pointer, "artifactType"), d.artifactType);
    this.digest(ptr(pointer, "digest"), d.digest);
    arr(d.urls).forEach((u, i) => {
      if (str(u) && !URI.test(u))
        this.add(ptr(pointer, "urls", i), `${JSON.stringify(u)} is not an absolute URI`, /\s/.test(u) ? "percent-encode spaces and other characters URIs do not allow" : `give a full URL such as "https://example.com/blob"`, true);
    });
    this.annotations(ptr(pointer, "annotations"), d.annotations);
    if (isObj(d.platform)) this.platform(ptr(pointer, "platform"), d.platform);
    const data = d.data;
    if (str(data) && !BASE64.test(data))
      this.add(ptr(pointer, "data"), "is not standard base64 (RFC 4648 section 4, with = padding)", /[-_]/.test(data) ? "use + and / rather than the URL-safe - and _" : undefined, true);
    else if (str(data)) {
      const bytes = Buffer.from(data, "base64");
      if (typeof d.size === "number" && Number.isInteger(d.size) && d.size >= 0 && bytes.length !== d.size)
        this.add(ptr(pointer, "data"), `embedded data decodes to ${bytes.length} bytes, but size says ${d.size}`);
      else if (str(d.digest) && digestError(d.digest) === undefined) {
        const algorithm = d.digest.slice(0, d.digest.indexOf(":"));
        if (isRegistered(algorithm) && `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}` !== d.digest)
          this.add(ptr(pointer, "data"), "embedded data does not match the descriptor's digest");
      }
    }
  }

  /** Checks `d` as a descriptor when it is an object at all; says whether it was one. */
  maybeDescriptor(pointer: string, d: unknown): d is Obj {
    if (!isObj(d)) return false;
    this.descriptor(pointer, d);
    return true;
  }

  manifest(m: Obj): void {
    this.mediaType("/mediaType", m.mediaType);
    this.mediaType("/artifactType", m.artifactType);
    const mt = m.mediaType;
    if (str(mt) && MEDIA_TYPE.test(mt) && !MANIFEST_TYPES.includes(mt)) {
      if (INDEX_TYPES.includes(mt))
        this.add("/mediaType", `${JSON.stringify(mt)} is the media type of an image index, not of a manifest`, "validate this document as an image index");
      else this.add("/mediaType", `a manifest's own mediaType must be "${mediaTypes.imageManifest}", found ${JSON.stringify(mt)}`, "or leave mediaType out");
    }
    const artifactType = m.artifactType;
    const config = m.config;
    let configType: string | undefined;
    if (this.maybeDescriptor("/config", config) && str(config.mediaType)) {
      configType = config.mediaType;
      if (configType === mediaTypes.empty && artifactType === undefined)
        this.add("/artifactType", `is required when config.mediaType is "${mediaTypes.empty}"`, "set it to the media type of the artifact this manifest packages");
      else if (configType !== mediaTypes.empty && NOT_A_MANIFEST.includes(configType) && !IMAGE_CONFIG_TYPES.includes(configType))
        this.add("/config/mediaType", `${JSON.stringify(configType)} is a layer or descriptor media type, not a configuration's`, `use "${mediaTypes.imageConfig}" for an image, or an artifact-specific type (or "${mediaTypes.empty}") for an artifact`);
      else if (MANIFEST_TYPES.includes(configType) || INDEX_TYPES.includes(configType))
        this.add("/config/mediaType", `${JSON.stringify(configType)} is a manifest media type, not a configuration's`, `use "${mediaTypes.imageConfig}" for an image`);
    }
    // A container image (image config, no artifactType) is unpacked by runtimes: its layers
    // must be in a format they know. Artifacts may carry any layer media type.
    const isImage = configType !== undefined && IMAGE_CONFIG_TYPES.includes(configType) && artifactType === undefined;
    arr(m.layers).forEach((l, i) => {
      if (!this.maybeDescriptor(`/layers/${i}`, l) || !str(l.mediaType)) return;
      if (isImage && !LAYER_FORMATS.has(l.mediaType)) {
        this.add(
          `/layers/${i}/mediaType`,
          `${JSON.stringify(l.mediaType)} is not a layer media type, yet the config marks this manifest as a container image whose layers get unpacked`,
          `use "${mediaTypes.layerGzip}", "${mediaTypes.layerZstd}" or "${mediaTypes.layer}"; if this manifest packages an artifact, set artifactType`,
        );
      }
    });
    this.maybeDescriptor("/subject", m.subject);
    this.annotations("/annotations", m.annotations);
  }

  index(x: Obj): void {
    this.mediaType("/mediaType", x.mediaType);
    this.mediaType("/artifactType", x.artifactType);
    const mt = x.mediaType;
    if (str(mt) && MEDIA_TYPE.test(mt) && !INDEX_TYPES.includes(mt)) {
      if (MANIFEST_TYPES.includes(mt))
        this.add("/mediaType", `${JSON.stringify(mt)} is the media type of an image manifest, not of an index`, "validate this document as an image manifest");
      else this.add("/mediaType", `an index's own mediaType must be "${mediaTypes.imageIndex}", found ${JSON.stringify(mt)}`, "or leave mediaType out");
    }
    arr(x.manifests).forEach((d, i) => {
      if (!this.maybeDescriptor(`/manifests/${i}`, d)) return;
      // Unknown media types must be tolerated here; known non-manifest ones are plain mistakes.
      if (str(d.mediaType) && NOT_A_MANIFEST.includes(d.mediaType))
        this.add(`/manifests/${i}/mediaType`, `${JSON.stringify(d.mediaType)} is not a manifest or index media type; an index lists manifests`, `use "${mediaTypes.imageManifest}" or "${mediaTypes.imageIndex}"`);
    });
    this.maybeDescriptor("/subject", x.subject);
    this.annotations("/annotations", x.annotations);
  }

  config(c: Obj): void {
    this.platform("", c);
    this.dateTime("/created", c.created);
    const rootfs = c.rootfs;
    if (isObj(rootfs)) {
      if (str(rootfs.type) && rootfs.type !== "layers")
        this.add("/rootfs/type", `must be "layers", found ${JSON.stringify(rootfs.type)}`, "the image-spec defines no other root filesystem type, and runtimes must refuse unknown ones", true);
      arr(rootfs.diff_ids).forEach((d, i) => this.digest(`/rootfs/diff_ids/${i}`, d));
    }
    arr(c.history).forEach((h, i) => {
      if (isObj(h)) this.dateTime(`/history/${i}/created`, h.created);
    });
    const ex = c.config;
    if (!isObj(ex)) return;
    arr(ex.Env).forEach((e, i) => {
      if (str(e) && !/^[^=]+=/.test(e))
        this.add(`/config/Env/${i}`, `${JSON.stringify(e)} is not an environment entry of the form NAME=value`, e.includes("=") ? "the name before \"=\" must not be empty" : `write "${e}=" for an empty value`);
    });
    if (isObj(ex.ExposedPorts)) {
      for (const key of Object.keys(ex.ExposedPorts)) {
        const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(key);
        if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535)
          this.add(ptr("/config/ExposedPorts", key), `${JSON.stringify(key)} is not a port to expose`, `write port/tcp, port/udp or a bare port (1-65535), e.g. "8080/tcp"`);
      }
    }
    const linux = c.os === "linux";
    if (linux && isObj(ex.Volumes)) {
      for (const key of Object.keys(ex.Volumes))
        if (!key.startsWith("/")) this.add(ptr("/config/Volumes", key), `volume ${JSON.stringify(key)} must be an absolute path on linux`);
    }
    if (linux && str(ex.WorkingDir) && ex.WorkingDir !== "" && !ex.WorkingDir.startsWith("/"))
      this.add("/config/WorkingDir", `must be an absolute path on linux, found ${JSON.stringify(ex.WorkingDir)}`, "it becomes the process cwd, which the runtime-spec requires to be absolute");
    const sig = ex.StopSignal;
    if (str(sig) && !/^(?:(?:SIG)?[A-Z][A-Z0-9]*(?:[+-]\d+)?|\d+)$/.test(sig))
      this.add("/config/StopSignal", `${JSON.stringify(sig)} is not a signal name`, /^[a-z]/i.test(sig) ? `signal names are uppercase, e.g. "${sig.toUpperCase()}"` : `e.g. "SIGTERM" or "SIGRTMIN+3"`);
  }

  layout(l: Obj): void {
    const v = l.imageLayoutVersion;
    if (str(v) && v !== IMAGE_LAYOUT_VERSION)
      this.add("/imageLayoutVersion", `image layout version ${JSON.stringify(v)} is not supported`, `this implementation reads layout version "${IMAGE_LAYOUT_VERSION}"`);
  }
}
