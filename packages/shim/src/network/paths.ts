// Where a container's network attachment is recorded. Kept apart (and light: node built-ins
// only) because `delete` checks for a record on every call, on the start path's budget.
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";

/** The network's directory in an image store: its conflist, IPAM leases, namespaces and records. */
export function networkDir(imageRoot: string): string {
  return join(imageRoot, "networks");
}

/**
 * The CNI container id of tsrun's container `id` under the state root `root`: unique on the
 * host as the spec asks (two roots may each have a container "web"), and made only of hex
 * digits, which the spec's alphabet (letters, digits, _ . -) always accepts.
 */
export function cniContainerId(root: string, id: string): string {
  return createHash("sha256").update(`${resolve(root)}\0${id}`).digest("hex");
}

export function recordPath(imageRoot: string, cid: string): string {
  return join(networkDir(imageRoot), "attachments", `${cid}.json`);
}
