// The runtime settings a task's Create resolved, saved in its bundle (runc's options.json, same
// keys), and their defaults. Light on purpose: `shim delete`, which containerd runs after every
// task, reads them without loading the Task service or the runtime.
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";

export const DEFAULT_BINARY = "tsrun";
/** Container state lives under <root>/<namespace>, as the runc shim keeps it under /run/containerd/runc. */
export const DEFAULT_ROOT = "/run/containerd/tsrun";

/** The runtime settings Create resolved, saved in the bundle for `shim delete` after a crash. */
export interface SavedOptions {
  binary_name: string;
  root: string;
}

/** Settings saved by Create, or the defaults for a bundle that never got that far. */
export function loadSavedOptions(bundle: string): SavedOptions {
  const path = join(bundle, "options.json");
  const defaults = { binary_name: DEFAULT_BINARY, root: DEFAULT_ROOT };
  if (!existsSync(path)) return defaults;
  try {
    const o = JSON.parse(readFileSync(path, "utf8")) as Partial<SavedOptions>;
    return { binary_name: o.binary_name || defaults.binary_name, root: o.root || defaults.root };
  } catch {
    return defaults;
  }
}

/** Whether a BinaryName names tsrun itself (empty, `tsrun`, or a path to a file called tsrun): then the library runs it. */
export function namesTsrun(binary: string): boolean {
  return binary === "" || basename(binary) === DEFAULT_BINARY;
}
