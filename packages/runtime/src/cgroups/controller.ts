// What every per-controller resource file (v1/*.ts, v2/*.ts) provides, and the probe through
// which resources.ts asks whether this host can apply a setting.

import type { LinuxResources } from "@tsrun/ocispec/core";

/** One setting the config asks for, and the files that can apply it (any one of them). */
export interface Requested {
  /** JSON pointer into config.json, e.g. "/linux/resources/memory/swap". */
  pointer: string;
  /** Any one of these existing makes the setting applicable; [] means never here (see why). */
  files: readonly string[];
  /** Why it cannot be applied when `files` is [] or `ok` says no. */
  why?: string;
  /** Further condition (e.g. a parent's setting) besides the file existing. */
  ok?: (probe: Probe) => boolean;
}

/** Answers about the container's cgroup directory, or, before create(), its nearest existing ancestor. */
export interface Probe {
  readonly dir: string;
  /** Whether `file` is (or, once the container's cgroup exists, will be) in the container's directory. */
  has(file: string): boolean;
  /** The file's trimmed text, undefined when it cannot be read. */
  read(file: string): string | undefined;
}

export interface ResourceController {
  /** v1: the controller name (paths() key). v2: the name in cgroup.controllers ("" for core files). */
  readonly name: string;
  /** The settings of `resources` this controller handles, present and not null. */
  requested(resources: LinuxResources): Requested[];
  needsToHandle(resources: LinuxResources): boolean;
  /** Writes the settings into `dir`. Throws a CgroupError naming the file, the value and the errno. */
  apply(dir: string, resources: LinuxResources, warn?: (message: string) => void): void;
}

/** needsToHandle from requested: the common case. */
export function controller(c: Omit<ResourceController, "needsToHandle">): ResourceController {
  return { ...c, needsToHandle: (r) => c.requested(r).length > 0 };
}
