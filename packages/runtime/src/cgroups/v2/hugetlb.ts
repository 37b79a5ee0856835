// hugetlb (v2): hugetlb.<size>.max per page size, and hugetlb.<size>.rsvd.max (reservations,
// Linux 5.7+) to the same value when the kernel has it (see v1/hugetlb.ts).
import { existsSync } from "node:fs";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, hugepageName, RESOURCES, v2Limit } from "../values.ts";

export const hugetlbV2 = controller({
  name: "hugetlb",
  requested(r: LinuxResources): Requested[] {
    return (r.hugepageLimits ?? []).map((h, i) => ({ pointer: `${RESOURCES}/hugepageLimits/${i}`, files: [`hugetlb.${h.pageSize}.max`], why: `no ${h.pageSize} huge pages on this host` }));
  },
  apply(dir: string, r: LinuxResources): void {
    for (const h of r.hugepageLimits ?? []) {
      if (!given(h)) continue;
      const size = hugepageName(h.pageSize);
      const file = `${dir}/hugetlb.${size}.max`;
      writeText(file, v2Limit(h.limit, file));
      const rsvd = `${dir}/hugetlb.${size}.rsvd.max`;
      if (existsSync(rsvd)) writeText(rsvd, v2Limit(h.limit, rsvd));
    }
  },
});
