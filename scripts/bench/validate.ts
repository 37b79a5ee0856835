// validateConfig on a full config (every section of config.md and config-linux.md filled in):
// schema + semantic checks, in-process, median per call over batches.
// Usage: bun scripts/bench/validate.ts [fixture.json]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validateConfig } from "../../packages/ocispec/src/config.ts";
import { defaultSpec } from "../../packages/ocispec/src/defaults.ts";
import { median } from "./lib.ts";

const root = join(import.meta.dir, "../..");
const file = process.argv[2] ?? join(root, "packages/ocispec/test/fixtures/runtime/good/config-full-linux.json");
const raw = JSON.parse(readFileSync(file, "utf8"));
const full = raw.doc ?? raw;
const docs: [string, unknown][] = [
  ["default spec (tsrun spec)", defaultSpec()],
  [`full config (${file.split("/").pop()})`, full],
];

for (const [name, doc] of docs) {
  const first = validateConfig(doc);
  if (!first.ok) {
    console.error(`${name}: not valid, benchmark meaningless:`, first.problems);
    process.exit(1);
  }
  const batch = 1000;
  const perCall: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    for (let j = 0; j < batch; j++) validateConfig(doc);
    perCall.push(((performance.now() - t0) / batch) * 1000);
  }
  const bytes = JSON.stringify(doc).length;
  console.log(`validateConfig, ${name}, ${bytes} bytes: median ${median(perCall).toFixed(1)} µs per call (50 batches of ${batch})`);
}
