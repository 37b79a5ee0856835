// Stage 1 moving itself into v1 cgroups (plan/fold.ts moveSelfToCgroupOps): tsrun opens each
// cgroup's `tasks` file and passes it to the executor, which writes "0" to it. Shared by create
// and exec, each of which words its own failure.
import { constants, openSync } from "node:fs";
import { join } from "node:path";
import type { Op } from "../plan/ops.ts";
import { moveSelfText } from "../plan/fold.ts";

/** The `tasks` file of the v1 cgroup `dir`, opened for stage 1; `fail` words an open that fails. */
export function openTasks(dir: string, fail: (code: string, cause: unknown) => Error): number {
  try {
    return openSync(join(dir, "tasks"), constants.O_WRONLY);
  } catch (e) {
    throw fail((e as NodeJS.ErrnoException).code ?? "EIO", e);
  }
}

/** Of `moves`, the one whose self-move is the plan's op `index`, if that op is one. */
export function moveOfOp<T extends { dir: string }>(ops: readonly Op[], index: number, moves: readonly T[]): T | undefined {
  const op = ops[index];
  return op?.op === "syscall" ? moves.find((m) => op.what === moveSelfText(m.dir)) : undefined;
}
