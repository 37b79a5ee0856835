// hugetlb (v1): per page size, hugetlb.<size>.limit_in_bytes, and the reservation limit
// hugetlb.<size>.rsvd.limit_in_bytes (Linux 5.7+) to the same value when the kernel has it, so
// that reserved-but-unfaulted pages (mmap(MAP_HUGETLB) without touching) count as well.

import { existsSync } from "node:fs";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, hugepageName, RESOURCES, v1Limit } from "../values.ts";

export const hugetlbV1 = controller({
  name: "hugetlb",
  requested(r: LinuxResources): Requested[] {
    return (r.hugepageLimits ?? []).map((h, i) => ({ pointer: `${RESOURCES}/hugepageLimits/${i}`, files: [`hugetlb.${h.pageSize}.limit_in_bytes`], why: `no ${h.pageSize} huge pages on this host` }));
  },
  apply(dir: string, r: LinuxResources): void {
    for (const h of r.hugepageLimits ?? []) {
      if (!given(h)) continue;
      const size = hugepageName(h.pageSize);
      const file = `${dir}/hugetlb.${size}.limit_in_bytes`;
      writeText(file, v1Limit(h.limit, file));
      const rsvd = `${dir}/hugetlb.${size}.rsvd.limit_in_bytes`;
      if (existsSync(rsvd)) writeText(rsvd, v1Limit(h.limit, rsvd));
    }
  },
});
