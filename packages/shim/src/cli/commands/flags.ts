// Flags shared by `bundle` and `run --image`. No imports: `run` is on the hot path.

/** Flags that shape the container's config from the image's (shared with `run --image`). */
export const imageSpecFlags = {
  env: { type: "string", char: "e", description: "KEY=VALUE added to (or replacing in) the image's environment; repeatable", multiple: true },
  user: { type: "string", char: "u", description: "user[:group] to run as, names resolved in the image's /etc/passwd and /etc/group" },
  workdir: { type: "string", char: "w", description: "working directory (default the image's WorkingDir, or /)" },
  entrypoint: { type: "string", description: "program to run instead of the image's Entrypoint (its Cmd is dropped unless ARGS are given)" },
  tty: { type: "boolean", char: "t", description: "give the container a terminal" },
  hostname: { type: "string", description: "the container's hostname" },
  "read-only": { type: "boolean", description: "mount the container's root filesystem read-only" },
  seccomp: { type: "string", description: "seccomp profile: Docker's default, or none", default: "default", options: ["default", "unconfined"] },
} as const;

export function bundleSpecOptions(flags: {
  env: string[];
  user?: string | undefined;
  workdir?: string | undefined;
  entrypoint?: string | undefined;
  tty: boolean;
  hostname?: string | undefined;
  "read-only": boolean;
  seccomp: string;
}) {
  return {
    ...(flags.env.length ? { env: flags.env } : {}),
    ...(flags.user !== undefined ? { user: flags.user } : {}),
    ...(flags.workdir !== undefined ? { cwd: flags.workdir } : {}),
    ...(flags.entrypoint !== undefined ? { entrypoint: [flags.entrypoint] } : {}),
    ...(flags.tty ? { tty: true } : {}),
    ...(flags.hostname !== undefined ? { hostname: flags.hostname } : {}),
    ...(flags["read-only"] ? { readonlyRootfs: true } : {}),
    seccomp: flags.seccomp === "unconfined" ? ("unconfined" as const) : ("default" as const),
  };
}

/** The network flags of `run --image` (a bundle made by `tsrun bundle` gets no network: it is the run's). */
export const networkFlags = {
  net: { type: "string", description: "network: bridge (a namespace of its own on tsrun's CNI bridge, the default), host (the host's), none (only lo)", options: ["bridge", "host", "none"] },
  publish: { type: "string", char: "p", description: "publish a container port on the host: [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]; repeatable (bridge network only)", multiple: true },
} as const;
