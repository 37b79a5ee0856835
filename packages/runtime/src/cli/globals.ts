// runc's global flags. Engines put them before the subcommand
// (`runc --root R --log L --log-format json create …`), which oclif cannot parse, so they are
// taken off argv here and the rest goes to the command.
import { runningInUserNS } from "../container/rootless.ts";

export interface GlobalOptions {
  root: string;
  /**
   * The root is the default under $XDG_RUNTIME_DIR (no --root): made 0700 with the sticky bit
   * before the command runs, as runc does (XDG may prune a runtime dir's entries without it).
   */
  xdgRoot?: boolean;
  log?: string;
  logFormat: "text" | "json";
  debug: boolean;
  systemdCgroup: boolean;
  rootless: "true" | "false" | "auto";
  criu?: string;
}

export const DEFAULT_ROOT = "/run/tsrun";

export interface RootHost {
  env: Record<string, string | undefined>;
  euid: number;
  inUserNS: () => boolean;
}

/**
 * The default --root, by runc's rule (main.go, shouldHonorXDGRuntimeDir): `$XDG_RUNTIME_DIR/tsrun`
 * for an unprivileged user, and for root in a user namespace unless $USER says "root"; /run/tsrun
 * for the real root (its XDG_RUNTIME_DIR, /run/user/0, is ignored) and whenever XDG_RUNTIME_DIR is
 * unset or empty. An unprivileged user without it then fails on /run/tsrun, as runc fails on
 * /run/runc; the store's error says what to set.
 */
export function defaultRoot(host: RootHost = { env: process.env, euid: process.geteuid?.() ?? 0, inUserNS: runningInUserNS }): { root: string; xdg: boolean } {
  const xdg = host.env.XDG_RUNTIME_DIR;
  if (!xdg) return { root: DEFAULT_ROOT, xdg: false };
  const honour = host.euid !== 0 || (host.inUserNS() && host.env.USER !== "root");
  return honour ? { root: `${xdg}/tsrun`, xdg: true } : { root: DEFAULT_ROOT, xdg: false };
}

export class UsageError extends Error {
  override name = "UsageError";
}

export interface PreParsed {
  globals: GlobalOptions;
  /** --version / -v was given before any command. */
  version: boolean;
  /** --help / -h was given before any command. */
  help: boolean;
  /** The command id and its own argv, when one was given. */
  command?: string;
  rest: string[];
}

const VALUED = new Set(["root", "log", "log-format", "criu", "rootless"]);

/**
 * "--name=value", "-name=value", "--name" → name and value (undefined without "="). urfave/cli
 * (runc) accepts long flags with one dash as well as two.
 */
export function splitFlag(arg: string): { name: string; value: string | undefined } {
  const body = arg.replace(/^--?/, "");
  const eq = body.indexOf("=");
  return eq < 0 ? { name: body, value: undefined } : { name: body.slice(0, eq), value: body.slice(eq + 1) };
}

export function preParse(argv: readonly string[], host?: RootHost): PreParsed {
  const fallback = defaultRoot(host);
  const globals: GlobalOptions = { root: fallback.root, logFormat: "text", debug: false, systemdCgroup: false, rootless: "auto", ...(fallback.xdg ? { xdgRoot: true } : {}) };
  let version = false;
  let help = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const split = splitFlag(arg);
    const name = split.name;
    let value = split.value;
    if (VALUED.has(name) && value === undefined) {
      const next = argv[i + 1];
      if (name === "rootless" && (next === undefined || !["true", "false", "auto"].includes(next))) value = "true";
      else {
        if (next === undefined) throw new UsageError(`flag needs an argument: ${arg}`);
        value = next;
        i++;
      }
    }
    switch (name) {
      case "root":
        if (value === "") throw new UsageError("--root must not be empty");
        globals.root = value!;
        delete globals.xdgRoot;
        break;
      case "log":
        globals.log = value!;
        break;
      case "log-format":
        if (value !== "text" && value !== "json") throw new UsageError(`invalid log format ${JSON.stringify(value)}: use "text" or "json"`);
        globals.logFormat = value;
        break;
      case "criu":
        globals.criu = value!;
        break;
      case "rootless":
        if (value !== "true" && value !== "false" && value !== "auto") throw new UsageError(`invalid --rootless value ${JSON.stringify(value)}: use "true", "false" or "auto"`);
        globals.rootless = value;
        break;
      case "debug":
        globals.debug = value === undefined || value === "true";
        break;
      case "systemd-cgroup":
        globals.systemdCgroup = value === undefined || value === "true";
        break;
      case "version":
      case "v":
        version = true;
        break;
      case "help":
      case "h":
        help = true;
        break;
      default:
        throw new UsageError(`flag provided but not defined: ${arg}`);
    }
  }
  const command = argv[i];
  return command === undefined ? { globals, version, help, rest: [] } : { globals, version, help, command, rest: argv.slice(i + 1) };
}
