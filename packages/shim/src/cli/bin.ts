// The tsrun binary: the runtime's command line plus the image commands of this package
// (registered before the command line is parsed; each loads its modules only when it runs).
import { registerCommands, runCli } from "@tsrun/runtime/cli";
import { IMAGE_COMMANDS } from "./commands.ts";

registerCommands(IMAGE_COMMANDS);
runCli();
