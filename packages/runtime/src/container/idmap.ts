// User namespaces that carry the mapping of an idmapped mount. A throwaway executor unshares a
// user namespace and waits; tsrun writes the mapping, keeps an fd of the namespace and lets the
// executor go. The fd is handed to the container's executor for mount_setattr(MOUNT_ATTR_IDMAP).
import { openSync, writeFileSync } from "node:fs";
import type { LinuxIDMapping } from "@tsrun/ocispec/core";
import { CLONE_FLAGS } from "@tsrun/ocispec/core";
import { SYNC } from "../plan/ops.ts";
import { encodePlan } from "../plan/wire.ts";
import * as linux from "../linux/index.ts";
import { cloneFlagNames, ContainerError, errnoText, executorErrorFields } from "./errors.ts";
import type { Op } from "../plan/ops.ts";

const fmt = (maps: LinuxIDMapping[]) => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");

/** The helper's steps: make a user namespace, wait for its maps, wait to be let go. */
const HELPER_OPS: readonly Op[] = [
  { op: "unshare", flags: CLONE_FLAGS.user },
  { op: "sync", code: SYNC.USERNS },
  { op: "sync", code: SYNC.NAMESPACES },
];

/**
 * What the namespace helper said instead of the expected sync, as a user can act on it. The
 * executor's own text for an unshare is the raw flag number: the step is named from the plan.
 */
export function helperFailure(m: linux.Message, step: string, ops: readonly Op[] = HELPER_OPS): ContainerError {
  if (m.type !== "error") {
    const why = m.type === "eof" ? "the helper process exited without a word" : `it sent "${m.type}" instead`;
    return new ContainerError(`idmapped mount: cannot ${step}: ${why}`);
  }
  const op = ops[m.op];
  const text = op?.op === "unshare" ? `unshare ${cloneFlagNames(op.flags)}` : m.text;
  const errno = errnoText(m.errno, linux.strerror);
  const why = errno === undefined ? text || "the helper failed without an errno" : `${errno}${text ? ` (${text})` : ""}`;
  return new ContainerError(`idmapped mount: cannot ${step}: ${why}`, executorErrorFields(op, m.errno));
}

export function idmapUserns(uid: LinuxIDMapping[], gid: LinuxIDMapping[]): number {
  const plan = encodePlan([...HELPER_OPS]);
  const { pid, sync } = linux.spawnExecutor(plan, { stdio: [-1, -1, -1] });
  try {
    const first = sync.recv(10_000);
    if (first.type !== "sync" || first.code !== SYNC.USERNS) throw helperFailure(first, "make a user namespace for the mapping");
    writeFileSync(`/proc/${pid}/uid_map`, fmt(uid));
    writeFileSync(`/proc/${pid}/setgroups`, "deny");
    writeFileSync(`/proc/${pid}/gid_map`, fmt(gid));
    sync.answer(true);
    const second = sync.recv(10_000);
    if (second.type !== "sync") throw helperFailure(second, "hold the mapped user namespace");
    return openSync(`/proc/${pid}/ns/user`, "r");
  } finally {
    sync.close();
    linux.kill(pid, 9);
    linux.waitpid(pid, 0);
  }
}
