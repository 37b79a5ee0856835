// The tsrun binary: the runtime's command line plus the image commands of this package
// (registered before the command line is parsed; each loads its modules only when it runs).
// The same executable is containerd's shim when it is run as `containerd-shim-tsrun-v2` (a link
// or copy of it so named: dist/ has a symlink). The name is the one exec gave (process.argv0;
// Bun's process.argv[0] is always "bun" in a compiled binary, and process.execPath resolves
// symlinks to tsrun). The shim's modules load only then, so tsrun's start-up does not pay for them.
// Neither side loads the other's modules: the shim's `start` and `delete` run on every container.
import { SHIM_NAME } from "../bin/name.ts";

const name = process.argv0.slice(process.argv0.lastIndexOf("/") + 1);
if (name === SHIM_NAME) {
  await import("../bin/shim.ts");
} else {
  const [{ registerCommands, runCli }, { IMAGE_COMMANDS }] = await Promise.all([import("@tsrun/runtime/cli"), import("./commands.ts")]);
  registerCommands(IMAGE_COMMANDS);
  runCli();
}
