import { OCI_VERSION } from "@tsrun/ocispec/core";

declare const TSRUN_COMMIT: string | undefined;

export const VERSION = "0.1.0";
/** Set by scripts/build.ts with --define; "dev" when running from source. */
export const COMMIT: string = typeof TSRUN_COMMIT === "string" ? TSRUN_COMMIT : "dev";

/** The `--version` text, in runc's layout (runc prints go: and libseccomp: where we print bun:). */
export function versionText(name = "tsrun"): string {
  return `${name} version ${VERSION}\ncommit: ${COMMIT}\nspec: ${OCI_VERSION}\nbun: ${Bun.version}\n`;
}
