// CLI start-up: `tsrun --version` and `tsrun spec` against a bare compiled Bun hello world (the
// floor for any Bun binary), with runc and crun alongside when installed. Budget: tsrun within 2×
// the bare binary. Usage: bun scripts/bench/startup.ts [rounds]   (needs `bun run build` first)
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measure, median, report, which, type Variant } from "./lib.ts";

const root = join(import.meta.dir, "../..");
const tsrun = join(root, "dist/tsrun");
if (!existsSync(tsrun)) {
  console.error("startup: dist/tsrun is missing; run `bun run build` first");
  process.exit(1);
}
const rounds = Number(process.argv[2] ?? 100);
const work = mkdtempSync(join(tmpdir(), "tsrun-bench-"));
try {
  const hello = join(work, "hello");
  writeFileSync(join(work, "hello.ts"), 'console.log("hello");\n');
  const b = Bun.spawnSync([process.execPath, "build", "--compile", "--bytecode", "--minify", join(work, "hello.ts"), "--outfile", hello], { stderr: "pipe", stdout: "pipe" });
  if (!b.success) throw new Error(`cannot build the hello world: ${b.stderr}`);

  let n = 0;
  const freshBundle = () => {
    const d = join(work, `b${n++}`);
    mkdirSync(d);
    return d;
  };
  const variants: Variant[] = [
    { name: "bun hello (compiled)", argv: () => [hello] },
    { name: "tsrun --version", argv: () => [tsrun, "--version"] },
    { name: "tsrun spec", argv: () => [tsrun, "spec", "--bundle", freshBundle()] },
  ];
  for (const peer of ["runc", "crun"]) {
    const p = which(peer);
    if (!p) continue;
    variants.push({ name: `${peer} --version`, argv: () => [p, "--version"] }, { name: `${peer} spec`, argv: () => [p, "spec", "--bundle", freshBundle()] });
  }
  const times = measure(variants, rounds);
  report(`CLI start-up, ${rounds} alternating rounds, whole process`, times, "bun hello (compiled)");
  const base = median(times.get("bun hello (compiled)")!);
  for (const v of ["tsrun --version", "tsrun spec"]) {
    const ratio = median(times.get(v)!) / base;
    console.log(`${v}: ${ratio.toFixed(2)}× the bare binary (budget 2×): ${ratio <= 2 ? "within" : "OVER"}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
