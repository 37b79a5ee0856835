// validateConfig: a config.json value in, the typed config or every problem out.
import type { Spec } from "../generated/types.ts";
import type { Problem } from "./problem.ts";
import { config as configValidator } from "../generated/validators/config.js";
import { problemsFrom } from "./schema.ts";
import { semanticProblems, type SemanticOptions } from "./semantic.ts";

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/**
 * Validates a runtime config against the schema and the rules the schema cannot state. Every
 * problem is returned at once: the schema's first, then the semantic ones at other places.
 */
export function validateConfig(value: unknown, opts: SemanticOptions = {}): Validated<Spec> {
  const problems = [...problemsFrom(configValidator, value)];
  // Where both find fault with one value, the semantic check's message is the more specific one
  // ("must be an absolute path" rather than "does not match ^/").
  for (const p of semanticProblems(value, opts)) {
    const i = problems.findIndex((q) => q.pointer === p.pointer);
    if (i >= 0) problems[i] = p;
    else problems.push(p);
  }
  if (problems.length === 0) return { ok: true, value: value as Spec };
  return { ok: false, problems };
}
