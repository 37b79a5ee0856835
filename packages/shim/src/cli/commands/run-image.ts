// The --image half of `run` (see run.ts): bundle from the image, run it, clean up.
import { join } from "node:path";
import type { Context } from "@tsrun/runtime/src/cli/def.ts";
import runtimeRun from "@tsrun/runtime/src/cli/commands/run.ts";
import type { BundleRequest } from "../../image/service.ts";
import { images, userErrors } from "./common.ts";

type RunFlags = Parameters<typeof runtimeRun.run>[1] & { image: string; rm: boolean; "image-root"?: string | undefined };

export async function runFromImage(ctx: Context, flags: RunFlags, id: string, cmd: string[], spec: Omit<BundleRequest, "image" | "dir">): Promise<number> {
  const svc = images(flags);
  const dir = join(svc.root, "bundles", id);
  // As docker does: the container's hostname is its name unless asked otherwise.
  await userErrors(() => svc.bundle({ image: flags.image, dir, id, hostname: id, ...(cmd.length ? { args: cmd } : {}), ...spec }));
  let code: number;
  try {
    // Docker's life: without --rm the container is kept when it exits (listed, committable),
    // until `tsrun delete ID` removes it with its writable layer and mounts.
    code = await runtimeRun.run(ctx, { ...flags, bundle: dir, keep: flags.keep || !flags.rm }, [id]);
  } catch (e) {
    // Nothing of a container that never ran is kept.
    await svc.removeBundle(dir);
    throw e;
  }
  if (flags.rm) await svc.removeBundle(dir);
  return code;
}
