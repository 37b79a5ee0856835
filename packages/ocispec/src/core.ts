// @tsrun/ocispec/core: the part of ocispec that costs nothing to load, for the runtime's start
// path: the spec's types, Linux names (capabilities, signals, namespaces, mount flags), versions,
// problems. The rest has sub-entries of its own: "@tsrun/ocispec/config" (validateConfig with
// the config schema alone), "@tsrun/ocispec/json" (parseJson, with its JSONC parser),
// "@tsrun/ocispec/defaults" (the default spec, for `spec`), "@tsrun/ocispec/suggest" (the typo
// suggester, which the CLI imports dynamically: a dynamic import keeps every export of what it
// imports) and the whole package, "@tsrun/ocispec", with every schema validator. In the compiled
// binary "sideEffects": false (package.json) lets the bundler drop what a command does not use;
// run from source (tests, `bun src/…`) an import loads what it names, so these keep the
// validators off paths that do not validate.
export type * from "../generated/types.ts";
export * from "./linux-names.ts";
export { OCI_VERSION, OCI_VERSION_MIN, SUPPORTED_OCI_MAJOR } from "./version.ts";
export { formatProblem, pointerToken, type Problem } from "./problem.ts";
