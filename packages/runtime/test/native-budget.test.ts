// The C in native/ stays small: the project's budget is 1,200 lines for all of it (executor,
// spawn library, wire header). What can be decided, built or parsed belongs in TypeScript (see
// plan/fold.ts, hooks/container.ts); this test keeps the budget held.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const BUDGET = 1200;

test(`the C of native/ (*.c, *.h) is at most ${BUDGET} lines`, () => {
  const dir = join(import.meta.dir, "../native");
  const files = readdirSync(dir).filter((f) => /\.[ch]$/.test(f));
  // the three files there are: a C file added elsewhere would be counted too
  expect(files.sort()).toEqual(expect.arrayContaining(["executor.c", "libtsrun.c", "wire.h"]));
  // lines as wc -l counts them: newline characters
  const lines = Object.fromEntries(files.map((f) => [f, readFileSync(join(dir, f), "utf8").split("\n").length - 1]));
  const total = Object.values(lines).reduce((a, b) => a + b, 0);
  expect({ total, lines }).toEqual({ total: Math.min(total, BUDGET), lines });
});
