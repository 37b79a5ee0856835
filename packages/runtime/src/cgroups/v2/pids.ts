// pids (v2): pids.max, the same file and values as v1 (values.ts: pidsMax).
import { controller } from "../controller.ts";
import { pidsV1 } from "../v1/pids.ts";

export const pidsV2 = controller({ name: "pids", requested: pidsV1.requested, apply: pidsV1.apply });
