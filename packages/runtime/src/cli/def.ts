// A command is data (its flags and arguments) plus a run function. The same definition feeds the
// fast argv parser used on the container start path and the oclif classes used for help and for
// the commands that are not on that path.
import type { GlobalOptions } from "./globals.ts";
import { splitFlag, UsageError } from "./globals.ts";

export type FlagDef =
  | { type: "boolean"; char?: string; description: string; hidden?: boolean }
  | { type: "string"; char?: string; description: string; default?: string; options?: readonly string[]; hidden?: boolean; multiple?: boolean }
  | { type: "integer"; char?: string; description: string; default?: number; min?: number; hidden?: boolean };

export interface ArgDef {
  name: string;
  description: string;
  required?: boolean;
}

export type FlagValues<F extends Record<string, FlagDef>> = {
  [K in keyof F]: F[K] extends { type: "boolean" }
    ? boolean
    : F[K] extends { type: "integer" }
      ? F[K] extends { default: number }
        ? number
        : number | undefined
      : F[K] extends { multiple: true }
        ? string[]
        : F[K] extends { default: string }
          ? string
          : string | undefined;
};

export interface Context {
  globals: GlobalOptions;
  stdout: (text: string) => void;
}

export interface CommandDef<F extends Record<string, FlagDef> = Record<string, FlagDef>> {
  summary: string;
  description?: string;
  examples?: string[];
  flags: F;
  args: ArgDef[];
  /** Accept arguments beyond those declared (e.g. a command line after the id). */
  variadic?: boolean;
  /**
   * Flags end with the declared arguments: what follows them is passed on as is, dashes
   * included (`ps ID -o pid,stat`, runc's SkipArgReorder); a `--` right after them is dropped.
   */
  passThrough?: boolean;
  /** The usage lines of the help, without "tsrun" (default: made from the flags and args). */
  usage?: string[];
  /** Returns the process exit code. */
  run(ctx: Context, flags: FlagValues<F>, args: string[]): Promise<number> | number;
}

export function defineCommand<F extends Record<string, FlagDef>>(def: CommandDef<F>): CommandDef<F> {
  return def;
}

/**
 * Parses a command's argv the way runc's urfave/cli does: long flags with one or two dashes,
 * `--flag value` and `--flag=value`, short aliases, flags before the arguments; `--` ends flags.
 */
export function parseArgv(def: CommandDef, argv: readonly string[]): { flags: Record<string, unknown>; args: string[] } {
  const flags: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(def.flags)) {
    if (f.type === "boolean") flags[name] = false;
    else if (f.type === "string" && f.multiple) flags[name] = [];
    else if (f.default !== undefined) flags[name] = f.default;
  }
  const byChar = new Map<string, string>();
  for (const [name, f] of Object.entries(def.flags)) if (f.char) byChar.set(f.char, name);
  const args: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (def.passThrough && args.length >= def.args.length) {
      if (arg === "--") i++;
      break;
    }
    if (arg === "--") {
      // What follows "--" of a command that takes a command line is that command line: the
      // declared arguments (the container id) come before it, or the program would become the id.
      if (def.variadic && args.length < def.args.filter((a) => a.required).length)
        throw new UsageError(`missing argument: ${def.args[args.length]!.name.toUpperCase()} (it goes before --; what follows -- is the command line)`);
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (def.variadic && args.length >= def.args.length) break;
      args.push(arg);
      continue;
    }
    const split = splitFlag(arg);
    const key = split.name;
    const name = def.flags[key] ? key : byChar.get(key);
    const f = name === undefined ? undefined : def.flags[name];
    if (!f || name === undefined) throw new UsageError(`flag provided but not defined: ${arg.split("=")[0]}`);
    let value = split.value;
    if (f.type === "boolean") {
      if (value !== undefined && value !== "true" && value !== "false") throw new UsageError(`invalid boolean value ${JSON.stringify(value)} for --${name}`);
      flags[name] = value === undefined || value === "true";
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: --${name}`);
    }
    if (f.type === "integer") {
      if (!/^-?[0-9]+$/.test(value)) throw new UsageError(`invalid value ${JSON.stringify(value)} for --${name}: expected an integer`);
      const n = Number(value);
      if (f.min !== undefined && n < f.min) throw new UsageError(`--${name} must be at least ${f.min}`);
      flags[name] = n;
    } else {
      if (f.options && !f.options.includes(value)) throw new UsageError(`invalid value ${JSON.stringify(value)} for --${name}: use one of ${f.options.join(", ")}`);
      if (f.multiple) (flags[name] as string[]).push(value);
      else flags[name] = value;
    }
  }
  args.push(...argv.slice(i));
  const required = def.args.filter((a) => a.required).length;
  if (args.length < required) throw new UsageError(`missing argument: ${def.args[args.length]!.name.toUpperCase()}`);
  if (!def.variadic && !def.passThrough && args.length > def.args.length) throw new UsageError(`unexpected argument: ${args[def.args.length]}`);
  return { flags, args };
}
