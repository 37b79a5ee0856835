// @tsrun/runtime/cli: the command line as another package extends it (the image commands of
// packages/shim): command definitions, the registry of lazily loaded commands, the CLI's error,
// and the entry. Everything here is on the start path already; the runtime's own commands that
// the shim builds on are sub-entries of their own ("@tsrun/runtime/cli/run", ".../cli/delete"),
// so a command loads only the one it runs.
export { defineCommand, parseArgv, type ArgDef, type CommandDef, type Context, type FlagDef, type FlagValues } from "./def.ts";
export { entry, registerCommands, type CommandEntry } from "./registry.ts";
export { CliError } from "./errors.ts";
export { main, runCli } from "./main.ts";
export { splitFlag, DEFAULT_ROOT, type GlobalOptions } from "./globals.ts";
