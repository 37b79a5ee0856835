import { splitFlag } from "@tsrun/runtime/cli";
// The shim's command line, in Go `flag` syntax as containerd writes it:
// `-namespace ns -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id ID [-debug] start`.
// Pure: argv in, options out.

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  /** Ours: the socket the daemon listens on, passed by `start` to the daemon it spawns. */
  socket: string;
  /** Ours: the group the daemon serves (see manager.ts groupOf), for its log lines. */
  group: string;
  /** Ours: "grpc" makes the daemon serve the Task API over gRPC too (see bootstrap.ts); "" or "ttrpc" otherwise. */
  protocol: string;
  version: boolean;
  info: boolean;
  /** start, delete, or "" for the daemon. */
  action: string;
}

const STRING_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: "namespace",
  address: "address",
  "publish-binary": "publishBinary",
  id: "id",
  bundle: "bundle",
  socket: "socket",
  group: "group",
  protocol: "protocol",
};
const BOOL_FLAGS: Record<string, keyof ShimFlags> = { debug: "debug", v: "version", info: "info" };

export class FlagError extends Error {
  override name = "FlagError";
}

export function parseFlags(argv: readonly string[]): ShimFlags {
  const f: ShimFlags = { namespace: "", address: "", publishBinary: "", id: "", bundle: "", debug: false, socket: "", group: "", protocol: "", version: false, info: false, action: "" };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const { name, value: inline } = splitFlag(arg);
    const str = STRING_FLAGS[name];
    const bool = BOOL_FLAGS[name];
    if (str) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new FlagError(`flag needs an argument: -${name}`);
      (f as unknown as Record<string, unknown>)[str] = value;
    } else if (bool) {
      if (inline !== undefined && !["true", "false", "1", "0"].includes(inline)) throw new FlagError(`invalid boolean value ${JSON.stringify(inline)} for -${name}`);
      (f as unknown as Record<string, unknown>)[bool] = inline === undefined || inline === "true" || inline === "1";
    } else {
      throw new FlagError(`flag provided but not defined: -${name}`);
    }
  }
  const rest = argv.slice(i);
  if (rest.length > 1) throw new FlagError(`unexpected arguments after ${rest[0]}: ${rest.slice(1).join(" ")}`);
  f.action = rest[0] ?? "";
  return f;
}
