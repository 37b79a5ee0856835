// validateConfig: a config.json value in, the typed config or every problem out.
import type { Spec } from "../generated/types.ts";
import type { Problem } from "./problem.ts";
import { schemaProblems } from "./schema.ts";
import { semanticProblems, type SemanticOptions } from "./semantic.ts";

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/**
 * Validates a runtime config against the schema and the rules the schema cannot state. Every
 * problem is returned at once: the schema's first, then the semantic ones at other places.
 */
export function validateConfig(value: unknown, opts: SemanticOptions = {}): Validated<Spec> {
  const problems = [...schemaProblems("config", value)];
  const known = new Set(problems.map((p) => p.pointer));
  for (const p of semanticProblems(value, opts)) if (!known.has(p.pointer)) problems.push(p);
  if (problems.length === 0) return { ok: true, value: value as Spec };
  return { ok: false, problems };
}
