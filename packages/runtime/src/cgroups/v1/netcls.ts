// net_cls (v1): the class id put on the cgroup's packets (tc and iptables match on it).
import type { LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { given, givenNonZero, intText, RESOURCES } from "../values.ts";

export const netClsV1 = controller({
  name: "net_cls",
  requested(r: LinuxResources): Requested[] {
    return given(r.network) && givenNonZero(r.network.classID) ? [{ pointer: `${RESOURCES}/network/classID`, files: ["net_cls.classid"] }] : [];
  },
  apply(dir: string, r: LinuxResources): void {
    if (given(r.network) && givenNonZero(r.network.classID)) writeText(`${dir}/net_cls.classid`, intText(r.network.classID, `${dir}/net_cls.classid`));
  },
});
