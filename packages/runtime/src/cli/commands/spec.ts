import { writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { defaultSpec } from "@tsrun/ocispec/defaults";
import { defineCommand } from "../def.ts";
import { CliError } from "../errors.ts";

export default defineCommand({
  summary: "create a new specification file (config.json)",
  description:
    "Writes a starter config.json into the bundle directory: the same defaults as runc's (mounts, masked and read-only paths, capabilities, namespaces, rlimits) running `sh` from ./rootfs. Edit it before use. It refuses to overwrite an existing config.json.",
  examples: ["tsrun spec", "tsrun spec --bundle ./mybundle --rootless"],
  flags: {
    bundle: { type: "string", char: "b", description: "path to the root of the bundle directory" },
    rootless: { type: "boolean", description: "generate a configuration for a rootless container" },
  },
  args: [],
  run(ctx, flags) {
    const dir = flags.bundle ?? ".";
    try {
      if (!statSync(dir).isDirectory()) throw new CliError(`bundle ${dir} is not a directory`);
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(`cannot use bundle directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const spec = defaultSpec(flags.rootless ? { rootless: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } } : {});
    const file = join(dir, "config.json");
    try {
      writeFileSync(file, JSON.stringify(spec, null, "\t") + "\n", { flag: "wx", mode: 0o666 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST") throw new CliError(`File ${file} exists. Remove it first`);
      throw new CliError(`cannot write ${file}: ${code ?? (e as Error).message}`);
    }
    return 0;
  },
});
