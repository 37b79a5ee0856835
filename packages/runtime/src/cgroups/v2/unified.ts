// linux.resources.unified (v2 only): raw "file → value" pairs written as given into the
// container's cgroup2 directory, after every structured setting (so they win, as with runc). A
// key must name a file of that directory: no "/", no "." or "..". The file existing is what makes
// a key applicable (controller files appear only where the controller is enabled).

import type { LinuxResources } from "@tsrun/ocispec/core";
import { pointerToken } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, invalid, RESOURCES } from "../values.ts";

/** Whether `key` can only name a file directly in the cgroup directory. */
export function validUnifiedKey(key: string): boolean {
  return key !== "" && key !== "." && key !== ".." && !key.includes("/") && !key.includes("\0");
}

export const unifiedV2 = controller({
  name: "",
  requested(r: LinuxResources): Requested[] {
    return Object.keys(r.unified ?? {})
      .filter((k) => given(r.unified?.[k]))
      .map((k) => ({ pointer: `${RESOURCES}/unified/${pointerToken(k)}`, files: validUnifiedKey(k) ? [k] : [], why: validUnifiedKey(k) ? `no file ${k} in the container's cgroup (controller not enabled, or no such file)` : "not a file name" }));
  },
  apply(dir: string, r: LinuxResources): void {
    for (const [key, value] of Object.entries(r.unified ?? {})) {
      if (!given(value)) continue;
      if (!validUnifiedKey(key)) throw invalid(`${dir}/${key}`, key, "linux.resources.unified keys must be file names in the cgroup directory");
      writeText(`${dir}/${key}`, value);
    }
  },
});
