// Every command, loaded only when it runs. `hot` commands are parsed by the fast parser and
// never load oclif: engines call them on every container start.
import type { CommandDef } from "./def.ts";

export interface CommandEntry {
  summary: string;
  hot: boolean;
  load: () => Promise<CommandDef>;
}

export const entry = (summary: string, hot: boolean, load: () => Promise<{ default: unknown }>): CommandEntry => ({
  summary,
  hot,
  load: async () => (await load()).default as CommandDef,
});

export const COMMANDS: Record<string, CommandEntry> = {
  create: entry("create a container (its program waits for `tsrun start`)", true, () => import("./commands/create.ts")),
  start: entry("start a created container: run its program", true, () => import("./commands/start.ts")),
  state: entry("output the state of a container", true, () => import("./commands/state.ts")),
  kill: entry("send a signal to a container's init (or all its processes)", true, () => import("./commands/kill.ts")),
  delete: entry("delete a container and everything it holds", true, () => import("./commands/delete.ts")),
  run: entry("create and start a container, and wait for it unless --detach", true, () => import("./commands/run.ts")),
  exec: entry("run a new process in a running container", true, () => import("./commands/exec.ts")),
  list: entry("list the containers of this root", true, () => import("./commands/list.ts")),
  spec: entry("create a new specification file (config.json)", true, () => import("./commands/spec.ts")),
  validate: entry("check a bundle's config.json and list every problem", false, () => import("./commands/validate.ts")),
  features: entry("show the enabled features", false, () => import("./commands/features.ts")),
  pause: entry("suspend every process of a container", false, () => import("./commands/pause.ts")),
  // Parsed by the fast parser only because oclif would take the ps(1) options after the id for its own.
  ps: entry("display the processes running inside a container", true, () => import("./commands/ps.ts")),
  events: entry("display container events such as OOM notifications and usage statistics", false, () => import("./commands/events.ts")),
  update: entry("update container resource constraints", false, () => import("./commands/update.ts")),
  resume: entry("resume every process of a paused container", false, () => import("./commands/resume.ts")),
  // Present with runc's flags; they refuse with the reason (container/criu.ts): tsrun does not drive CRIU.
  checkpoint: entry("checkpoint a running container (needs CRIU; refused with the reason)", false, () => import("./commands/checkpoint.ts")),
  restore: entry("restore a container from a previous checkpoint (needs CRIU; refused with the reason)", false, () => import("./commands/restore.ts")),
};

/**
 * Adds commands from another package (the image commands of packages/shim), or replaces one
 * (`run` with --image). Called by the binary's entry before the command line is parsed.
 */
export function registerCommands(extra: Record<string, CommandEntry>): void {
  Object.assign(COMMANDS, extra);
}
