// rdma (v1 and v2 alike): rdma.max, one "device hca_handle=N hca_object=M" line per device; a
// count left out keeps its current value.
import type { LinuxResources } from "@tsrun/ocispec/core";
import { pointerToken } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, intText, invalid, RESOURCES } from "../values.ts";

export const rdma = controller({
  name: "rdma",
  requested(r: LinuxResources): Requested[] {
    return Object.keys(r.rdma ?? {}).filter((dev) => given(r.rdma?.[dev])).map((dev) => ({ pointer: `${RESOURCES}/rdma/${pointerToken(dev)}`, files: ["rdma.max"] }));
  },
  apply(dir: string, r: LinuxResources): void {
    const file = `${dir}/rdma.max`;
    for (const [dev, lim] of Object.entries(r.rdma ?? {})) {
      if (!given(lim)) continue;
      if (!/^[^\s=]+$/.test(dev)) throw invalid(file, dev, "not an rdma device name");
      const parts = [dev];
      if (given(lim.hcaHandles)) parts.push(`hca_handle=${intText(lim.hcaHandles, file)}`);
      if (given(lim.hcaObjects)) parts.push(`hca_object=${intText(lim.hcaObjects, file)}`);
      if (parts.length > 1) writeText(file, parts.join(" "));
    }
  },
});
