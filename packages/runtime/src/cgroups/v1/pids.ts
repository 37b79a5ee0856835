// pids (v1): the task limit, pids.max.
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, pidsMax, RESOURCES } from "../values.ts";

export const pidsV1 = controller({
  name: "pids",
  requested(r: LinuxResources): Requested[] {
    return given(r.pids) && given(r.pids.limit) ? [{ pointer: `${RESOURCES}/pids/limit`, files: ["pids.max"] }] : [];
  },
  apply(dir: string, r: LinuxResources): void {
    if (given(r.pids) && given(r.pids.limit)) writeText(`${dir}/pids.max`, pidsMax(r.pids.limit));
  },
});
