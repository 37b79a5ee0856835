// @tsrun/ocispec/core: the part of ocispec that costs nothing to load, for the runtime's start
// path: the spec's types, Linux names (capabilities, signals, namespaces, mount flags), versions,
// problems. The rest has sub-entries of its own, so that a command loads only what it uses:
// "@tsrun/ocispec/config" (validateConfig with the config schema alone), "@tsrun/ocispec/json"
// (parseJson, with its JSONC parser), "@tsrun/ocispec/defaults" (the default spec, for `spec`),
// "@tsrun/ocispec/suggest" (the typo suggester, imported dynamically) and the whole package,
// "@tsrun/ocispec", with every schema validator. Bun's bundler places every module a barrel
// re-exports in the chunks of each command that imports the barrel, used or not: this one holds
// only what the start path loads anyway.
export type * from "../generated/types.ts";
export * from "./linux-names.ts";
export { OCI_VERSION, OCI_VERSION_MIN, SUPPORTED_OCI_MAJOR } from "./version.ts";
export { formatProblem, pointerToken, type Problem } from "./problem.ts";
