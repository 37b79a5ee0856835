// Registry authentication as the distribution spec's clients practise it: a request goes out
// anonymously, and a 401 names the scheme to use. "Bearer" sends us to a token server (with the
// user's basic credentials when there are any, anonymously otherwise — Docker Hub hands out
// anonymous pull tokens); "Basic" wants the credentials on every request.

export interface Credentials {
  username: string;
  password: string;
}

/** Credentials for a registry host ("registry-1.docker.io", "localhost:5000"), or a lookup. */
export type CredentialSource = Credentials | ((host: string) => Credentials | undefined);

export interface Challenge {
  /** Lowercased scheme: "bearer", "basic", … */
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;

/**
 * Parses a WWW-Authenticate value into its challenges (RFC 7235: a header may carry several,
 * separated by commas that also separate parameters, so a scanner, not a split, is needed).
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < header.length && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const m = TOKEN.exec(header);
    if (!m) return undefined;
    i = TOKEN.lastIndex;
    return m[0];
  };
  const quoted = (): string => {
    let s = "";
    i++; // opening quote
    while (i < header.length && header[i] !== '"') {
      if (header[i] === "\\" && i + 1 < header.length) i++;
      s += header[i];
      i++;
    }
    i++; // closing quote
    return s;
  };
  let current: Challenge | undefined;
  while (i < header.length) {
    skipSpace();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const name = token();
    if (name === undefined) {
      i++; // garbage: skip a character rather than loop forever
      continue;
    }
    skipSpace();
    if (header[i] === "=") {
      // "name=value" is a parameter; "abc==" followed by a comma or the end is a token68
      // blob (as in "Negotiate abc=="), which no scheme we answer uses.
      let j = i;
      while (header[j] === "=") j++;
      while (header[j] === " " || header[j] === "\t") j++;
      if (j >= header.length || header[j] === ",") {
        i = j;
        continue;
      }
      i++;
      skipSpace();
      const value = header[i] === '"' ? quoted() : (token() ?? "");
      if (current !== undefined) current.params[name.toLowerCase()] = value;
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

export function credentialsFor(source: CredentialSource | undefined, host: string): Credentials | undefined {
  if (source === undefined) return undefined;
  return typeof source === "function" ? source(host) : source;
}

/** Why authentication failed; `status` is the HTTP status that ended it. */
export class RegistryAuthError extends Error {
  override name = "RegistryAuthError";
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface TokenRequest {
  challenge: Challenge;
  /** Scope to ask for when the challenge names none, e.g. "repository:library/busybox:pull". */
  defaultScope: string;
  credentials: Credentials | undefined;
  /** Whether sending credentials to a plain-http realm is acceptable (the registry is plain http too). */
  allowInsecure: boolean;
  fetch: typeof fetch;
  signal?: AbortSignal;
}

/** Asks a Bearer challenge's token server for a token; returns the Authorization header value. */
export async function fetchBearerToken(req: TokenRequest): Promise<string> {
  const { realm, service, scope } = req.challenge.params;
  if (!realm) throw new RegistryAuthError(`the registry's Bearer challenge names no realm (token server)`);
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new RegistryAuthError(`the registry's token realm ${JSON.stringify(realm)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:")
    throw new RegistryAuthError(`the registry's token realm ${realm} is not an http(s) URL`);
  if (service) url.searchParams.set("service", service);
  // Several scopes are space-separated in the challenge but separate parameters in the request.
  for (const s of (scope || req.defaultScope).split(" ").filter(Boolean)) url.searchParams.append("scope", s);
  const headers: Record<string, string> = { accept: "application/json" };
  if (req.credentials) {
    if (url.protocol === "http:" && !req.allowInsecure)
      throw new RegistryAuthError(`refusing to send credentials to the token server ${url.origin} over plain http`);
    headers.authorization = basicAuthorization(req.credentials);
    // Docker's clients name the account so that token servers can scope it; harmless elsewhere.
    url.searchParams.set("account", req.credentials.username);
  }
  let res: Response;
  try {
    res = await req.fetch(url, { headers, signal: req.signal });
  } catch (e) {
    throw new RegistryAuthError(`cannot reach the token server ${url.origin}: ${(e as Error).message}`);
  }
  const body = await res.text();
  if (!res.ok) {
    const why = res.status === 401 || res.status === 403
      ? req.credentials ? `rejected the credentials of ${req.credentials.username}` : "refused an anonymous token (the repository may need credentials)"
      : `failed`;
    throw new RegistryAuthError(`token server ${url.origin} ${why} (${res.status})${body.trim() ? `: ${body.trim().slice(0, 200)}` : ""}`, res.status);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new RegistryAuthError(`token server ${url.origin} answered ${res.status} with something that is not JSON`);
  }
  const obj = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  // "token" is Docker's field, "access_token" the OAuth2 one; servers may send both.
  const token = typeof obj.token === "string" && obj.token ? obj.token : typeof obj.access_token === "string" ? obj.access_token : "";
  if (!token) throw new RegistryAuthError(`token server ${url.origin} answered without a token`);
  return `Bearer ${token}`;
}
