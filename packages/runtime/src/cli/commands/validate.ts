import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { validateConfig } from "@tsrun/ocispec/config";
import { parseJson, JsonSyntaxError } from "@tsrun/ocispec/json";
import { formatProblem, OCI_VERSION } from "@tsrun/ocispec/core";
import { defineCommand } from "../def.ts";
import { CliError } from "../errors.ts";

export default defineCommand({
  summary: "check a bundle's config.json and list every problem",
  description:
    "Validates config.json against the OCI runtime-spec schema and the rules a schema cannot state (absolute paths, unique namespaces, known capability and rlimit names, the root filesystem on disk, …). Prints every problem with its JSON pointer and exits 1 if there is any; prints one line and exits 0 otherwise.",
  examples: ["tsrun validate", "tsrun validate --bundle ./mybundle"],
  flags: {
    bundle: { type: "string", char: "b", description: "path to the root of the bundle directory" },
    config: { type: "string", description: "validate this file instead of <bundle>/config.json" },
  },
  args: [],
  async run(ctx, flags) {
    const bundle = resolve(flags.bundle ?? ".");
    const file = flags.config ?? join(bundle, "config.json");
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseJson(text, file);
    } catch (e) {
      if (e instanceof JsonSyntaxError) throw new CliError(e.message);
      throw e;
    }
    const result = validateConfig(doc, { bundle, forCreate: true });
    if (result.ok) {
      ctx.stdout(`${file}: valid (OCI runtime-spec ${OCI_VERSION} config)\n`);
      return 0;
    }
    const n = result.problems.length;
    ctx.stdout(`${file}: ${n} problem${n === 1 ? "" : "s"}\n${result.problems.map((p) => `  ${formatProblem(p)}\n`).join("")}`);
    return 1;
  },
});
