// A container's status is read from the live process, not trusted from disk: state.json says
// which phase set-up reached, /proc says whether the init still runs (same pid, same start
// time), the freezer says whether it is paused, and the exec fifo says whether `start` has
// happened.
import { existsSync } from "node:fs";
import type { State } from "@tsrun/ocispec/core";
import { cgroupManagerFromJSON } from "../cgroups/manager.ts";
import { cgroupPaused } from "../cgroups/pause.ts";
import { isAlive } from "./proc.ts";
import type { ContainerRecord, Store } from "./store.ts";

export type Status = "creating" | "created" | "running" | "paused" | "stopped";

export function statusOf(store: Store, rec: ContainerRecord, creatorAlive: () => boolean): Status {
  if (rec.phase === "creating") return creatorAlive() ? "creating" : "stopped";
  if (!isAlive(rec.pid, rec.pidStartTime)) return "stopped";
  // Before the fifo, as runc: a created container can be paused, and resume gives it back created.
  if (isPaused(rec)) return "paused";
  if (existsSync(store.fifoPath(rec.id))) return "created";
  return "running";
}

export function isPaused(rec: ContainerRecord): boolean {
  if (rec.cgroup === undefined) return false;
  let paths: Record<string, string>;
  try {
    paths = cgroupManagerFromJSON(rec.cgroup).paths();
  } catch {
    return false;
  }
  return cgroupPaused(paths);
}

/** The runtime-spec state document (what `tsrun state` prints and hooks read on stdin). */
export function stateDocument(rec: ContainerRecord, status: Status): State & Record<string, unknown> {
  const doc: State & Record<string, unknown> = {
    ociVersion: rec.ociVersion,
    id: rec.id,
    pid: status === "stopped" ? 0 : rec.pid,
    status,
    bundle: rec.bundle,
    rootfs: rec.rootfs,
    created: rec.created,
    owner: rec.owner,
  };
  if (rec.annotations && Object.keys(rec.annotations).length) doc.annotations = rec.annotations;
  return doc;
}
