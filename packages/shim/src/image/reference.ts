// Image references (`busybox`, `ghcr.io/org/app:1.2@sha256:…`) parsed into registry, repository,
// tag and digest, normalized the way Docker and containerd spell them so that a name typed by a
// user and a name stored by another tool land on the same image: a bare name means Docker Hub's
// `library/` namespace, no tag and no digest means `latest`. Pure: no I/O.
import { parseDigest } from "@tsrun/ocispec";

/** Docker Hub's canonical domain in references, and the host that actually serves its API. */
export const DOCKER_HUB_DOMAIN = "docker.io";
export const DOCKER_HUB_REGISTRY = "registry-1.docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
const OFFICIAL_NAMESPACE = "library";
export const DEFAULT_TAG = "latest";

/** Longest repository (domain + path) the distribution spec lets registries refuse beyond. */
const MAX_NAME_LENGTH = 255;
const MAX_TAG_LENGTH = 128;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const DOMAIN_COMPONENT = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._~-]+)?\]$/;

export class ImageReferenceError extends Error {
  override name = "ImageReferenceError";
  constructor(
    readonly reference: string,
    reason: string,
    hint?: string,
  ) {
    super(`invalid image reference ${JSON.stringify(reference)}: ${reason}${hint ? ` (${hint})` : ""}`);
  }
}

export interface ImageReference {
  /** Registry as written in references: "docker.io", "localhost:5000", "[::1]:5000". */
  domain: string;
  /** Repository path inside the registry: "library/busybox". */
  path: string;
  /** Tag; absent only when the reference pins a digest and names no tag. */
  tag?: string;
  /** Content digest the reference pins, "sha256:…". */
  digest?: string;
}

/** "docker.io/library/busybox": domain and path, no tag or digest. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalized reference: "docker.io/library/busybox:latest", "host/x:1@sha256:…". */
export function formatReference(ref: ImageReference): string {
  return `${repositoryName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/**
 * The short form Docker prints: "busybox:latest" for official Hub images, "user/app:1" for other
 * Hub images, the full name elsewhere.
 */
export function familiarReference(ref: ImageReference): string {
  let name = repositoryName(ref);
  if (ref.domain === DOCKER_HUB_DOMAIN) {
    name = ref.path.startsWith(`${OFFICIAL_NAMESPACE}/`) && ref.path.indexOf("/", OFFICIAL_NAMESPACE.length + 1) < 0
      ? ref.path.slice(OFFICIAL_NAMESPACE.length + 1)
      : ref.path;
  }
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/** The host[:port] whose /v2/ API serves this reference's domain. */
export function registryHost(domain: string): string {
  return domain === DOCKER_HUB_DOMAIN ? DOCKER_HUB_REGISTRY : domain;
}

/** The host name of a domain, without port and without IPv6 brackets. */
export function domainHostname(domain: string): string {
  if (domain.startsWith("[")) return domain.slice(1, domain.indexOf("]"));
  const colon = domain.lastIndexOf(":");
  return colon < 0 ? domain : domain.slice(0, colon);
}

/** Loopback registries are the ones that are reasonably spoken to without TLS. */
export function isLoopbackDomain(domain: string): boolean {
  const host = domainHostname(domain).toLowerCase();
  return host === "localhost" || host === "127.0.0.1" || host === "::1";
}

function checkDomain(input: string, domain: string): void {
  let host = domain;
  let port: string | undefined;
  if (domain.startsWith("[")) {
    const close = domain.indexOf("]");
    if (close < 0) throw new ImageReferenceError(input, `registry ${JSON.stringify(domain)} opens an IPv6 address with "[" but never closes it`);
    host = domain.slice(0, close + 1);
    const rest = domain.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw new ImageReferenceError(input, `registry ${JSON.stringify(domain)}: only ":port" may follow an IPv6 address`);
      port = rest.slice(1);
    }
    if (!IPV6.test(host)) throw new ImageReferenceError(input, `registry ${JSON.stringify(domain)}: ${host} is not an IPv6 address`);
  } else {
    const colon = domain.indexOf(":");
    if (colon >= 0) {
      host = domain.slice(0, colon);
      port = domain.slice(colon + 1);
    }
    if (host === "") throw new ImageReferenceError(input, `registry ${JSON.stringify(domain)} has no host name`);
    for (const part of host.split("."))
      if (!DOMAIN_COMPONENT.test(part))
        throw new ImageReferenceError(
          input,
          part === ""
            ? `registry host ${JSON.stringify(host)} has an empty label between dots`
            : `registry host ${JSON.stringify(host)}: label ${JSON.stringify(part)} may only hold letters, digits and inner hyphens`,
          port === undefined && host.includes(":") ? "write an IPv6 address in brackets, e.g. [::1]:5000" : undefined,
        );
  }
  if (port !== undefined && (!/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535))
    throw new ImageReferenceError(input, `registry ${JSON.stringify(domain)}: port ${JSON.stringify(port)} is not a number from 1 to 65535`);
}

function checkPath(input: string, path: string): void {
  if (path === "") throw new ImageReferenceError(input, "the repository name is empty");
  for (const component of path.split("/")) {
    if (component === "") throw new ImageReferenceError(input, `repository ${JSON.stringify(path)} has an empty path component (a doubled or trailing "/")`);
    if (PATH_COMPONENT.test(component)) continue;
    if (PATH_COMPONENT.test(component.toLowerCase()))
      throw new ImageReferenceError(input, `repository names must be lowercase, found ${JSON.stringify(component)}`, `write ${JSON.stringify(component.toLowerCase())}`);
    throw new ImageReferenceError(
      input,
      `repository path component ${JSON.stringify(component)} is not valid`,
      "components are lowercase letters and digits, separated by one \".\", one or two \"_\", or \"-\"s",
    );
  }
}

/**
 * Parses and normalizes an image reference. Throws a ImageReferenceError saying what is wrong. The
 * first path component is a registry when it contains "." or ":", is "localhost", or has
 * uppercase letters (repository paths cannot); otherwise the image is on Docker Hub.
 */
export function parseReference(input: string): ImageReference {
  if (typeof input !== "string") throw new TypeError(`an image reference must be a string, found ${input === null ? "null" : typeof input}`);
  if (input === "") throw new ImageReferenceError(input, "it is empty");
  if (/\s/.test(input)) throw new ImageReferenceError(input, "it contains whitespace");
  let rest = input;

  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (d === "") throw new ImageReferenceError(input, `nothing follows "@"`, `a digest looks like "sha256:<64 hex characters>"`);
    try {
      parseDigest(d);
    } catch (e) {
      throw new ImageReferenceError(input, (e as Error).message);
    }
    digest = d;
  }

  // A tag is after the last ":" that follows the last "/"; an earlier ":" is a registry port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/") && !(rest.startsWith("[") && !rest.includes("/") && colon < rest.indexOf("]"))) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === "") throw new ImageReferenceError(input, `the tag after ":" is empty`);
    if (tag.length > MAX_TAG_LENGTH) throw new ImageReferenceError(input, `the tag is ${tag.length} characters long, at most ${MAX_TAG_LENGTH} are allowed`);
    if (!TAG.test(tag))
      throw new ImageReferenceError(input, `tag ${JSON.stringify(tag)} is not valid`, "tags are letters, digits, \"_\", \".\" and \"-\", not starting with \".\" or \"-\"");
  }

  if (rest === "") throw new ImageReferenceError(input, "the repository name is empty");
  let domain: string;
  let path: string;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? rest : rest.slice(0, slash);
  if (slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase() || first.startsWith("["))) {
    domain = first;
    path = rest.slice(slash + 1);
    checkDomain(input, domain);
  } else {
    if (slash < 0 && first.startsWith("[")) throw new ImageReferenceError(input, `${JSON.stringify(first)} looks like a registry but no repository follows it`);
    domain = DOCKER_HUB_DOMAIN;
    path = rest;
  }
  if (DOCKER_HUB_ALIASES.has(domain.toLowerCase())) {
    domain = DOCKER_HUB_DOMAIN;
    if (!path.includes("/")) path = `${OFFICIAL_NAMESPACE}/${path}`;
  }
  checkPath(input, path);
  if (/^[a-f0-9]{64}$/.test(rest))
    throw new ImageReferenceError(input, "a 64-character hexadecimal string is an image id, not a repository name", `to pin content, write "name@sha256:${rest}"`);
  const nameLength = domain.length + 1 + path.length;
  if (nameLength > MAX_NAME_LENGTH) throw new ImageReferenceError(input, `the repository name is ${nameLength} characters long, at most ${MAX_NAME_LENGTH} are allowed`);

  const ref: ImageReference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  else if (digest === undefined) ref.tag = DEFAULT_TAG;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}
