// What the image commands share: the image store root flag and the service over it.
import { CliError } from "@tsrun/runtime/cli";
import { DEFAULT_IMAGE_ROOT, LocalImages } from "../../image/local.ts";

export const imageRootFlag = {
  "image-root": { type: "string", description: `image store directory (default ${DEFAULT_IMAGE_ROOT}, or $TSRUN_IMAGE_ROOT)` },
} as const;

export function images(flags: { "image-root"?: string | undefined }): LocalImages {
  return new LocalImages(flags["image-root"] ?? process.env.TSRUN_IMAGE_ROOT ?? DEFAULT_IMAGE_ROOT);
}

/** 1234567 → "1.2 MB", as docker prints sizes. */
export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/**
 * Runs a command body; the image path's own errors (bad input, a missing image, a digest that
 * does not match, a registry's refusal) become the one-line errors of a CliError, while bugs
 * (the language's own TypeError, RangeError, …) stay internal errors with a stack under --debug.
 */
export async function userErrors<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof Error && !(e instanceof CliError) && !BUILTIN.has(e.constructor)) throw new CliError(e.message);
    throw e;
  }
}

const BUILTIN = new Set<unknown>([TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]);

/**
 * The registry options pull and push share: --plain-http, and --username with the password
 * from $TSRUN_REGISTRY_PASSWORD (never a flag: it would show in ps).
 */
export function registryOptions(flags: { "plain-http": boolean; username?: string | undefined }): { plainHttp?: true; credentials?: { username: string; password: string } } {
  const password = process.env.TSRUN_REGISTRY_PASSWORD;
  if (flags.username !== undefined && password === undefined) throw new CliError("--username needs the password in $TSRUN_REGISTRY_PASSWORD");
  return {
    ...(flags["plain-http"] ? { plainHttp: true as const } : {}),
    ...(flags.username !== undefined ? { credentials: { username: flags.username, password: password! } } : {}),
  };
}
