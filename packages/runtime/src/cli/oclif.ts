// oclif for everything that is not on a container's start path: command help, the root help,
// and the commands not marked hot, parsed by oclif's own parser from the same definitions.
import { Args, Command, Config, Flags, Help } from "@oclif/core";
import type { CommandDef, Context } from "./def.ts";
import { VERSION } from "../version.ts";

type Loadable = typeof Command & { load: () => Promise<typeof Command> };

function oclifFlags(def: CommandDef): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(def.flags)) {
    const common = { description: f.description, hidden: f.hidden ?? false, ...(f.char ? { char: f.char as "a" } : {}) };
    const flag =
      f.type === "boolean"
        ? Flags.boolean({ ...common, allowNo: false })
        : f.type === "integer"
          ? Flags.integer({ ...common, ...(f.default !== undefined ? { default: f.default } : {}), ...(f.min !== undefined ? { min: f.min } : {}) })
          : f.multiple
            ? // No oclif default: its help would print "[default: ]"; run() fills in [] instead.
              // Non-greedy: one value per flag, as urfave/cli's slices (`--empty-ns network ID`).
              Flags.string({ ...common, multiple: true, multipleNonGreedy: true, ...(f.options ? { options: [...f.options] } : {}) })
            : Flags.string({ ...common, ...(f.default !== undefined ? { default: f.default } : {}), ...(f.options ? { options: [...f.options] } : {}) });
    // The help renderer expects the cached form, which carries the name.
    out[name] = Object.assign(flag, { name });
  }
  return out;
}

function commandClass(id: string, def: CommandDef, ctx: Context, exit: { code: number }): Loadable {
  const args: Record<string, unknown> = {};
  for (const a of def.args) args[a.name] = Object.assign(Args.string({ description: a.description, required: a.required ?? false }), { name: a.name });
  const C = class extends Command {
    static override id = id;
    static override summary = def.summary;
    static override description = def.description ?? "";
    static override examples = def.examples ?? [];
    static override flags = oclifFlags(def) as never;
    static override args = args as never;
    static override strict = !def.variadic;
    static override usage = def.usage;
    async run(): Promise<void> {
      const { flags, argv } = await this.parse(C);
      for (const [name, f] of Object.entries(def.flags)) if (f.type === "string" && f.multiple) (flags as Record<string, unknown>)[name] ??= [];
      exit.code = await def.run(ctx, flags as never, argv as string[]);
    }
  };
  return Object.assign(C, { load: async () => C }) as Loadable;
}

async function config(): Promise<Config> {
  // No plugin discovery: the command table is ours, so oclif only needs its name and version.
  return Config.load({ root: "/", pjson: { name: "tsrun", version: VERSION, oclif: { bin: "tsrun", commands: undefined } } as never });
}

export async function runWithOclif(id: string, def: CommandDef, argv: string[], ctx: Context): Promise<number> {
  const exit = { code: 0 };
  const C = commandClass(id, def, ctx, exit) as unknown as { run(argv: string[], config: Config): Promise<unknown> };
  await C.run(argv, await config());
  return exit.code;
}

export async function showCommandHelp(id: string, def: CommandDef, ctx: Context): Promise<void> {
  const help = new Help(await config(), { stripAnsi: !process.stdout.isTTY });
  await help.showCommandHelp(commandClass(id, def, ctx, { code: 0 }) as never);
}
