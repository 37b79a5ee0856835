// Pulling an image from an OCI distribution registry (the /v2/ API): resolve the reference to a
// manifest or index, pick the manifest for the platform, and bring that manifest, its config and
// its layers into the content store. Every byte is verified against its digest by the store
// before it is visible there; a blob download cut short stays in the store's ingest area and the
// next attempt asks for the rest with a Range request.
import { formatProblem, mediaTypes, parseDigest, validateImageDocument, type Descriptor, type ImageIndex, type ImageManifest } from "@tsrun/ocispec";
import { DigestMismatchError, ResumeLostError, type ContentStore } from "./store.ts";
import { formatPlatform, hostPlatform, parsePlatform, platformRank, type PlatformSpec } from "./platform.ts";
import { formatReference, isLoopbackDomain, parseReference, registryHost, type ImageReference } from "./reference.ts";
import {
  RegistryAuthError,
  basicAuthorization,
  credentialsFor,
  fetchBearerToken,
  parseChallenges,
  type CredentialSource,
} from "./registry-auth.ts";

export { type Credentials, type CredentialSource } from "./registry-auth.ts";

export { formatPlatform, hostPlatform, parsePlatform, platformRank, type PlatformSpec } from "./platform.ts";

export class NoMatchingPlatformError extends Error {
  override name = "NoMatchingPlatformError";
  constructor(
    readonly reference: string,
    readonly wanted: PlatformSpec,
    readonly available: PlatformSpec[],
  ) {
    super(
      `pull ${reference}: no manifest for platform ${formatPlatform(wanted)}; ` +
        (available.length
          ? `the image is available for ${available.map(formatPlatform).join(", ")}`
          : "the index lists no manifest with a platform") +
        " (choose one with the platform option)",
    );
  }
}

/** The index entry that fits `want` best (first of equals, in index order), or undefined. */
export function selectPlatformManifest(index: ImageIndex, want: PlatformSpec): Descriptor | undefined {
  let best: Descriptor | undefined;
  let bestRank = Infinity;
  for (const d of index.manifests) {
    if (!d.platform) continue;
    const rank = platformRank(want, d.platform);
    if (rank !== undefined && rank < bestRank) {
      best = d;
      bestRank = rank;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** The registry answered with an error status. */
export class RegistryError extends Error {
  override name = "RegistryError";
  constructor(
    message: string,
    readonly reference: string,
    readonly status: number | undefined,
    readonly digest?: string,
    /** The registry's error code ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", …) when it sent one. */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The distribution spec's error body: {"errors":[{"code","message","detail"}]}. */
async function registryErrorText(res: Response): Promise<{ text: string; code?: string }> {
  let body = "";
  try {
    body = await res.text();
  } catch {
    // The status alone still says what happened.
  }
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = parsed.errors?.[0];
    if (first && (typeof first.message === "string" || typeof first.code === "string")) {
      const messages = parsed.errors!.map((e) => (typeof e.message === "string" && e.message ? e.message : String(e.code))).join("; ");
      return typeof first.code === "string" ? { text: messages, code: first.code } : { text: messages };
    }
  } catch {
    // Not the JSON error body; fall through to the raw text.
  }
  const raw = body.trim().replace(/\s+/g, " ");
  return { text: raw && raw.length <= 200 && !raw.startsWith("<") ? raw : res.statusText || "request failed" };
}

// ---------------------------------------------------------------------------------------------
// Pull

export type PullProgress =
  | { type: "resolved"; reference: string; descriptor: Descriptor }
  | { type: "manifest"; descriptor: Descriptor; platform?: PlatformSpec }
  | {
      type: "blob";
      what: string;
      digest: string;
      /** Bytes of the blob now on disk (including a resumed partial download). */
      completed: number;
      total: number;
      /** cached: already in the store; start/resume: a download began (resume: from `completed`); data: bytes arrived; retry: the download broke and is tried again; done: verified and stored. */
      state: "cached" | "start" | "resume" | "data" | "retry" | "done";
    };

export interface PullOptions {
  store: ContentStore;
  /** Platform to select from an index; default this machine's (linux/amd64 here). A string is "os/arch[/variant]". */
  platform?: PlatformSpec | string;
  /** Speak http instead of https. Default: only for localhost, 127.0.0.1 and [::1]. */
  plainHttp?: boolean;
  credentials?: CredentialSource;
  onProgress?: (event: PullProgress) => void;
  /** The fetch to use (tests, proxies); default the global fetch. */
  fetch?: typeof fetch;
  /** Blobs downloaded at the same time (default 3). */
  concurrency?: number;
  /** How often a broken blob download is resumed within this pull before giving up (default 2). */
  retries?: number;
  signal?: AbortSignal;
}

export interface PullResult {
  /** The normalized reference that was pulled: "docker.io/library/busybox:latest". */
  name: string;
  reference: ImageReference;
  /** What the reference resolved to: an index, or directly a manifest. */
  descriptor: Descriptor;
  /** The manifest chosen for the platform (the same as `descriptor` when there was no index). */
  manifest: Descriptor;
  /** The platform of the chosen manifest, as the index or the config states it. */
  platform: PlatformSpec;
  config: Descriptor;
  layers: Descriptor[];
}

const MANIFEST_ACCEPT = [mediaTypes.imageIndex, mediaTypes.imageManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(", ");
const INDEX_TYPES: readonly string[] = [mediaTypes.imageIndex, mediaTypes.dockerManifestList];
const MANIFEST_TYPES: readonly string[] = [mediaTypes.imageManifest, mediaTypes.dockerManifest];
const CONFIG_TYPES: readonly string[] = [mediaTypes.imageConfig, mediaTypes.dockerConfig];
/** Manifests are read into memory; registries themselves refuse bigger ones. */
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_REDIRECTS = 10;
/** Nested indexes (an index pointing at an index) are legal; a loop or absurd depth is not. */
const MAX_INDEX_DEPTH = 4;

class TruncatedBodyError extends Error {
  override name = "TruncatedBodyError";
}

/** A network failure or a cut body: worth resuming; anything else (4xx, bad digest) is not. */
function isTransient(e: unknown): boolean {
  if (e instanceof TruncatedBodyError) return true;
  if (e instanceof DigestMismatchError || e instanceof RegistryAuthError) return false;
  if (e instanceof RegistryError) return e.status === undefined || e.status >= 500 || e.status === 429;
  // Errors naming a syscall come from the file system (a full disk), which a retry does not cure.
  return e instanceof Error && e.name !== "AbortError" && (e as { syscall?: unknown }).syscall === undefined;
}

function inferMediaType(doc: unknown): string | undefined {
  if (typeof doc !== "object" || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  if (Array.isArray(d.manifests) && d.config === undefined) return mediaTypes.imageIndex;
  if (typeof d.config === "object" && Array.isArray(d.layers) && d.manifests === undefined) return mediaTypes.imageManifest;
  return undefined;
}

function computeDigest(bytes: Uint8Array, algorithm: string): string {
  if (algorithm !== "sha256" && algorithm !== "sha512") throw new Error(`cannot verify content with digest algorithm "${algorithm}": only sha256 and sha512 are supported`);
  return `${algorithm}:${new Bun.CryptoHasher(algorithm).update(bytes).digest("hex")}`;
}

/** One pull's conversation with one registry repository: base URL, auth state, redirects. */
class RegistrySession {
  readonly base: string;
  readonly host: string;
  private authorization: string | undefined;
  private authorizing: Promise<string> | undefined;
  private readonly fetchFn: typeof fetch;

  constructor(
    readonly ref: ImageReference,
    readonly name: string,
    private readonly plainHttp: boolean,
    private readonly credentials: CredentialSource | undefined,
    fetchFn: typeof fetch | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.host = registryHost(ref.domain);
    this.base = `${plainHttp ? "http" : "https"}://${this.host}`;
    this.fetchFn = fetchFn ?? fetch;
  }

  /**
   * GET `path` (under /v2/<repository>/), authenticating on a 401 and following redirects by
   * hand: a blob redirect usually points at a storage service that must not see our token.
   */
  async get(path: string, headers: Record<string, string>, opts: { freshConnection?: boolean } = {}): Promise<Response> {
    const start = new URL(`${this.base}/v2/${this.ref.path}/${path}`);
    let authRetried = false;
    for (;;) {
      let url = start;
      const sentAuth = this.authorization;
      let res: Response | undefined;
      for (let hop = 0; ; hop++) {
        const h: Record<string, string> = { ...headers };
        if (sentAuth && url.origin === start.origin) h.authorization = sentAuth;
        try {
          // After a broken download, pooled keep-alive connections to the same server are
          // likely dead too; a retry on one of them would fail again for no reason.
          res = await this.fetchFn(url, { headers: h, redirect: "manual", signal: this.signal, ...(opts.freshConnection ? { keepalive: false } : {}) });
        } catch (e) {
          if ((e as Error).name === "AbortError") throw e;
          const hint = !this.plainHttp && /ssl|tls|certificate|wrong version|EPROTO/i.test(String((e as Error).message))
            ? "; if this registry speaks plain http, pull with plainHttp"
            : "";
          throw new RegistryError(`pull ${this.name}: cannot reach ${url.origin}: ${(e as Error).message}${hint}`, this.name, undefined);
        }
        const location = res.headers.get("location");
        if (res.status >= 300 && res.status < 400 && location) {
          if (hop >= MAX_REDIRECTS) throw new RegistryError(`pull ${this.name}: more than ${MAX_REDIRECTS} redirects from ${start.href}`, this.name, res.status);
          await res.body?.cancel();
          url = new URL(location, url);
          continue;
        }
        break;
      }
      if (res.status !== 401 || authRetried || url.origin !== start.origin) return res;
      authRetried = true;
      const challenge = res.headers.get("www-authenticate");
      await res.body?.cancel();
      await this.authenticate(challenge, sentAuth);
    }
  }

  /** Obtains an Authorization value for a 401's challenge, once even when requests run in parallel. */
  private async authenticate(header: string | null, failed: string | undefined): Promise<void> {
    // Another request already replaced the value that failed: use the new one.
    if (this.authorization !== failed) return;
    if (!this.authorizing) {
      this.authorizing = this.obtain(header).finally(() => {
        this.authorizing = undefined;
      });
      this.authorization = await this.authorizing;
    } else await this.authorizing;
  }

  private async obtain(header: string | null): Promise<string> {
    const challenges = parseChallenges(header ?? "");
    const creds = credentialsFor(this.credentials, this.host);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    try {
      if (bearer) {
        return await fetchBearerToken({
          challenge: bearer,
          defaultScope: `repository:${this.ref.path}:pull`,
          credentials: creds,
          allowInsecure: this.plainHttp,
          fetch: this.fetchFn,
          ...(this.signal ? { signal: this.signal } : {}),
        });
      }
      if (challenges.some((c) => c.scheme === "basic")) {
        if (!creds) throw new RegistryAuthError(`${this.host} asks for a user name and password (Basic auth) and none were given`, 401);
        // Over plain http only where the user chose (or loopback implies) plain http for this very registry.
        return basicAuthorization(creds);
      }
    } catch (e) {
      if (e instanceof RegistryAuthError) throw new RegistryError(`pull ${this.name}: authentication failed: ${e.message}`, this.name, e.status ?? 401);
      throw e;
    }
    throw new RegistryError(
      `pull ${this.name}: ${this.host} answered 401 ${header ? `with a challenge tsrun cannot answer (${header})` : "without a WWW-Authenticate challenge"}`,
      this.name,
      401,
    );
  }
}

interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  kind: "index" | "manifest";
  doc: ImageIndex | ImageManifest;
}

class Puller {
  private readonly session: RegistrySession;
  private readonly store: ContentStore;
  private readonly name: string;
  private readonly progress: (e: PullProgress) => void;
  private readonly retries: number;

  constructor(
    private readonly ref: ImageReference,
    private readonly opts: PullOptions,
  ) {
    this.store = opts.store;
    this.name = formatReference(ref);
    this.progress = opts.onProgress ?? (() => {});
    this.retries = opts.retries ?? 2;
    this.session = new RegistrySession(ref, this.name, opts.plainHttp ?? isLoopbackDomain(ref.domain), opts.credentials, opts.fetch, opts.signal);
  }

  /** "pull REF: layer 1 of 2 sha256:…: blob unknown to registry (404)"; the registry's own text is kept. */
  private fail(what: string, res: { status: number }, detail: { text: string; code?: string }, digest?: string): RegistryError {
    // "manifest unknown" already says what was asked for; repeating "manifest: " adds nothing.
    const subject = what === "manifest" && /manifest/i.test(detail.text) ? "" : `${what}: `;
    // Registries that hand out anonymous tokens (Docker Hub) answer an unknown repository with 401.
    const hint = (res.status === 401 || res.status === 403) && !this.opts.credentials ? "; the repository may not exist, or it needs credentials" : "";
    return new RegistryError(`pull ${this.name}: ${subject}${detail.text} (${res.status})${hint}`, this.name, res.status, digest, detail.code);
  }

  async run(): Promise<PullResult> {
    const want = typeof this.opts.platform === "string" ? parsePlatform(this.opts.platform) : (this.opts.platform ?? hostPlatform());
    const top = await this.fetchManifest(this.ref.digest ?? this.ref.tag!, this.ref.digest ? { digest: this.ref.digest } : undefined, "manifest");
    this.progress({ type: "resolved", reference: this.name, descriptor: top.descriptor });
    await this.keep(top);

    let current = top;
    let platform: PlatformSpec | undefined;
    for (let depth = 0; current.kind === "index"; depth++) {
      if (depth >= MAX_INDEX_DEPTH) throw new RegistryError(`pull ${this.name}: indexes nested deeper than ${MAX_INDEX_DEPTH} levels`, this.name, undefined, current.descriptor.digest);
      const index = current.doc as ImageIndex;
      const chosen = selectPlatformManifest(index, want);
      if (!chosen) throw new NoMatchingPlatformError(this.name, want, index.manifests.flatMap((d) => (d.platform ? [d.platform] : [])));
      platform = chosen.platform;
      current = await this.fetchManifest(chosen.digest, chosen, `manifest for ${formatPlatform(chosen.platform!)}`);
      await this.keep(current);
    }
    const manifest = current.doc as ImageManifest;
    if (!CONFIG_TYPES.includes(manifest.config.mediaType))
      throw new RegistryError(
        `pull ${this.name}: manifest ${current.descriptor.digest} is not a container image: its config has media type ${JSON.stringify(manifest.config.mediaType)}` +
          (manifest.artifactType ? ` (an artifact of type ${manifest.artifactType})` : ""),
        this.name,
        undefined,
        current.descriptor.digest,
      );
    this.progress({ type: "manifest", descriptor: current.descriptor, ...(platform ? { platform } : {}) });

    // The config is small and says which platform a lone manifest is for; check that before
    // spending time on layers.
    await this.fetchBlob(manifest.config, "config");
    if (!platform) platform = this.configPlatform(manifest.config, want);

    const layers = manifest.layers;
    await this.forEachLimited(layers, this.opts.concurrency ?? 3, (layer, i) => this.fetchBlob(layer, `layer ${i + 1} of ${layers.length}`));

    return {
      name: this.name,
      reference: this.ref,
      descriptor: top.descriptor,
      manifest: current.descriptor,
      platform,
      config: manifest.config,
      layers,
    };
  }

  private configPlatform(config: Descriptor, want: PlatformSpec): PlatformSpec {
    let doc: unknown;
    try {
      doc = this.store.readJson(config.digest);
    } catch (e) {
      throw new RegistryError(`pull ${this.name}: config ${config.digest} is not JSON: ${(e as Error).message}`, this.name, undefined, config.digest);
    }
    const c = (typeof doc === "object" && doc !== null ? doc : {}) as Record<string, unknown>;
    if (typeof c.os !== "string" || typeof c.architecture !== "string")
      throw new RegistryError(`pull ${this.name}: config ${config.digest} does not say which os and architecture it is for`, this.name, undefined, config.digest);
    const have: PlatformSpec = { os: c.os, architecture: c.architecture };
    if (typeof c.variant === "string" && c.variant) have.variant = c.variant;
    if (platformRank(want, have) === undefined)
      throw new NoMatchingPlatformError(this.name, want, [have]);
    return have;
  }

  private async keep(m: FetchedManifest): Promise<void> {
    await this.store.ingest({ digest: m.descriptor.digest, size: m.descriptor.size }, m.bytes, { what: `${m.kind} ${m.descriptor.digest} of ${this.name}` });
  }

  /**
   * Fetches a manifest or index by tag or digest, verifies it against `expected` (or the digest
   * the registry announces, or, for a tag with no announcement, takes the content's own), checks
   * its media type and validates it.
   */
  private async fetchManifest(reference: string, expected: { digest: string; size?: number; mediaType?: string } | undefined, what: string): Promise<FetchedManifest> {
    let bytes: Uint8Array;
    let contentType = "";
    let digest = expected?.digest;
    if (digest && this.store.has(digest)) {
      bytes = this.store.readBytes(digest);
    } else {
      const res = await this.session.get(`manifests/${reference}`, { accept: MANIFEST_ACCEPT });
      if (!res.ok) {
        const detail = await registryErrorText(res);
        throw this.fail(digest ? `${what} ${digest}` : what, res, detail, digest);
      }
      const length = Number(res.headers.get("content-length") ?? "NaN");
      const limit = expected?.size ?? MAX_MANIFEST_BYTES;
      if (length > limit) {
        await res.body?.cancel();
        throw new RegistryError(`pull ${this.name}: ${what} is ${length} bytes, more than the ${limit} expected`, this.name, res.status, digest);
      }
      bytes = await this.readLimited(res, limit, what, digest);
      contentType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
      const announced = res.headers.get("docker-content-digest") ?? undefined;
      if (!digest) {
        if (announced) {
          try {
            parseDigest(announced);
          } catch (e) {
            throw new RegistryError(`pull ${this.name}: the registry announced an invalid digest: ${(e as Error).message}`, this.name, res.status);
          }
          digest = announced;
        } else digest = computeDigest(bytes, "sha256");
      }
      const actual = computeDigest(bytes, parseDigest(digest).algorithm);
      if (actual !== digest) throw new DigestMismatchError(digest, actual, expected?.size, bytes.length, `${what} of ${this.name}`);
    }
    if (expected?.size !== undefined && bytes.length !== expected.size)
      throw new DigestMismatchError(digest, digest, expected.size, bytes.length, `${what} of ${this.name}`);

    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw new RegistryError(`pull ${this.name}: ${what} ${digest} is not JSON: ${(e as Error).message}`, this.name, undefined, digest);
    }
    const declared = typeof doc === "object" && doc !== null && typeof (doc as { mediaType?: unknown }).mediaType === "string" ? (doc as { mediaType: string }).mediaType : undefined;
    // The document's own mediaType is what was signed into its digest; the header and the
    // referring descriptor only fill in when the document leaves it out (OCI makes it optional).
    let mediaType = declared ?? (expected?.mediaType || contentType);
    // Early OCI manifests leave mediaType out and some registries answer application/json; only
    // then is the document's shape allowed to say what it is. A type that is named but unknown
    // stays an error below.
    if (mediaType === "" || mediaType === "application/json") mediaType = inferMediaType(doc) ?? mediaType;
    let kind: "index" | "manifest";
    if (INDEX_TYPES.includes(mediaType)) kind = "index";
    else if (MANIFEST_TYPES.includes(mediaType)) kind = "manifest";
    else if (mediaType.startsWith("application/vnd.docker.distribution.manifest.v1"))
      throw new RegistryError(`pull ${this.name}: ${what} ${digest} is a Docker schema 1 manifest, which tsrun does not pull (the format is deprecated; push the image again with a current tool)`, this.name, undefined, digest);
    else
      throw new RegistryError(
        `pull ${this.name}: ${what} ${digest} has ${mediaType ? `unknown media type ${JSON.stringify(mediaType)}` : "no media type"}; expected an image index or manifest (${MANIFEST_ACCEPT})`,
        this.name,
        undefined,
        digest,
      );
    if (expected?.mediaType && expected.mediaType !== mediaType)
      throw new RegistryError(`pull ${this.name}: ${what} ${digest} is a ${mediaType}, but its index entry says ${expected.mediaType}`, this.name, undefined, digest);
    const checked = kind === "index" ? validateImageDocument("imageIndex", doc) : validateImageDocument("imageManifest", doc);
    if (!checked.ok)
      throw new RegistryError(
        `pull ${this.name}: ${what} ${digest} is not a valid image ${kind}: ${checked.problems.slice(0, 5).map(formatProblem).join("; ")}${checked.problems.length > 5 ? ` (and ${checked.problems.length - 5} more)` : ""}`,
        this.name,
        undefined,
        digest,
      );
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes, kind, doc: checked.value };
  }

  private async readLimited(res: Response, limit: number, what: string, digest: string | undefined): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    if (res.body) {
      // Leaving the loop early cancels the body, so an oversized answer is not read to its end.
      for await (const chunk of res.body) {
        total += chunk.length;
        if (total > limit) break;
        parts.push(chunk);
      }
    }
    if (total > limit) throw new RegistryError(`pull ${this.name}: ${what} is more than the ${limit} bytes expected`, this.name, res.status, digest);
    return Buffer.concat(parts);
  }

  /** Brings one blob into the store, resuming a partial download when the registry allows ranges. */
  private async fetchBlob(desc: Descriptor, role: string): Promise<void> {
    const what = `${role} ${desc.digest} of ${this.name}`;
    const { digest, size } = desc;
    if (this.store.has(digest)) {
      this.progress({ type: "blob", what: role, digest, completed: size, total: size, state: "cached" });
      return;
    }
    let useRange = true;
    for (let attempt = 0; ; attempt++) {
      let offset = useRange ? this.store.ingestOffset(digest) : 0;
      // A partial as long as the blob cannot be continued; the store rehashes it from scratch.
      if (offset >= size) offset = 0;
      const headers: Record<string, string> = {};
      if (offset > 0) headers.range = `bytes=${offset}-`;
      try {
        const res = await this.session.get(`blobs/${digest}`, headers, { freshConnection: attempt > 0 });
        let resume = false;
        if (res.status === 206 && offset > 0) {
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
          if (!m || Number(m[1]) !== offset) {
            // Not the range we asked for: not worth trusting; fetch the whole blob instead.
            await res.body?.cancel();
            useRange = false;
            attempt--;
            continue;
          }
          resume = true;
        } else if (res.status === 416 && offset > 0) {
          await res.body?.cancel();
          useRange = false;
          attempt--;
          continue;
        } else if (res.status !== 200) {
          throw this.fail(`${role} ${digest}`, res, await registryErrorText(res), digest);
        }
        if (!res.body) throw new TruncatedBodyError(`the registry sent no body for ${what}`);
        const start = resume ? offset : 0;
        this.progress({ type: "blob", what: role, digest, completed: start, total: size, state: resume ? "resume" : "start" });
        try {
          await this.store.ingest({ digest, size }, this.counted(res.body, start, size, role, digest), { what, resumeFrom: start });
        } catch (e) {
          if (!(e instanceof ResumeLostError)) throw e;
          // Another download of this blob took the partial over: this range is of no use.
          await res.body.cancel();
          useRange = false;
          attempt--;
          continue;
        }
        this.progress({ type: "blob", what: role, digest, completed: size, total: size, state: "done" });
        return;
      } catch (e) {
        if (!isTransient(e) || attempt >= this.retries || this.opts.signal?.aborted) throw this.wrapBlobError(e, what, digest, size);
        this.progress({ type: "blob", what: role, digest, completed: this.store.ingestOffset(digest), total: size, state: "retry" });
        await Bun.sleep(100 * (attempt + 1));
      }
    }
  }

  private wrapBlobError(e: unknown, what: string, digest: string, size: number): unknown {
    if (e instanceof RegistryError || e instanceof DigestMismatchError || (e as Error)?.name === "AbortError") return e;
    const kept = this.store.ingestOffset(digest);
    return new RegistryError(
      `pull ${this.name}: download of ${what} broke after ${kept} of ${size} bytes: ${(e as Error)?.message ?? String(e)}` +
        (kept > 0 ? "; the partial download is kept and the next pull resumes from it" : ""),
      this.name,
      undefined,
      digest,
    );
  }

  /**
   * Passes the body through, reporting progress, and turns an early end into an error: a body
   * that simply stops would otherwise reach the store as a short blob, fail verification and
   * lose the part that could have been resumed.
   */
  private async *counted(body: ReadableStream<Uint8Array>, start: number, size: number, role: string, digest: string): AsyncIterable<Uint8Array> {
    let completed = start;
    for await (const chunk of body) {
      completed += chunk.length;
      this.progress({ type: "blob", what: role, digest, completed, total: size, state: "data" });
      yield chunk;
    }
    if (completed < size) throw new TruncatedBodyError(`the connection ended after ${completed} of ${size} bytes`);
  }

  /** Runs `fn` over `items`, at most `limit` at a time; the first failure stops new starts. */
  private async forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async () => {
      while (!failure && next < items.length) {
        const i = next++;
        try {
          await fn(items[i]!, i);
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
    if (failure) throw failure.error;
  }
}

/**
 * Pulls `reference` into `opts.store` and says what it resolved to. Blobs already in the store
 * are not fetched again. Throws RegistryError (HTTP and protocol failures, naming the reference,
 * the digest and the status), NoMatchingPlatformError, or DigestMismatchError (nothing of the
 * bad blob is stored).
 */
export async function pull(reference: string | ImageReference, opts: PullOptions): Promise<PullResult> {
  const ref = typeof reference === "string" ? parseReference(reference) : reference;
  if (ref.tag === undefined && ref.digest === undefined) throw new TypeError(`pull ${formatReference(ref)}: the reference names neither a tag nor a digest`);
  return new Puller(ref, opts).run();
}
