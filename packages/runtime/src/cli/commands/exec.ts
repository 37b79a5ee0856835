import { readFileSync } from "node:fs";
import type { Process } from "@tsrun/ocispec/core";
import { parseJson, JsonSyntaxError } from "@tsrun/ocispec/json";
import { defineCommand, type Context, type FlagValues } from "../def.ts";
import { CliError } from "../errors.ts";
import { TsrunError } from "../../errors.ts";
import { execProcess, validateProcess } from "../../container/exec.ts";
import { ContainerError } from "../../container/errors.ts";
import { Store, type ContainerRecord } from "../../container/store.ts";

const flags = {
  process: { type: "string", char: "p", description: "path to a process.json: the whole process (the other process flags are then ignored, as with runc)" },
  "console-socket": { type: "string", description: "path to an AF_UNIX socket that receives the pty master (with --tty)" },
  detach: { type: "boolean", char: "d", description: "detach from the process: return once it runs" },
  "pid-file": { type: "string", description: "file to write the process's pid to" },
  tty: { type: "boolean", char: "t", description: "give the process a terminal" },
  cwd: { type: "string", description: "working directory in the container" },
  env: { type: "string", char: "e", multiple: true, description: "KEY=VALUE added to the process's environment; repeatable" },
  user: { type: "string", char: "u", description: "uid[:gid] to run as (numbers)" },
  "additional-gids": { type: "string", char: "g", multiple: true, description: "an additional group id; repeatable" },
  cap: { type: "string", char: "c", multiple: true, description: "a capability added to the process's bounding, effective, permitted and ambient sets; repeatable" },
  "no-new-privs": { type: "boolean", description: "set no_new_privs for the process" },
  apparmor: { type: "string", description: "the AppArmor profile for the process" },
  "process-label": { type: "string", description: "the SELinux label for the process (refused: no SELinux here)" },
  "preserve-fds": { type: "integer", description: "pass this many additional fds (3 and up) to the process", default: 0, min: 0 },
  "ignore-paused": { type: "boolean", description: "exec in a paused container too (the process waits, frozen, until resume)" },
  cgroup: { type: "string", multiple: true, description: "run the process in an existing sub-cgroup of the container's: [controller[,controller]:]path; repeatable" },
} as const;

type ExecFlags = FlagValues<typeof flags>;

function uint(value: string, what: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 0xffffffff) throw new CliError(`invalid ${what} ${JSON.stringify(value)}: expected a number`);
  return Number(value);
}

/**
 * The process from the command line, as runc makes it: the container's own process with the
 * command, and with what the flags change (the terminal only with --tty).
 */
export function processFromFlags(rec: ContainerRecord, f: ExecFlags, argv: string[]): Process {
  const base: Process = JSON.parse(JSON.stringify(rec.config.process ?? { cwd: "/", user: { uid: 0, gid: 0 } }));
  if (argv.length === 0) throw new CliError("exec: the command to run is missing (tsrun exec ID COMMAND [ARGS...])");
  const p: Process = { ...base, args: argv, terminal: f.tty };
  delete p.commandLine;
  delete p.consoleSize;
  if (f.cwd) p.cwd = f.cwd;
  if (f.apparmor) p.apparmorProfile = f.apparmor;
  if (f["process-label"]) p.selinuxLabel = f["process-label"];
  if (f.cap.length) {
    const c = { ...(p.capabilities ?? {}) };
    for (const cap of f.cap) for (const set of ["bounding", "effective", "permitted", "ambient"] as const) c[set] = [...(c[set] ?? []), cap];
    p.capabilities = c;
  }
  p.env = [...(p.env ?? []), ...f.env];
  if (f["no-new-privs"]) p.noNewPrivileges = true;
  const user = { ...(p.user ?? { uid: 0, gid: 0 }) };
  if (f.user) {
    const [uid, gid] = f.user.split(":", 2);
    user.uid = uint(uid!, "uid");
    if (gid !== undefined) user.gid = uint(gid, "gid");
  }
  if (f["additional-gids"].length) user.additionalGids = [...(user.additionalGids ?? []), ...f["additional-gids"].map((g) => uint(g, "additional gid"))];
  p.user = user;
  return p;
}

function processFromFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ContainerError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return parseJson(text, path);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new ContainerError(e.message);
    throw e;
  }
}

export default defineCommand({
  summary: "run a new process in a running container",
  description:
    "Runs COMMAND in the container ID: the process joins every namespace and cgroup of the container's init and gets its user, capabilities, rlimits, no_new_privs, AppArmor profile and seccomp filter, unless process.json or the flags say otherwise. In the foreground tsrun forwards signals, relays the terminal and exits with the process's status (128+n for a signal).",
  examples: ["tsrun exec mycontainer ps aux", "tsrun exec -t mycontainer sh", "tsrun exec -d --pid-file p.pid mycontainer sleep 60", "tsrun exec -p process.json mycontainer"],
  flags,
  args: [{ name: "id", description: "the container id", required: true }],
  variadic: true,
  usage: ["exec [FLAGS] ID COMMAND [ARGS...]", "exec -p process.json [FLAGS] ID"],
  async run(ctx, f, args) {
    try {
      return await execCommand(ctx, f, args);
    } catch (e) {
      // As runc: 255 when exec itself failed, so that a caller tells it from the process's own
      // exit status (1 is a common one).
      if (e instanceof TsrunError) throw new CliError(e.message, 255, { ...e.fields, cause: e });
      throw e;
    }
  },
});

async function execCommand(ctx: Context, f: ExecFlags, args: string[]): Promise<number> {
  {
    const [id, ...argv] = args as [string, ...string[]];
    const store = new Store(ctx.globals.root);
    const rec = store.read(id);
    const process = f.process
      ? validateProcess(processFromFile(f.process), f.process)
      : validateProcess(processFromFlags(rec, f, argv), "the process from the command line");
    return execProcess(store, {
      id,
      process,
      detach: f.detach,
      preserveFds: f["preserve-fds"],
      ignorePaused: f["ignore-paused"],
      subCgroups: f.cgroup,
      ...(f["console-socket"] ? { consoleSocket: f["console-socket"] } : {}),
      ...(f["pid-file"] ? { pidFile: f["pid-file"] } : {}),
    });
  }
}
