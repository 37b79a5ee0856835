// A gRPC server's unix socket, shared by the image service and the shim's Task service: bound
// where nobody can reach it, made 0600, then renamed into place; a stale socket is replaced, a
// live one never; and a shutdown that lets calls in progress finish, for a while.
import { randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, mkdtemp, rename, rm, unlink } from "node:fs/promises";
import { createConnection } from "node:net";
import { dirname, join } from "node:path";
import type { Server, ServerCredentials } from "@grpc/grpc-js";

export function bind(server: Server, target: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(target, creds, (err, port) => (err !== null ? reject(err) : resolve(port))));
}

/**
 * Binds the socket where nobody else can reach it yet, makes it 0600, then renames it into
 * place: chmod after binding at the final path would leave a moment in which anyone allowed in
 * the directory could connect (and stay connected), and changing the umask would affect every
 * file the rest of the process creates meanwhile. Returns the socket's inode.
 */
export async function bindUnixSocket(server: Server, path: string, creds: ServerCredentials, what: string): Promise<number> {
  await removeStaleSocket(path, what);
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdtemp makes the directory 0700. Its name is short so that the detour through it does not
  // push a path that fits sun_path over the limit.
  let privateDir: string;
  try {
    privateDir = await mkdtemp(join(dir, ".i"));
  } catch (e) {
    throw new Error(`${what}: cannot create a private directory next to ${path}: ${(e as Error).message}`);
  }
  try {
    const tmp = join(privateDir, randomBytes(2).toString("hex"));
    if (Buffer.byteLength(tmp) > 107)
      throw new TypeError(`invalid ${what} address: socket path ${path} is too long to be created safely (keep it under ${107 - (Buffer.byteLength(tmp) - Buffer.byteLength(path))} bytes)`);
    try {
      await bind(server, `unix://${tmp}`, creds);
    } catch (e) {
      throw new Error(`${what}: cannot listen on ${path}: ${(e as Error).message}`);
    }
    try {
      await chmod(tmp, 0o600);
      // Replaces a stale socket atomically (removeStaleSocket made sure nobody listens there).
      await rename(tmp, path);
      return (await lstat(path)).ino;
    } catch (e) {
      server.forceShutdown();
      throw new Error(`${what}: cannot put the socket in place at ${path}: ${(e as Error).message}`);
    }
  } finally {
    await rm(privateDir, { recursive: true, force: true });
  }
}

/** Clears the way for a socket at `path` if what is there is a socket nobody listens on. */
async function removeStaleSocket(path: string, what: string): Promise<void> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  if (st === undefined) return;
  if (!st.isSocket()) throw new Error(`${what}: ${path} exists and is not a socket; refusing to replace it (remove it, or choose another address)`);
  const probe = await probeSocket(path);
  if (probe === "listening") throw new Error(`${what}: another server is already listening on ${path}`);
  if (probe !== "stale") throw new Error(`${what}: cannot tell whether ${path} is in use (connecting failed with ${probe}); remove it if it is stale`);
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw new Error(`${what}: cannot remove stale socket ${path}: ${e.message}`);
  });
}

/** "listening", "stale" (a socket file nobody listens on), or the errno of a failed connect. */
function probeSocket(path: string): Promise<string> {
  return new Promise((resolve) => {
    const conn = createConnection({ path });
    conn.once("connect", () => {
      conn.destroy();
      resolve("listening");
    });
    conn.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED" || e.code === "ENOENT" ? "stale" : (e.code ?? e.message)));
  });
}

export async function shutdown(server: Server, graceMs = 5000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

