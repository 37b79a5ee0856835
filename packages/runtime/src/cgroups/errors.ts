// Every failure in this module is a CgroupError: what was being done (op), on which path, and the
// errno name the kernel gave (or EINVAL for input we refuse), so that a caller can both print a
// useful message and branch on `code` without parsing text.

import { TsrunError } from "../errors.ts";

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EBUSY: "device or resource busy",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EINVAL: "invalid argument",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  ESRCH: "no such process",
  ENODEV: "no such device",
  EOPNOTSUPP: "operation not supported",
  ENOTSUP: "operation not supported",
  ENAMETOOLONG: "file name too long",
  ENOTDIR: "not a directory",
  EEXIST: "file exists",
  ETIMEDOUT: "timed out",
  EAGAIN: "resource temporarily unavailable",
};

export class CgroupError extends TsrunError {
  override name = "CgroupError";
  /** The errno name (ENOENT, EBUSY, …); EINVAL for input refused before touching the kernel. */
  readonly code: string;
  /** The cgroup directory or file concerned, when there is one. */
  readonly path: string | undefined;
  /** What was being done: "mkdir", "write", "rmdir", "freeze", "resolve", … */
  readonly op: string;

  constructor(op: string, path: string | undefined, code: string, detail?: string, options?: { cause?: unknown }) {
    const where = path === undefined ? "" : ` ${path}`;
    const why = detail ?? ERRNO_TEXT[code] ?? code;
    super(`cgroup ${op}${where}: ${code}: ${why}`, { op: `cgroup ${op}`, path, code, cause: options?.cause });
    this.op = op;
    this.path = path;
    this.code = code;
  }
}

/**
 * `--systemd-cgroup` asked for a driver tsrun does not have. A separate class so that the CLI can
 * say so without matching on text.
 */
export class SystemdCgroupUnsupportedError extends CgroupError {
  override name = "SystemdCgroupUnsupportedError";
}

/**
 * The error to throw for a failed node:fs call: a CgroupError for `op` on `path` when the failure
 * carries an errno, the original error (a bug, not a kernel answer) otherwise.
 */
export function fsError(op: string, path: string, err: unknown, detail?: string): unknown {
  if (err instanceof CgroupError) return err;
  const code = errnoCode(err);
  if (code === undefined) return err;
  return new CgroupError(op, path, code, detail === undefined ? undefined : `${ERRNO_TEXT[code] ?? code}: ${detail}`, { cause: err });
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}
