// net_prio (v1): egress priority per network interface, one "name prio" line per write.
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, intText, RESOURCES } from "../values.ts";

export const netPrioV1 = controller({
  name: "net_prio",
  requested(r: LinuxResources): Requested[] {
    return (r.network?.priorities ?? []).map((_, i) => ({ pointer: `${RESOURCES}/network/priorities/${i}`, files: ["net_prio.ifpriomap"] }));
  },
  apply(dir: string, r: LinuxResources): void {
    const file = `${dir}/net_prio.ifpriomap`;
    for (const p of r.network?.priorities ?? []) if (given(p)) writeText(file, `${p.name} ${intText(p.priority, file)}`);
  },
});
