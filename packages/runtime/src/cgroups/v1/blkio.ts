// blkio (v1): proportional weights and per-device throttling. Weights live in blkio.weight* with
// CFQ (gone since Linux 5.0) and in blkio.bfq.weight* with BFQ; leaf weights existed only with
// CFQ. Throttling (blkio.throttle.*) works whatever the I/O scheduler.

import { existsSync } from "node:fs";
import type { LinuxBlockIO, LinuxResources, LinuxThrottleDevice } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { devNumber, given, givenNonZero, intText, RESOURCES } from "../values.ts";

const P = `${RESOURCES}/blockIO`;

/** OCI throttle list → v1 file, in the order they are written. */
export const THROTTLES: readonly [keyof LinuxBlockIO & `throttle${string}`, string][] = [
  ["throttleReadBpsDevice", "blkio.throttle.read_bps_device"],
  ["throttleWriteBpsDevice", "blkio.throttle.write_bps_device"],
  ["throttleReadIOPSDevice", "blkio.throttle.read_iops_device"],
  ["throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"],
];

const WEIGHT = ["blkio.weight", "blkio.bfq.weight"];
const WEIGHT_DEVICE = ["blkio.weight_device", "blkio.bfq.weight_device"];
const NO_WEIGHT = "no proportional-weight I/O scheduler here (blkio.weight needs CFQ, blkio.bfq.weight needs BFQ)";
const NO_LEAF = "leaf weights existed only with the CFQ scheduler (removed in Linux 5.0)";

export const blkioV1 = controller({
  name: "blkio",
  requested(r: LinuxResources): Requested[] {
    const b = r.blockIO;
    if (!given(b)) return [];
    const out: Requested[] = [];
    if (givenNonZero(b.weight)) out.push({ pointer: `${P}/weight`, files: WEIGHT, why: NO_WEIGHT });
    if (givenNonZero(b.leafWeight)) out.push({ pointer: `${P}/leafWeight`, files: ["blkio.leaf_weight"], why: NO_LEAF });
    (b.weightDevice ?? []).forEach((d, i) => {
      if (givenNonZero(d.weight)) out.push({ pointer: `${P}/weightDevice/${i}/weight`, files: WEIGHT_DEVICE, why: NO_WEIGHT });
      if (givenNonZero(d.leafWeight)) out.push({ pointer: `${P}/weightDevice/${i}/leafWeight`, files: ["blkio.leaf_weight_device"], why: NO_LEAF });
    });
    for (const [key, file] of THROTTLES) (b[key] ?? []).forEach((_, i) => out.push({ pointer: `${P}/${key}/${i}`, files: [file] }));
    return out;
  },
  apply(dir: string, r: LinuxResources): void {
    const b = r.blockIO;
    if (!given(b)) return;
    const pick = (names: string[]) => `${dir}/${names.find((n) => existsSync(`${dir}/${n}`)) ?? names[0]}`;
    if (givenNonZero(b.weight)) {
      const file = pick(WEIGHT);
      writeText(file, intText(b.weight, file));
    }
    if (givenNonZero(b.leafWeight)) writeText(`${dir}/blkio.leaf_weight`, intText(b.leafWeight, `${dir}/blkio.leaf_weight`));
    for (const d of b.weightDevice ?? []) {
      if (givenNonZero(d.weight)) {
        const file = pick(WEIGHT_DEVICE);
        writeText(file, `${devNumber(d, file)} ${intText(d.weight, file)}`);
      }
      if (givenNonZero(d.leafWeight)) {
        const file = `${dir}/blkio.leaf_weight_device`;
        writeText(file, `${devNumber(d, file)} ${intText(d.leafWeight, file)}`);
      }
    }
    for (const [key, name] of THROTTLES) for (const t of b[key] ?? []) writeText(`${dir}/${name}`, throttleLine(t, `${dir}/${name}`));
  },
});

/** "maj:min rate"; a rate of 0 removes the device's limit. */
function throttleLine(t: LinuxThrottleDevice, file: string): string {
  return `${devNumber(t, file)} ${intText(t.rate, file)}`;
}
