import { closeSync, constants, openSync, renameSync, unlinkSync, writeSync } from "node:fs";

/**
 * Writes all of `text` to a file descriptor synchronously. Cheaper at start-up than
 * process.stdout (whose stream set-up costs milliseconds in Bun) and never loses output on exit.
 */
export function writeAll(fd: number, data: string | Uint8Array): void {
  let buf = typeof data === "string" ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  while (buf.length > 0) {
    try {
      const n = writeSync(fd, buf);
      buf = buf.subarray(n);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Bun.sleepSync(1);
    }
  }
}

/**
 * Replaces `path` so that a reader sees the old file or the new one, never half of one: write a
 * temporary file beside it, rename it over. No fsync: what matters is the rename's atomicity
 * (state lives on tmpfs), not surviving a power cut. The temporary file is new (O_EXCL) and never
 * a symlink (O_NOFOLLOW), under a name nobody can guess ahead: the directory may be another
 * user's to write (a --pid-file in /tmp), and a planted link would make root write through it.
 * rename() replaces a link at `path` itself rather than following it.
 */
export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash + 1);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  for (let attempt = 0; ; attempt++) {
    const tmp = `${dir}.${path.slice(slash + 1)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    let fd: number;
    try {
      fd = openSync(tmp, flags, mode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && attempt < 8) continue;
      throw e;
    }
    try {
      writeAll(fd, data);
      closeSync(fd);
      renameSync(tmp, path);
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {}
      throw e;
    }
    return;
  }
}
