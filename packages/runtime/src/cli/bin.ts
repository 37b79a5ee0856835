// The tsrun binary of the runtime alone (the shipped binary also carries the image commands:
// packages/shim/src/cli/bin.ts).
import { runCli } from "./main.ts";

runCli();
