// Schema validation: runs the standalone validators generated from schemas/ and turns ajv's
// errors into Problems that a person can act on (pointer, message, hint).
import type { AjvError, Validator } from "../generated/validator.ts";
import { pointerToken, type Problem } from "./problem.ts";
import { closest, misspeltKey } from "./suggest.ts";

export type DocumentKind =
  | "config"
  | "state"
  | "features"
  | "descriptor"
  | "imageIndex"
  | "imageManifest"
  | "imageConfig"
  | "ociLayout";

/** Every problem `validate` (a generated validator) finds in `value`; empty when it conforms. */
export function problemsFrom(validate: Validator, value: unknown): Problem[] {
  if (validate(value)) return [];
  return translate(validate.errors ?? [], value);
}

function valueAt(doc: unknown, pointer: string): unknown {
  if (pointer === "") return doc;
  let cur: unknown = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "number") return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  return `${typeof v} ${String(v)}`;
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function typeName(t: unknown): string {
  const names = (Array.isArray(t) ? t : [t]).map((x) => (x === "null" ? "null" : article(String(x))));
  return names.join(" or ");
}

/** What the schemas' patterns mean, for messages; others are quoted as they are. */
const PATTERN_MEANINGS: Record<string, string> = {
  "^/": "an absolute path",
  "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$": "a SemVer 2.0.0 version such as \"1.3.0\"",
  "^RLIMIT_[A-Z_]+$": "a resource limit name such as RLIMIT_NOFILE",
  "^CAP_[A-Z0-9_]+$": "a capability name such as CAP_KILL",
  "^[0-9]+[KMGTPE]?B$": "a page size such as 2MB or 1GB",
  "^[0-9,:/\\s-]*$": "a CPU or node list such as 0-3,7",
  "^MB:[^\\n]*$": "a memory bandwidth schema starting with MB:",
  "^[^\\n]*$": "a single line",
};

function problemOf(e: AjvError, doc: unknown): Problem {
  const at = e.instancePath;
  const p = e.params;
  switch (e.keyword) {
    case "required": {
      const prob: Problem = { pointer: `${at}/${pointerToken(p.missingProperty)}`, message: `is required but missing` };
      // Unknown keys are allowed (extensions), so a misspelt one would otherwise go unmentioned.
      const near = misspeltKey(valueAt(doc, at), p.missingProperty as string);
      if (near !== undefined) prob.hint = `found "${near}": did you mean "${p.missingProperty}"?`;
      return prob;
    }
    case "type":
      return { pointer: at, message: `must be ${typeName(p.type)}, found ${describe(valueAt(doc, at))}` };
    case "enum": {
      const allowed = (p.allowedValues as unknown[]).map((x) => JSON.stringify(x));
      const v = valueAt(doc, at);
      const guess = typeof v === "string" ? closest(v, (p.allowedValues as unknown[]).map(String)) : undefined;
      const prob: Problem = { pointer: at, message: `must be one of ${allowed.join(", ")}, found ${describe(v)}` };
      if (guess !== undefined) prob.hint = `did you mean "${guess}"?`;
      return prob;
    }
    case "const":
      return { pointer: at, message: `must be ${JSON.stringify(p.allowedValue)}, found ${describe(valueAt(doc, at))}` };
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return { pointer: at, message: `must be ${p.comparison} ${p.limit}, found ${describe(valueAt(doc, at))}` };
    case "pattern": {
      const known = PATTERN_MEANINGS[p.pattern as string];
      const found = describe(valueAt(doc, at));
      return known ? { pointer: at, message: `must be ${known}, found ${found}` } : { pointer: at, message: `${found} does not have the required form`, hint: `pattern ${p.pattern}` };
    }
    case "minItems":
      return { pointer: at, message: `must have at least ${p.limit} item${p.limit === 1 ? "" : "s"}` };
    case "maxItems":
      return { pointer: at, message: `must have at most ${p.limit} items` };
    case "minLength":
      return { pointer: at, message: p.limit === 1 ? "must not be empty" : `must be at least ${p.limit} characters long` };
    case "maxLength":
      return { pointer: at, message: `must be at most ${p.limit} characters long` };
    case "minProperties":
      return { pointer: at, message: `must have at least ${p.limit} propert${p.limit === 1 ? "y" : "ies"}` };
    case "uniqueItems":
      return { pointer: at, message: `must not repeat items (items ${p.j} and ${p.i} are equal)` };
    case "propertyNames":
      return { pointer: at, message: `has an invalid property name ${JSON.stringify(p.propertyName)}` };
    case "additionalProperties":
      return { pointer: `${at}/${pointerToken(p.additionalProperty)}`, message: "is not allowed here" };
    case "dependencies":
      return { pointer: at, message: `must have ${JSON.stringify(p.missingProperty)} when it has ${JSON.stringify(p.property)}` };
    case "multipleOf":
      return { pointer: at, message: `must be a multiple of ${p.multipleOf}` };
    default:
      return { pointer: at, message: e.message ?? `fails the "${e.keyword}" rule` };
  }
}

/**
 * ajv reports, for a failed anyOf/oneOf, the errors of every branch, just before the
 * alternative's own error and at or below its location (their schemaPath may be a $ref's, so
 * it cannot say which branch they came from). Keep the errors of branches that got past the
 * location itself (whose type matched); when none did, say which forms were allowed.
 */
function translate(errors: AjvError[], doc: unknown): Problem[] {
  const dropped = new Set<AjvError>();
  const extra: Problem[] = [];
  errors.forEach((alt, index) => {
    if ((alt.keyword !== "anyOf" && alt.keyword !== "oneOf") || dropped.has(alt)) return;
    dropped.add(alt);
    if (alt.keyword === "oneOf" && alt.params.passingSchemas) {
      extra.push({ pointer: alt.instancePath, message: "matches more than one allowed form" });
      return;
    }
    const at = alt.instancePath;
    const branch: AjvError[] = [];
    for (let i = index - 1; i >= 0; i--) {
      const e = errors[i]!;
      if (e.instancePath !== at && !e.instancePath.startsWith(at + "/")) break;
      branch.push(e);
    }
    const deep = branch.filter((e) => e.instancePath !== at || e.keyword === "required");
    for (const e of branch) if (!deep.includes(e)) dropped.add(e);
    if (deep.length === 0) {
      const forms = branch.filter((e) => e.keyword === "type" || e.keyword === "const" || e.keyword === "enum");
      const wanted = [...new Set(forms.map((e) => (e.keyword === "type" ? typeName(e.params.type) : JSON.stringify(e.params.allowedValue ?? e.params.allowedValues))))];
      extra.push({
        pointer: at,
        message: wanted.length ? `must be ${wanted.join(" or ")}, found ${describe(valueAt(doc, at))}` : "does not match any allowed form",
      });
    }
  });
  // A value of the wrong type needs no second message about its allowed values.
  const typeErrorAt = new Set(errors.filter((e) => e.keyword === "type" && !dropped.has(e)).map((e) => e.instancePath));
  for (const e of errors) if ((e.keyword === "const" || e.keyword === "enum") && typeErrorAt.has(e.instancePath)) dropped.add(e);
  // An if/then/else failure repeats, vaguely, what its branch's own errors say.
  for (const e of errors) if (e.keyword === "if") dropped.add(e);
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const p of [...errors.filter((e) => !dropped.has(e)).map((e) => problemOf(e, doc)), ...extra]) {
    const key = `${p.pointer}\0${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  return out;
}
