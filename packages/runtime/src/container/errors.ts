import { CLONE_FLAGS, type NamespaceType } from "@tsrun/ocispec/core";
import { TsrunError, type ErrorFields } from "../errors.ts";
import { errnoName } from "../linux/errno.ts";
import type { Op } from "../plan/ops.ts";

/** A container operation that failed for a reason the user can act on. */
export class ContainerError extends TsrunError {
  override name = "ContainerError";
}

/** CLONE_NEW* flags by name, for messages: "unshare 0x10000000" leaves the user guessing. */
const CLONE_NAMES: Readonly<Record<NamespaceType, string>> = {
  mount: "CLONE_NEWNS", cgroup: "CLONE_NEWCGROUP", uts: "CLONE_NEWUTS", ipc: "CLONE_NEWIPC",
  user: "CLONE_NEWUSER", pid: "CLONE_NEWPID", network: "CLONE_NEWNET", time: "CLONE_NEWTIME",
};

/** "CLONE_NEWUSER|CLONE_NEWNS"; bits that name no namespace stay in hex. */
export function cloneFlagNames(flags: number): string {
  const names: string[] = [];
  let rest = flags;
  for (const [type, bit] of Object.entries(CLONE_FLAGS) as [NamespaceType, number][])
    if (flags & bit) {
      names.push(CLONE_NAMES[type]);
      rest &= ~bit;
    }
  if (rest) names.push(`0x${(rest >>> 0).toString(16)}`);
  return names.length ? names.join("|") : "0";
}

/**
 * "ENOENT: No such file or directory" for an errno, or undefined for 0: an executor that reports
 * no errno (a hook's exit status) has nothing to say there, and "errno 0: Success" misleads.
 */
export function errnoText(errno: number, strerror: (n: number) => string): string | undefined {
  return errno ? `${errnoName(errno)}: ${strerror(errno)}` : undefined;
}

/** The path an executor step works on, as the container sees it when the step is inside the rootfs. */
function opPath(op: Op): string | undefined {
  const inRoot = "inRoot" in op && op.inRoot === true;
  const p = op.op === "exec" ? op.file : "path" in op ? op.path : "target" in op ? op.target : undefined;
  if (typeof p !== "string") return undefined;
  return inRoot ? `/${p.replace(/^\/+/, "").replace(/^\.$/, "")}` : p;
}

/**
 * The fields of an executor failure: the step (`op`), what it worked on (`path`), the errno. For
 * TsrunError's options, beside the message create and exec write.
 */
export function executorErrorFields(op: Op | undefined, errno: number): ErrorFields {
  const fields: ErrorFields = { errno };
  if (op === undefined) return fields;
  fields.op = op.op;
  const path = opPath(op);
  if (path !== undefined) fields.path = path;
  return fields;
}
