// The layering rule of docs (ARCHITECTURE.md "Layout"): a package is used through its entry
// points ("@tsrun/runtime", "@tsrun/runtime/linux", "@tsrun/ocispec/core", … as its package.json
// "exports" names them), never through another package's src/ files. Fails naming file and line
// for every import of `@tsrun/<pkg>/src/…`, and for a relative path from one package into
// another's src/ (tests of a package import their own src by relative path; that is allowed).
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

const root = join(import.meta.dir, "..");

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "generated" || name.startsWith(".")) continue;
    const p = join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) out.push(...tsFiles(p));
    else if (/\.(ts|tsx|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

// import … from "x", export … from "x", import("x"), import "x", require("x").
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(["'])([^"'\n]+)\1/g;

/** The package a file belongs to ("runtime" for packages/runtime/…), or undefined. */
function packageOf(file: string): string | undefined {
  const parts = relative(root, file).split(sep);
  return parts[0] === "packages" ? parts[1] : undefined;
}

/** Every forbidden import in `text`, the contents of `file`, as "path:line: why". */
function violations(file: string, text: string): string[] {
  const found: string[] = [];
  const own = packageOf(file);
  text.split("\n").forEach((line, i) => {
    for (const m of line.matchAll(SPECIFIER)) {
        const spec = m[2]!;
        const where = `${relative(root, file)}:${i + 1}`;
        const named = /^@tsrun\/([^/]+)\/src(\/|$)/.exec(spec);
        if (named) {
          found.push(`${where}: imports ${spec} (use the package's entry point, "@tsrun/${named[1]}" or a sub-entry its package.json "exports" names)`);
          continue;
        }
        if (!spec.startsWith(".") || own === undefined) continue;
        const target = relative(root, resolve(file, "..", spec)).split(sep);
        if (target[0] === "packages" && target[1] !== own && target[2] === "src") {
          found.push(`${where}: imports ${spec}, another package's src/ (use "@tsrun/${target[1]}" or one of its sub-entries)`);
        }
      }
  });
  return found;
}

describe("layering", () => {
  test("no package imports another package's src/ internals", () => {
    // This file names forbidden imports in its own test below.
    const files = ["packages", "test", "scripts"].flatMap((d) => tsFiles(join(root, d))).filter((f) => f !== import.meta.path);
    expect(files.length).toBeGreaterThan(100);
    expect(files.flatMap((f) => violations(f, readFileSync(f, "utf8")))).toEqual([]);
  });

  test("the check catches both forms and lets entry points and a package's own files through", () => {
    const file = join(root, "packages/shim/src/task/x.ts");
    const text = [
      'import { mount } from "@tsrun/runtime/src/linux/libc.ts";',
      'import { Store } from "../../../runtime/src/container/store.ts";',
      'import { Store as S } from "@tsrun/runtime";',
      'import { umount2 } from "@tsrun/runtime/linux";',
      'import { MS } from "@tsrun/ocispec/core";',
      'import { x } from "../image/store.ts";',
      'const m = await import("@tsrun/ocispec/src/suggest.ts");',
    ].join("\n");
    expect(violations(file, text).map((v) => v.slice(0, v.indexOf(": imports")))).toEqual(["packages/shim/src/task/x.ts:1", "packages/shim/src/task/x.ts:2", "packages/shim/src/task/x.ts:7"]);
    // A package's tests may import their own src by relative path.
    expect(violations(join(root, "packages/runtime/test/a.test.ts"), 'import { Store } from "../src/container/store.ts";')).toEqual([]);
  });
});
