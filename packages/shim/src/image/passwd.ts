// Resolves an image's `User` string ("", name, uid, name:group, uid:gid, name:gid, uid:group) to the
// uid, gid and supplementary gids a container process runs with, from the image's own /etc/passwd
// and /etc/group — the rules of containerd's oci.WithUser / WithAdditionalGIDs:
//
//   - a numeric uid needs no passwd entry (gid 0 then); a name must have one;
//   - "x:y" with both parts numeric is taken as is; a name part is looked up (user in passwd,
//     group in group), and must exist;
//   - supplementary gids: the primary gid first, then every group that lists the user's name as a
//     member (a group named like the user is skipped: it is the user's own group, already primary);
//   - "" is root, and still gets root's memberships from /etc/group.
//
// HOME comes from the passwd entry of the resulting uid, "/" without one (runc's default; tsrun's
// executor does not look at passwd itself, so the spec must carry HOME).
//
// The rootfs is untrusted: an image may make /etc/passwd (or /etc) a symlink to a host path such as
// /etc/shadow, or a fifo or a device node. Files are therefore resolved component by component with
// symlinks interpreted relative to the rootfs (never above it), opened without following a final
// symlink, checked to be regular files, checked again after opening through /proc/self/fd (which
// names what the kernel actually opened, so a rename race cannot smuggle a host file in), and read
// up to a size cap.
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, realpathSync } from "node:fs";

/** One /etc/passwd line. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** One /etc/group line. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** What a `User` string resolves to. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** The primary gid first, then the memberships from /etc/group (containerd's order). */
  additionalGids: number[];
  /** The passwd home of `uid`, "/" when it has no entry. */
  home: string;
  /** The passwd name of `uid`, when it has an entry. */
  name?: string;
}

/** The contents of the two files, `null` for a file the rootfs does not have. */
export interface UserDatabase {
  passwd: string | null;
  group: string | null;
}

export interface ResolveUserOptions {
  /** What the user string belongs to, for errors: e.g. `image docker.io/library/busybox:latest`. */
  image?: string;
  /** Where the files came from, for errors (the rootfs directory). */
  rootfs?: string;
}

export class UserResolutionError extends Error {
  override name = "UserResolutionError";
}

/** A larger passwd/group is no plausible image (and reading it whole would be a memory hazard). */
export const MAX_USER_FILE_BYTES = 4 << 20;

/** runc and containerd refuse ids above MaxInt32; the kernel's own limit is 2^32-2. */
const MAX_ID = 0x7fffffff;

const isNumeric = (s: string): boolean => /^[+-]?[0-9]+$/.test(s);

/** A field that must be a plain decimal id; `undefined` for anything else. */
function idField(s: string | undefined): number | undefined {
  if (s === undefined || !/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function lines(text: string): string[][] {
  const out: string[][] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    // Comments, and NIS compat entries (+name, -name) that only mean something to glibc's nss.
    if (line === "" || line.startsWith("#") || line.startsWith("+") || line.startsWith("-")) continue;
    out.push(line.split(":"));
  }
  return out;
}

/**
 * Parses /etc/passwd. A line whose uid or gid is not a number is skipped rather than read as 0
 * (libcontainer's parser turns it into root, which a hostile image could exploit).
 */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of lines(text)) {
    const uid = idField(f[2]);
    const gid = idField(f[3]);
    if (!f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? "", shell: f[6] ?? "" });
  }
  return out;
}

/** Parses /etc/group (name:password:gid:member,member…). */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of lines(text)) {
    const gid = idField(f[2]);
    if (!f[0] || gid === undefined) continue;
    const members = (f[3] ?? "")
      .split(",")
      .map((m) => m.trim())
      .filter((m) => m !== "");
    out.push({ name: f[0], gid, members });
  }
  return out;
}

function parseId(text: string, what: "uid" | "gid", userSpec: string, where: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_ID) throw new UserResolutionError(`${where}invalid user ${JSON.stringify(userSpec)}: ${what} ${text} is out of range (0 to ${MAX_ID})`);
  return n;
}

/**
 * Resolves `userSpec` against the contents of /etc/passwd and /etc/group (pure: the caller reads
 * the files; see resolveUser for reading them from a rootfs).
 */
export function resolveUserFrom(userSpec: string, db: UserDatabase, opts: ResolveUserOptions = {}): ResolvedUser {
  const where = opts.image ? `${opts.image}: ` : "";
  const inRootfs = opts.rootfs ? ` of the rootfs ${opts.rootfs}` : " of the rootfs";
  const users = db.passwd === null ? null : parsePasswd(db.passwd);
  const groups = db.group === null ? null : parseGroup(db.group);

  const userByName = (name: string): PasswdEntry => {
    if (users === null) throw new UserResolutionError(`${where}cannot resolve user ${JSON.stringify(userSpec)}: there is no /etc/passwd${inRootfs} (use a numeric uid, or add the user to the image)`);
    const u = users.find((e) => e.name === name);
    if (!u) throw new UserResolutionError(`${where}cannot resolve user ${JSON.stringify(userSpec)}: no user named ${JSON.stringify(name)} in /etc/passwd${inRootfs}`);
    return u;
  };
  const groupByName = (name: string): GroupEntry => {
    if (groups === null) throw new UserResolutionError(`${where}cannot resolve user ${JSON.stringify(userSpec)}: there is no /etc/group${inRootfs} (use a numeric gid, or add the group to the image)`);
    const g = groups.find((e) => e.name === name);
    if (!g) throw new UserResolutionError(`${where}cannot resolve user ${JSON.stringify(userSpec)}: no group named ${JSON.stringify(name)} in /etc/group${inRootfs}`);
    return g;
  };
  const userById = (uid: number): PasswdEntry | undefined => users?.find((e) => e.uid === uid);

  const parts = userSpec === "" ? [] : userSpec.split(":");
  let uid: number;
  let gid: number;
  if (parts.length === 0) {
    uid = 0;
    gid = 0;
  } else if (parts.length === 1) {
    const [u] = parts as [string];
    if (u === "") throw new UserResolutionError(`${where}invalid user ${JSON.stringify(userSpec)}: empty user name`);
    if (isNumeric(u)) {
      uid = parseId(u, "uid", userSpec, where);
      // A uid the image does not know is allowed (it is common to run as an arbitrary uid); its
      // group is then root's, as in containerd and Docker.
      gid = userById(uid)?.gid ?? 0;
    } else {
      const e = userByName(u);
      uid = e.uid;
      gid = e.gid;
    }
  } else if (parts.length === 2) {
    const [u, g] = parts as [string, string];
    if (u === "" || g === "") throw new UserResolutionError(`${where}invalid user ${JSON.stringify(userSpec)}: expected user:group with neither part empty`);
    uid = isNumeric(u) ? parseId(u, "uid", userSpec, where) : userByName(u).uid;
    gid = isNumeric(g) ? parseId(g, "gid", userSpec, where) : groupByName(g).gid;
  } else {
    throw new UserResolutionError(`${where}invalid user ${JSON.stringify(userSpec)}: expected user, uid, user:group or uid:gid`);
  }

  const entry = userById(uid);
  // Memberships are by the passwd name of the resulting uid (containerd looks the uid up again,
  // so "1000:staff" gets the groups of uid 1000's name); a uid without an entry has none.
  const name = parts.length === 0 ? "root" : entry?.name;
  const additionalGids = [gid];
  if (name !== undefined && groups !== null) {
    for (const g of groups) {
      if (g.name === name || !g.members.includes(name)) continue;
      if (!additionalGids.includes(g.gid)) additionalGids.push(g.gid);
    }
  }
  const result: ResolvedUser = { uid, gid, additionalGids, home: entry?.home || "/" };
  if (entry) result.name = entry.name;
  return result;
}

/** Reads /etc/passwd and /etc/group of `rootfsDir` (see readRootfsFile) and resolves `userSpec`. */
export function resolveUser(userSpec: string, rootfsDir: string, opts: ResolveUserOptions = {}): ResolvedUser {
  const o = { rootfs: rootfsDir, ...opts };
  const read = (p: string): string | null => {
    try {
      return readRootfsFile(rootfsDir, p);
    } catch (e) {
      const where = o.image ? `${o.image}: ` : "";
      throw new UserResolutionError(`${where}cannot resolve user ${JSON.stringify(userSpec)}: ${(e as Error).message}`);
    }
  };
  return resolveUserFrom(userSpec, { passwd: read("/etc/passwd"), group: read("/etc/group") }, o);
}

const MAX_SYMLINKS = 40; // the kernel's limit (ELOOP)

/** `errno` of a node:fs error, or undefined. */
const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/**
 * The host path of `path` inside `root`, with every symlink interpreted as if `root` were `/`
 * (an absolute target starts again at `root`, `..` stops at `root`). `null` when a component does
 * not exist. The last component is resolved too when it is a symlink.
 */
export function resolveInRoot(root: string, path: string): string | null {
  const base = realpathSync(root);
  const stack: string[] = []; // resolved components below root
  let pending = path.split("/").filter((c) => c !== "" && c !== ".");
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === "..") {
      stack.pop();
      continue;
    }
    const host = [base, ...stack, c].join("/");
    let st;
    try {
      st = lstatSync(host);
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return null;
      throw e;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new Error(`too many levels of symbolic links resolving ${path} in ${root}`);
      const target = readlinkSync(host);
      if (target.startsWith("/")) stack.length = 0;
      pending = [...target.split("/").filter((t) => t !== "" && t !== "."), ...pending];
      continue;
    }
    if (pending.length > 0 && !st.isDirectory()) return null; // like ENOTDIR
    stack.push(c);
  }
  return [base, ...stack].join("/");
}

/**
 * Reads a small regular file of an untrusted rootfs, `path` resolved inside `root` (see
 * resolveInRoot). `null` when it does not exist; an error when it is not a regular file, escapes
 * the root, or is larger than `maxBytes`.
 */
export function readRootfsFile(root: string, path: string, maxBytes = MAX_USER_FILE_BYTES): string | null {
  const host = resolveInRoot(root, path);
  if (host === null) return null;
  const shown = `${path} in the rootfs ${root}`;
  // Checked before opening: opening a fifo would block, opening a device could have side effects.
  let pre;
  try {
    pre = lstatSync(host);
  } catch (e) {
    if (code(e) === "ENOENT") return null;
    throw e;
  }
  if (!pre.isFile()) throw new Error(`${shown} is not a regular file`);
  let fd: number;
  try {
    fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    if (code(e) === "ELOOP") throw new Error(`${shown} changed into a symlink while being read`);
    if (code(e) === "ENOENT") return null;
    throw new Error(`cannot open ${shown}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${shown} is not a regular file`);
    checkOpenedInside(fd, realpathSync(root), shown);
    if (st.size > maxBytes) throw new Error(`${shown} is ${st.size} bytes, more than the ${maxBytes} allowed`);
    // Read to EOF rather than st.size bytes: the file can change size meanwhile, and a short read
    // must not pass for the whole file.
    const chunks: Buffer[] = [];
    let n = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.max(4096, Math.min(st.size + 1, maxBytes + 1 - n)));
      const r = readSync(fd, chunk, 0, chunk.length, null);
      if (r === 0) break;
      n += r;
      if (n > maxBytes) throw new Error(`${shown} is more than the ${maxBytes} bytes allowed`);
      chunks.push(chunk.subarray(0, r));
    }
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * The path walk above is check-then-use: a component swapped for a symlink between the walk and
 * open() would be followed by open(). The kernel's own name for the open file tells whether that
 * happened. Without /proc there is nothing to compare against, and the walk stands alone.
 */
function checkOpenedInside(fd: number, realRoot: string, shown: string): void {
  let actual: string;
  try {
    actual = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return;
  }
  const prefix = realRoot.endsWith("/") ? realRoot : `${realRoot}/`;
  if (!actual.startsWith(prefix)) throw new Error(`${shown} resolved outside the rootfs (to ${actual}); refusing to read it`);
}
