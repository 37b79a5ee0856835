// Every command, loaded only when it runs. `hot` commands are parsed by the fast parser and
// never load oclif: engines call them on every container start.
import type { CommandDef } from "./def.ts";

export interface CommandEntry {
  summary: string;
  hot: boolean;
  load: () => Promise<CommandDef>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  spec: { summary: "create a new specification file (config.json)", hot: true, load: async () => (await import("./commands/spec.ts")).default as CommandDef },
  validate: { summary: "check a bundle's config.json and list every problem", hot: false, load: async () => (await import("./commands/validate.ts")).default as CommandDef },
  features: { summary: "show the enabled features", hot: false, load: async () => (await import("./commands/features.ts")).default as CommandDef },
};
