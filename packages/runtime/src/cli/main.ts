// tsrun's entry point. Global flags first (runc's order), then a table lookup that imports only
// the command being run; oclif is loaded only for help and for commands off the start path.
import { UsageError, preParse, type PreParsed } from "./globals.ts";
import { parseArgv, type Context } from "./def.ts";
import { CliError } from "./errors.ts";
import { errorFields, TsrunError } from "../errors.ts";
import { reportError } from "./log.ts";
import { writeAll } from "../io.ts";
import { COMMANDS } from "./registry.ts";
import { versionText } from "../version.ts";
import { setTraceSink, trace } from "../trace.ts";
import { logLine, openLog } from "./log.ts";
import { setRootlessFlag } from "../container/rootless.ts";
import { chmodSync, mkdirSync } from "node:fs";

/**
 * The default root under $XDG_RUNTIME_DIR, made as runc makes it before any command: 0700 and
 * sticky (the XDG base directory spec lets a runtime dir's entries be pruned unless sticky).
 */
function prepareXdgRoot(root: string): void {
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new UsageError(`the path in $XDG_RUNTIME_DIR must be writable by the user: cannot create ${root}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    chmodSync(root, 0o1700);
  } catch (e) {
    throw new UsageError(`cannot make ${root} 01700 (check the permissions of $XDG_RUNTIME_DIR): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const wantsHelp = (argv: readonly string[]): boolean => {
  for (const a of argv) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h" || a === "-help") return true;
  }
  return false;
};

async function dispatch(pre: PreParsed, ctx: Context): Promise<number> {
  if (pre.version) {
    ctx.stdout(versionText());
    return 0;
  }
  let id = pre.command;
  if (id === undefined || id === "help") {
    const pair = `${pre.rest[0]} ${pre.rest[1]}`;
    const topic = COMMANDS[pair] ? pair : pre.rest[0];
    if (id === "help" && topic !== undefined && COMMANDS[topic]) {
      const { showCommandHelp } = await import("./oclif.ts");
      await showCommandHelp(topic, await COMMANDS[topic].load(), ctx);
      return 0;
    }
    if (id === "help" && topic !== undefined) throw new UsageError(`no help topic for "${topic}"`);
    ctx.stdout((await import("./help.ts")).rootHelp());
    return 0;
  }
  let rest = pre.rest;
  let entry = COMMANDS[id];
  // A topic's command ("image ls"): the first argument names it.
  if (!entry && rest[0] !== undefined && COMMANDS[`${id} ${rest[0]}`]) {
    id = `${id} ${rest[0]}`;
    entry = COMMANDS[id];
    rest = rest.slice(1);
  }
  if (!entry && Object.keys(COMMANDS).some((k) => k.startsWith(`${id} `))) {
    const subs = Object.keys(COMMANDS).filter((k) => k.startsWith(`${id} `));
    if (rest[0] === undefined || wantsHelp(rest)) {
      ctx.stdout(`${subs.map((k) => `  tsrun ${k.padEnd(Math.max(...subs.map((x) => x.length)))}  ${COMMANDS[k]!.summary}`).join("\n")}\n`);
      return rest[0] === undefined ? 1 : 0;
    }
    throw new UsageError(`unknown command "${id} ${rest[0]}"; the ${id} commands are: ${subs.map((k) => k.slice(id.length + 1)).join(", ")}`);
  }
  if (!entry) {
    const { closest } = await import("@tsrun/ocispec/suggest");
    const guess = closest(id, Object.keys(COMMANDS));
    throw new UsageError(`unknown command "${id}"${guess ? ` (did you mean "${guess}"?)` : ""}; run "tsrun --help" for the list`);
  }
  // create and run move a process between cgroups: start the kernel's slow part now.
  if (id === "create" || id === "run") (await import("../container/warmup.ts")).startMigrationWarmUp();
  const def = await entry.load();
  trace(`loaded ${id}`);
  if (pre.help || wantsHelp(rest)) {
    const { showCommandHelp } = await import("./oclif.ts");
    await showCommandHelp(id, def, ctx);
    return 0;
  }
  if (entry.hot) {
    let parsed;
    try {
      parsed = parseArgv(def, rest);
    } catch (e) {
      if (e instanceof UsageError) throw new UsageError(`${id}: ${e.message}; run "tsrun ${id} --help"`);
      throw e;
    }
    return def.run(ctx, parsed.flags as never, parsed.args);
  }
  const { runWithOclif } = await import("./oclif.ts");
  return runWithOclif(id, def, rest, ctx);
}

export async function main(argv: readonly string[]): Promise<number> {
  trace("main");
  let pre: PreParsed | undefined;
  try {
    pre = preParse(argv);
    const globals = pre.globals;
    // As runc: the log file exists once a command ran, whether or not it had anything to say.
    if (globals.log) openLog(globals.log);
    if (globals.debug) setTraceSink((what) => logLine(globals, "debug", what));
    setRootlessFlag(globals.rootless);
    if (globals.xdgRoot && pre.command !== undefined && pre.command !== "help" && !pre.version) prepareXdgRoot(globals.root);
    const ctx: Context = { globals: pre.globals, stdout: (t) => writeAll(1, t) };
    return await dispatch(pre, ctx);
  } catch (e) {
    const globals = pre?.globals ?? { logFormat: "text" as const, debug: false };
    if (e instanceof CliError) {
      reportError(globals, e.message, errorFields(e));
      return e.exitCode;
    }
    if (e instanceof TsrunError) {
      reportError(globals, e.message, errorFields(e));
      return 1;
    }
    if (e instanceof UsageError) {
      reportError(globals, e.message);
      return 1;
    }
    // oclif's parse errors carry their exit code; their message is meant for the user.
    const oclif = (e as { oclif?: { exit?: number } }).oclif;
    if (oclif) {
      reportError(globals, (e as Error).message.split("\n")[0]!);
      return oclif.exit ?? 1;
    }
    reportError(globals, `internal error: ${(e as Error).message ?? String(e)}${globals.debug ? `\n${(e as Error).stack ?? ""}` : " (run with --debug for details)"}`, errorFields(e));
    return 1;
  }
}

/** Runs tsrun's command line on this process's arguments and sets its exit code. */
export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`tsrun: internal error: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
