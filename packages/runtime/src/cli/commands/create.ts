import { defineCommand, type Context, type FlagValues } from "../def.ts";
import { createContainer, type CreateOptions } from "../../container/create.ts";
import { Store } from "../../container/store.ts";

export const createFlags = {
  bundle: { type: "string", char: "b", description: "path to the root of the bundle directory (default: the current directory)" },
  "console-socket": { type: "string", description: "path to an AF_UNIX socket that receives the pty master of a container with a terminal" },
  "pid-file": { type: "string", description: "file to write the container's init pid to" },
  "no-pivot": { type: "boolean", description: "do not use pivot_root (for a rootfs on a ramdisk); MS_MOVE and chroot instead" },
  "no-new-keyring": { type: "boolean", description: "do not create a new session keyring for the container" },
  "preserve-fds": { type: "integer", description: "pass this many additional fds (3 and up) to the container", default: 0, min: 0 },
} as const;

type CreateFlags = FlagValues<typeof createFlags>;

/** The library's create options from the command line (shared by create and run). */
export function createOptions(ctx: Context, flags: CreateFlags, id: string): CreateOptions {
  return {
    id,
    bundle: flags.bundle ?? ".",
    ...(flags["pid-file"] ? { pidFile: flags["pid-file"] } : {}),
    ...(flags["console-socket"] ? { consoleSocket: flags["console-socket"] } : {}),
    noPivot: flags["no-pivot"],
    noNewKeyring: flags["no-new-keyring"],
    preserveFds: flags["preserve-fds"],
    systemdCgroup: ctx.globals.systemdCgroup,
  };
}

export default defineCommand({
  summary: "create a container (its program waits for `tsrun start`)",
  description:
    "Creates the container ID from the bundle: namespaces, root filesystem, devices, cgroup, process set-up. The container's init then waits in the created state until `tsrun start ID`.",
  examples: ["tsrun create --bundle ./bundle mycontainer"],
  flags: createFlags,
  args: [{ name: "id", description: "the container id, unique on this root", required: true }],
  run(ctx, flags, args) {
    createContainer(new Store(ctx.globals.root), createOptions(ctx, flags, args[0]!));
    return 0;
  },
});
