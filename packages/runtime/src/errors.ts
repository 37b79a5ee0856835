// The one error type of tsrun: a message a user can read, and beside it, as fields, what a
// program needs without parsing that message (the config field's JSON pointer, the path, the
// errno). The CLI puts the fields in its --log-format json error line; the shim and other
// library callers read them from the error.
import { ERRNO, errnoName } from "./linux/errno.ts";

export interface ErrorFields {
  /** The container concerned. */
  id?: string;
  /** The field of config.json (or process.json) at fault, as a JSON pointer: "/linux/sysctl/x". */
  pointer?: string;
  /** The file or directory concerned (host path, or a path in the container where it says so). */
  path?: string;
  /** What was being done: "mount", "mkdir", "rmdir", "unshare", "exec", … */
  op?: string;
  /** The errno the kernel gave, as a number: 2. */
  errno?: number;
  /** The errno's name: "ENOENT". */
  code?: string;
}

const FIELD_NAMES = ["id", "pointer", "path", "op", "errno", "code"] as const satisfies readonly (keyof ErrorFields)[];

export interface TsrunErrorOptions extends ErrorFields {
  cause?: unknown;
}

/**
 * An error the user can act on (bad input, a container in the wrong state, a host without a
 * feature): printed as its message alone, exit status 1. Anything else is a bug in tsrun.
 */
export class TsrunError extends Error {
  override name = "TsrunError";
  /** Only the fields that are known; an errno without its name (or the reverse) gets the other. */
  readonly fields: Readonly<ErrorFields>;

  constructor(message: string, options: TsrunErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.fields = pickFields(options);
  }
}

function pickFields(from: ErrorFields): ErrorFields {
  const out: ErrorFields = {};
  for (const k of FIELD_NAMES) if (from[k] !== undefined && from[k] !== "") (out as Record<string, unknown>)[k] = from[k];
  // errno 0 is no error at all: a report that has only that says nothing of a cause.
  if (out.errno === 0) delete out.errno;
  if (out.errno !== undefined && out.code === undefined) out.code = errnoName(out.errno);
  if (out.code !== undefined && out.errno === undefined && ERRNO[out.code] !== undefined) out.errno = ERRNO[out.code];
  return out;
}

/**
 * The fields of any error: a TsrunError's own; for a failed system call (libc SysError, a node:fs
 * error) its errno, name, call and path. Empty for anything else.
 */
export function errorFields(e: unknown): ErrorFields {
  if (e instanceof TsrunError) return { ...e.fields };
  if (typeof e !== "object" || e === null) return {};
  const x = e as { errno?: unknown; code?: unknown; path?: unknown; syscall?: unknown; call?: unknown; what?: unknown };
  const fields: ErrorFields = {};
  // node:fs gives a negative errno; libc's SysError the positive one.
  if (typeof x.errno === "number") fields.errno = Math.abs(x.errno);
  if (typeof x.code === "string" && /^E[A-Z0-9]+$/.test(x.code)) fields.code = x.code;
  if (typeof x.path === "string") fields.path = x.path;
  const op = typeof x.syscall === "string" ? x.syscall : typeof x.call === "string" ? x.call : undefined;
  if (op !== undefined) fields.op = op;
  return fields.errno === undefined && fields.code === undefined ? {} : pickFields(fields);
}
