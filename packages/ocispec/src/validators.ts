// Every document kind's schema check in one place, for callers that pick the kind at run time.
// The hot path (create) imports only the config validator, through config.ts.
import { config } from "../generated/validators/config.js";
import { state } from "../generated/validators/state.js";
import { features } from "../generated/validators/features.js";
import { descriptor } from "../generated/validators/descriptor.js";
import { imageIndex } from "../generated/validators/imageIndex.js";
import { imageManifest } from "../generated/validators/imageManifest.js";
import { imageConfig } from "../generated/validators/imageConfig.js";
import { ociLayout } from "../generated/validators/ociLayout.js";
import type { Validator } from "../generated/validator.ts";
import { problemsFrom, type DocumentKind } from "./schema.ts";
import type { Problem } from "./problem.ts";

const VALIDATORS: Record<DocumentKind, Validator> = { config, state, features, descriptor, imageIndex, imageManifest, imageConfig, ociLayout };

/** Every schema problem of `value` as a document of `kind`; empty when it conforms. */
export function schemaProblems(kind: DocumentKind, value: unknown): Problem[] {
  return problemsFrom(VALIDATORS[kind], value);
}
