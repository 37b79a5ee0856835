import { COMMANDS } from "./registry.ts";

export function rootHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const lines = Object.entries(COMMANDS).map(([id, c]) => `  ${id.padEnd(width)}  ${c.summary}`);
  return `tsrun: an OCI container runtime (runc-compatible)

USAGE
  $ tsrun [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS]

COMMANDS
${lines.join("\n")}

GLOBAL FLAGS (before the command, as with runc)
  --root DIR             root directory for container state (default "/run/tsrun")
  --log FILE             write log lines to FILE (default: errors to stderr)
  --log-format FORMAT    "text" (default) or "json"
  --debug                enable debug logging
  --systemd-cgroup       use systemd for cgroups (cgroupsPath "slice:prefix:name")
  --rootless VALUE       ignore cgroup permission errors: true, false or auto
  --help, -h             show help
  --version, -v          print the version

Run "tsrun COMMAND --help" for a command's flags.
`;
}
