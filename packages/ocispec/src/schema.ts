// Schema validation: runs the standalone validators generated from schemas/ and turns ajv's
// errors into Problems that a person can act on (pointer, message, hint).
import * as validators from "../generated/validators.js";
import type { AjvError, Validator } from "../generated/validators.js";
import { pointerToken, type Problem } from "./problem.ts";
import { closest } from "./suggest.ts";

export type DocumentKind =
  | "config"
  | "state"
  | "features"
  | "descriptor"
  | "imageIndex"
  | "imageManifest"
  | "imageConfig"
  | "ociLayout";

function validatorFor(kind: DocumentKind): Validator {
  const v = (validators as unknown as Record<string, Validator | undefined>)[kind];
  if (!v) throw new Error(`no schema compiled for document kind "${kind}" (run \`bun run gen\`)`);
  return v;
}

/** Every schema problem of `value` as a document of `kind`; empty when it conforms. */
export function schemaProblems(kind: DocumentKind, value: unknown): Problem[] {
  const validate = validatorFor(kind);
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

function problemOf(e: AjvError, doc: unknown): Problem {
  const at = e.instancePath;
  const p = e.params;
  switch (e.keyword) {
    case "required":
      return { pointer: `${at}/${pointerToken(p.missingProperty)}`, message: `is required but missing` };
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
    case "pattern":
      return { pointer: at, message: `${describe(valueAt(doc, at))} does not have the required form`, hint: `pattern ${p.pattern}` };
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
    case "multipleOf":
      return { pointer: at, message: `must be a multiple of ${p.multipleOf}` };
    default:
      return { pointer: at, message: e.message ?? `fails the "${e.keyword}" rule` };
  }
}

/**
 * ajv reports, for a failed anyOf/oneOf, the errors of every branch. Keep the branch that got
 * furthest (whose errors all lie below the alternative's own location, i.e. its type matched),
 * or else say which forms were allowed.
 */
function translate(errors: AjvError[], doc: unknown): Problem[] {
  const alternatives = errors.filter((e) => e.keyword === "anyOf" || e.keyword === "oneOf");
  const dropped = new Set<AjvError>();
  const extra: Problem[] = [];
  for (const alt of alternatives) {
    if (dropped.has(alt)) continue;
    const prefix = alt.schemaPath.replace(/\/(anyOf|oneOf)$/, `/${alt.keyword}/`);
    const branches = new Map<string, AjvError[]>();
    for (const e of errors) {
      if (!e.schemaPath.startsWith(prefix)) continue;
      const idx = e.schemaPath.slice(prefix.length).split("/")[0]!;
      (branches.get(idx) ?? branches.set(idx, []).get(idx)!).push(e);
      dropped.add(e);
    }
    dropped.add(alt);
    if (alt.keyword === "oneOf" && alt.params.passingSchemas) {
      extra.push({ pointer: alt.instancePath, message: "matches more than one allowed form" });
      continue;
    }
    const deep = [...branches.values()].filter((errs) => errs.every((e) => e.instancePath.length > alt.instancePath.length || e.keyword === "required"));
    const best = deep.sort((a, b) => a.length - b.length)[0];
    if (best) {
      for (const e of best) dropped.delete(e);
    } else {
      const forms = [...branches.values()].flatMap((errs) => errs.filter((e) => e.keyword === "type" || e.keyword === "const" || e.keyword === "enum"));
      const wanted = [...new Set(forms.map((e) => (e.keyword === "type" ? typeName(e.params.type) : JSON.stringify(e.params.allowedValue ?? e.params.allowedValues))))];
      extra.push({
        pointer: alt.instancePath,
        message: wanted.length ? `must be ${wanted.join(" or ")}, found ${describe(valueAt(doc, alt.instancePath))}` : "does not match any allowed form",
      });
    }
  }
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
