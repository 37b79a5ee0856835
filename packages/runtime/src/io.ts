import { renameSync, writeFileSync, writeSync } from "node:fs";

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
 * (state lives on tmpfs), not surviving a power cut.
 */
export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}
