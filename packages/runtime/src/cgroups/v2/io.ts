// io (v2): weights and throttling. Weights go to io.bfq.weight when the BFQ scheduler's file is
// there (same 1…1000 scale as blkio.weight), else to io.weight (1…10000, converted: values.ts
// blkioToIoWeight). Throttles are io.max keys (rbps, wbps, riops, wiops), one device per write;
// a rate of 0 (v1: remove the limit) becomes "max". v2 has no leaf weights.

import { existsSync } from "node:fs";
import type { LinuxBlockIO, LinuxResources } from "@tsrun/ocispec/core";
import { writeText } from "../fs.ts";
import { controller, type Requested } from "../controller.ts";
import { blkioToIoWeight, devNumber, given, givenNonZero, intText, RESOURCES } from "../values.ts";

const P = `${RESOURCES}/blockIO`;
const WEIGHT = ["io.bfq.weight", "io.weight"];
const NO_WEIGHT = "no proportional-weight I/O control here (io.bfq.weight needs BFQ, io.weight needs io.cost)";
const NO_LEAF = "cgroup v2 has no leaf weights";

export const IO_MAX_KEYS: readonly [keyof LinuxBlockIO & `throttle${string}`, string][] = [
  ["throttleReadBpsDevice", "rbps"],
  ["throttleWriteBpsDevice", "wbps"],
  ["throttleReadIOPSDevice", "riops"],
  ["throttleWriteIOPSDevice", "wiops"],
];

export const ioV2 = controller({
  name: "io",
  requested(r: LinuxResources): Requested[] {
    const b = r.blockIO;
    if (!given(b)) return [];
    const out: Requested[] = [];
    if (givenNonZero(b.weight)) out.push({ pointer: `${P}/weight`, files: WEIGHT, why: NO_WEIGHT });
    if (givenNonZero(b.leafWeight)) out.push({ pointer: `${P}/leafWeight`, files: [], why: NO_LEAF });
    (b.weightDevice ?? []).forEach((d, i) => {
      if (givenNonZero(d.weight)) out.push({ pointer: `${P}/weightDevice/${i}/weight`, files: WEIGHT, why: NO_WEIGHT });
      if (givenNonZero(d.leafWeight)) out.push({ pointer: `${P}/weightDevice/${i}/leafWeight`, files: [], why: NO_LEAF });
    });
    for (const [key] of IO_MAX_KEYS) (b[key] ?? []).forEach((_, i) => out.push({ pointer: `${P}/${key}/${i}`, files: ["io.max"] }));
    return out;
  },
  apply(dir: string, r: LinuxResources): void {
    const b = r.blockIO;
    if (!given(b)) return;
    const bfq = existsSync(`${dir}/io.bfq.weight`);
    const file = `${dir}/${bfq ? "io.bfq.weight" : "io.weight"}`;
    const w = (n: number) => (bfq ? intText(n, file) : String(blkioToIoWeight(n)));
    if (givenNonZero(b.weight)) writeText(file, bfq ? w(b.weight) : `default ${w(b.weight)}`);
    for (const d of b.weightDevice ?? []) if (givenNonZero(d.weight)) writeText(file, `${devNumber(d, file)} ${w(d.weight)}`);
    const max = `${dir}/io.max`;
    for (const [key, name] of IO_MAX_KEYS) {
      for (const t of b[key] ?? []) writeText(max, `${devNumber(t, max)} ${name}=${t.rate === 0 ? "max" : intText(t.rate, max)}`);
    }
  },
});
