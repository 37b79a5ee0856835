// cpuset (v2): cpuset.cpus and cpuset.mems. Unlike v1, an empty cpuset in v2 means "the parent's
// effective set", so nothing needs filling at creation.
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, RESOURCES } from "../values.ts";

export const cpusetV2 = controller({
  name: "cpuset",
  requested(r: LinuxResources): Requested[] {
    const c = r.cpu;
    if (!given(c)) return [];
    const out: Requested[] = [];
    if (given(c.cpus) && c.cpus !== "") out.push({ pointer: `${RESOURCES}/cpu/cpus`, files: ["cpuset.cpus"] });
    if (given(c.mems) && c.mems !== "") out.push({ pointer: `${RESOURCES}/cpu/mems`, files: ["cpuset.mems"] });
    return out;
  },
  apply(dir: string, r: LinuxResources): void {
    const c = r.cpu;
    if (!given(c)) return;
    if (given(c.cpus) && c.cpus !== "") writeText(`${dir}/cpuset.cpus`, c.cpus);
    if (given(c.mems) && c.mems !== "") writeText(`${dir}/cpuset.mems`, c.mems);
  },
});
