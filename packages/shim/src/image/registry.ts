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

/** One pull's or push's conversation with one registry repository: base URL, auth state, redirects. */
export class RegistrySession {
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
    /** What errors start with ("pull REF", "push REF") and the token scope's actions. */
    private readonly verb: "pull" | "push" = "pull",
  ) {
    this.host = registryHost(ref.domain);
    this.base = `${plainHttp ? "http" : "https"}://${this.host}`;
    this.fetchFn = fetchFn ?? fetch;
  }

  /** GET `path` under /v2/<repository>/ (see request). */
  get(path: string, headers: Record<string, string>, opts: { freshConnection?: boolean } = {}): Promise<Response> {
    return this.request("GET", path, { headers, ...opts });
  }

  /**
   * Sends `method` to `target` (a path under /v2/<repository>/, or an absolute URL the registry
   * gave, such as an upload's Location), authenticating on a 401 and following redirects by
   * hand: a blob redirect usually points at a storage service that must not see our token.
   * `body` is a factory because a request answered 401 or redirected is sent again, and a
   * stream that was sent once cannot be.
   */
  async request(
    method: string,
    target: string | URL,
    opts: { headers?: Record<string, string>; body?: () => NonNullable<RequestInit["body"]>; freshConnection?: boolean } = {},
  ): Promise<Response> {
    const start = target instanceof URL ? target : new URL(`${this.base}/v2/${this.ref.path}/${target}`);
    const origin = new URL(this.base).origin;
    let authRetried = false;
    for (;;) {
      let url = start;
      const sentAuth = this.authorization;
      let res: Response | undefined;
      for (let hop = 0; ; hop++) {
        const h: Record<string, string> = { ...opts.headers };
        if (sentAuth && url.origin === origin) h.authorization = sentAuth;
        try {
          // After a broken download, pooled keep-alive connections to the same server are
          // likely dead too; a retry on one of them would fail again for no reason.
          res = await this.fetchFn(url, {
            method,
            headers: h,
            redirect: "manual",
            signal: this.signal,
            ...(opts.body ? { body: opts.body() } : {}),
            ...(opts.freshConnection ? { keepalive: false } : {}),
          });
        } catch (e) {
          if ((e as Error).name === "AbortError") throw e;
          const hint = !this.plainHttp && /ssl|tls|certificate|wrong version|EPROTO/i.test(String((e as Error).message))
            ? `; if this registry speaks plain http, ${this.verb} with plainHttp (--plain-http)`
            : "";
          throw new RegistryError(`${this.verb} ${this.name}: cannot reach ${url.origin}: ${(e as Error).message}${hint}`, this.name, undefined);
        }
        const location = res.headers.get("location");
        // Only GET and HEAD follow: a 3xx to an upload is the registry's answer, not a detour.
        if ((method === "GET" || method === "HEAD") && res.status >= 300 && res.status < 400 && location) {
          if (hop >= MAX_REDIRECTS) throw new RegistryError(`${this.verb} ${this.name}: more than ${MAX_REDIRECTS} redirects from ${start.href}`, this.name, res.status);
          await res.body?.cancel();
          url = new URL(location, url);
          continue;
        }
        break;
      }
      if (res.status !== 401 || authRetried || url.origin !== origin) return res;
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
          defaultScope: `repository:${this.ref.path}:${this.verb === "push" ? "pull,push" : "pull"}`,
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
      if (e instanceof RegistryAuthError) throw new RegistryError(`${this.verb} ${this.name}: authentication failed: ${e.message}`, this.name, e.status ?? 401);
      throw e;
    }
    throw new RegistryError(
      `${this.verb} ${this.name}: ${this.host} answered 401 ${header ? `with a challenge tsrun cannot answer (${header})` : "without a WWW-Authenticate challenge"}`,
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
    await forEachLimited(layers, this.opts.concurrency ?? 3, (layer, i) => this.fetchBlob(layer, `layer ${i + 1} of ${layers.length}`));

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

// ---------------------------------------------------------------------------------------------
// Push

export type PushProgress =
  | {
      type: "blob";
      what: string;
      digest: string;
      /** Bytes read from the store and handed to the upload so far. */
      completed: number;
      total: number;
      /** exists: the registry already has it (not uploaded); start/data: uploading; done: the registry took it. */
      state: "exists" | "start" | "data" | "done";
    }
  | { type: "manifest"; descriptor: Descriptor; reference: string }
  /** The store holds only some manifests of the reference's index: `pushed` is pushed in its place. */
  | { type: "partial-index"; index: Descriptor; pushed: Descriptor; missing: number };

export interface PushOptions {
  store: ContentStore;
  /** Speak http instead of https. Default: only for localhost, 127.0.0.1 and [::1]. */
  plainHttp?: boolean;
  credentials?: CredentialSource;
  onProgress?: (event: PushProgress) => void;
  /** The fetch to use (tests, proxies); default the global fetch. */
  fetch?: typeof fetch;
  /** Blobs uploaded at the same time (default 3). */
  concurrency?: number;
  signal?: AbortSignal;
}

export interface PushResult {
  /** The normalized reference pushed to: "registry.example:5000/demo/app:1". */
  name: string;
  reference: ImageReference;
  /** What the tag (or digest) now names in the registry: the index, or a manifest. */
  descriptor: Descriptor;
  /** Blobs uploaded, and blobs the registry already had. */
  uploaded: string[];
  skipped: string[];
}

/** A manifest to push, read (and verified) from the store, with the blobs it needs. */
interface PushManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  blobs: { desc: Descriptor; role: string }[];
}

class Pusher {
  private readonly session: RegistrySession;
  private readonly store: ContentStore;
  private readonly name: string;
  private readonly progress: (e: PushProgress) => void;
  private readonly uploaded: string[] = [];
  private readonly skipped: string[] = [];

  constructor(
    private readonly ref: ImageReference,
    private readonly target: Descriptor,
    private readonly opts: PushOptions,
  ) {
    this.store = opts.store;
    this.name = formatReference(ref);
    this.progress = opts.onProgress ?? (() => {});
    this.session = new RegistrySession(ref, this.name, opts.plainHttp ?? isLoopbackDomain(ref.domain), opts.credentials, opts.fetch, opts.signal, "push");
  }

  private fail(what: string, res: { status: number }, detail: { text: string; code?: string }, digest?: string): RegistryError {
    const hint =
      res.status === 401 || res.status === 403
        ? this.opts.credentials
          ? "; the credentials may not allow pushing to this repository"
          : "; the registry may need credentials (--username, password in $TSRUN_REGISTRY_PASSWORD)"
        : "";
    return new RegistryError(`push ${this.name}: ${this.session.host} refused ${what}: ${detail.text} (${res.status})${hint}`, this.name, res.status, digest, detail.code);
  }

  async run(): Promise<PushResult> {
    const { manifests, top } = this.plan();
    const blobs = new Map<string, { desc: Descriptor; role: string }>();
    for (const m of manifests) for (const b of m.blobs) if (!blobs.has(b.desc.digest)) blobs.set(b.desc.digest, b);
    await forEachLimited([...blobs.values()], this.opts.concurrency ?? 3, (b) => this.pushBlob(b.desc, b.role));
    // Children by digest first: a registry checks that an index's manifests exist.
    for (const m of manifests) if (m !== top) await this.putManifest(m, m.descriptor.digest);
    await this.putManifest(top, this.ref.tag ?? this.ref.digest!);
    return { name: this.name, reference: this.ref, descriptor: top.descriptor, uploaded: this.uploaded, skipped: this.skipped };
  }

  /** Reads the manifest (or index) and what it needs from the store; children before parents. */
  private plan(): { manifests: PushManifest[]; top: PushManifest } {
    const out: PushManifest[] = [];
    const visit = (desc: Descriptor, depth: number, allowPartial: boolean): PushManifest => {
      if (depth > MAX_INDEX_DEPTH) throw new RegistryError(`push ${this.name}: indexes nested deeper than ${MAX_INDEX_DEPTH} levels`, this.name, undefined, desc.digest);
      if (!this.store.has(desc.digest)) throw new RegistryError(`push ${this.name}: the image store lacks ${desc.mediaType} ${desc.digest}`, this.name, undefined, desc.digest);
      // readBytes checks the digest: a manifest changed on disk is not pushed under its old name.
      const bytes = this.store.readBytes(desc.digest);
      const doc = JSON.parse(new TextDecoder().decode(bytes)) as ImageIndex & ImageManifest;
      if (INDEX_TYPES.includes(desc.mediaType)) {
        const present = doc.manifests.filter((m) => this.store.has(m.digest));
        if (present.length < doc.manifests.length) {
          // A pull keeps one platform of an index; the registry would refuse the index for
          // lacking the others, so the platform manifest the store has is what gets pushed.
          if (!allowPartial || present.length === 0)
            throw new RegistryError(
              `push ${this.name}: the image store holds ${present.length} of the ${doc.manifests.length} manifests of index ${desc.digest}; an index can only be pushed whole`,
              this.name,
              undefined,
              desc.digest,
            );
          const chosen = selectPlatformManifest({ ...doc, manifests: present }, hostPlatform()) ?? present[0]!;
          this.progress({ type: "partial-index", index: desc, pushed: chosen, missing: doc.manifests.length - present.length });
          return visit(chosen, depth + 1, false);
        }
        for (const m of doc.manifests) visit(m, depth + 1, false);
        const m: PushManifest = { descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: bytes.length }, bytes, blobs: [] };
        out.push(m);
        return m;
      }
      if (!MANIFEST_TYPES.includes(desc.mediaType))
        throw new RegistryError(`push ${this.name}: ${desc.digest} has media type ${JSON.stringify(desc.mediaType)}, not an image index or manifest`, this.name, undefined, desc.digest);
      const blobs = [{ desc: doc.config, role: "config" }, ...doc.layers.map((l, i) => ({ desc: l, role: `layer ${i + 1} of ${doc.layers.length}` }))];
      for (const b of blobs)
        if (!this.store.has(b.desc.digest))
          throw new RegistryError(`push ${this.name}: the image store lacks the ${b.role} blob ${b.desc.digest} of manifest ${desc.digest}`, this.name, undefined, b.desc.digest);
      const m: PushManifest = { descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: bytes.length }, bytes, blobs };
      out.push(m);
      return m;
    };
    const top = visit(this.target, 0, true);
    return { manifests: out, top };
  }

  private async pushBlob(desc: Descriptor, role: string): Promise<void> {
    const { digest, size } = desc;
    const have = this.store.size(digest);
    if (have !== size)
      throw new DigestMismatchError(digest, digest, size, have ?? 0, `push ${this.name}: ${role} ${digest} in the image store (${this.store.blobPath(digest)})`);
    const head = await this.session.request("HEAD", `blobs/${digest}`);
    await head.body?.cancel();
    if (head.ok) {
      this.skipped.push(digest);
      this.progress({ type: "blob", what: role, digest, completed: size, total: size, state: "exists" });
      return;
    }
    if (head.status !== 404) throw this.fail(`${role} ${digest}`, head, { text: head.statusText || "HEAD failed" }, digest);

    const started = await this.session.request("POST", "blobs/uploads/", { headers: { "content-length": "0" } });
    if (started.status !== 202) throw this.fail(`the upload of ${role} ${digest}`, started, await registryErrorText(started), digest);
    await started.body?.cancel();
    const location = started.headers.get("location");
    if (!location) throw new RegistryError(`push ${this.name}: ${this.session.host} started an upload of ${role} ${digest} without saying where to send it (no Location)`, this.name, started.status, digest);
    const url = new URL(location, this.session.base);
    url.searchParams.set("digest", digest);

    this.progress({ type: "blob", what: role, digest, completed: 0, total: size, state: "start" });
    let verifyError: unknown;
    let res: Response;
    try {
      res = await this.session.request("PUT", url, {
        headers: { "content-type": "application/octet-stream", "content-length": String(size) },
        body: () =>
          verifiedBlobStream(this.store, desc, `push ${this.name}: ${role} ${digest} in the image store`, (completed) => {
            this.progress({ type: "blob", what: role, digest, completed, total: size, state: "data" });
          }, (e) => {
            verifyError = e;
          }),
      });
    } catch (e) {
      throw verifyError ?? e;
    }
    if (verifyError) {
      await res.body?.cancel();
      throw verifyError;
    }
    if (res.status !== 201) throw this.fail(`${role} ${digest}`, res, await registryErrorText(res), digest);
    await res.body?.cancel();
    this.uploaded.push(digest);
    this.progress({ type: "blob", what: role, digest, completed: size, total: size, state: "done" });
  }

  private async putManifest(m: PushManifest, reference: string): Promise<void> {
    const res = await this.session.request("PUT", `manifests/${reference}`, { headers: { "content-type": m.descriptor.mediaType }, body: () => m.bytes });
    if (res.status !== 201) throw this.fail(`manifest ${m.descriptor.digest}${reference === m.descriptor.digest ? "" : ` as ${reference}`}`, res, await registryErrorText(res), m.descriptor.digest);
    await res.body?.cancel();
    const stored = res.headers.get("docker-content-digest");
    // A registry that rewrote the manifest would make the pushed name mean something else.
    if (stored && stored !== m.descriptor.digest)
      throw new RegistryError(`push ${this.name}: ${this.session.host} stored manifest ${m.descriptor.digest} as ${stored}`, this.name, res.status, m.descriptor.digest);
    this.progress({ type: "manifest", descriptor: m.descriptor, reference });
  }
}

/**
 * A stored blob's bytes, hashed on the way out. The last chunk is held back until the digest
 * and size are known to match, so a blob changed on disk never reaches the registry whole:
 * the upload's body fails instead and `onBad` gets the DigestMismatchError.
 */
function verifiedBlobStream(store: ContentStore, desc: Descriptor, what: string, onBytes: (completed: number) => void, onBad: (e: DigestMismatchError) => void): ReadableStream<Uint8Array> {
  const { algorithm } = parseDigest(desc.digest);
  if (algorithm !== "sha256" && algorithm !== "sha512") throw new Error(`cannot verify content with digest algorithm "${algorithm}": only sha256 and sha512 are supported`);
  const hasher = new Bun.CryptoHasher(algorithm);
  const source = store.openStream(desc.digest).getReader();
  let held: Uint8Array | undefined;
  let read = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const { done, value } = await source.read();
        if (done) {
          const actual = `${algorithm}:${hasher.digest("hex")}`;
          if (actual !== desc.digest || read !== desc.size) {
            const e = new DigestMismatchError(desc.digest, actual, desc.size, read, what);
            onBad(e);
            controller.error(e);
            return;
          }
          if (held) controller.enqueue(held);
          controller.close();
          return;
        }
        if (value.length === 0) continue;
        read += value.length;
        hasher.update(value);
        const out = held;
        held = value;
        if (out) {
          onBytes(read - value.length);
          controller.enqueue(out);
          return;
        }
      }
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  });
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure stops new starts. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
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

/**
 * Pushes the image `target` (an index or manifest in `opts.store`) to `reference`'s registry
 * and repository, under its tag (or digest). Blobs the registry has are not uploaded again;
 * every blob is checked against its digest as it is read. Throws RegistryError naming the
 * reference, the registry and the status, or DigestMismatchError for a corrupt stored blob.
 */
export async function push(reference: string | ImageReference, target: Descriptor, opts: PushOptions): Promise<PushResult> {
  const ref = typeof reference === "string" ? parseReference(reference) : reference;
  if (ref.tag === undefined && ref.digest === undefined) throw new TypeError(`push ${formatReference(ref)}: the reference names neither a tag nor a digest`);
  if (ref.digest !== undefined && ref.tag === undefined && ref.digest !== target.digest)
    throw new RegistryError(`push ${formatReference(ref)}: the image is ${target.digest}, not the digest the reference names`, formatReference(ref), undefined, target.digest);
  return new Pusher(ref, target, opts).run();
}
