import { defineCommand } from "../def.ts";
import { restoreContainer } from "../../container/criu.ts";
import { Store } from "../../container/store.ts";

// runc's flags, so that engines' command lines parse; tsrun refuses the restore itself with the
// reason (container/criu.ts) before it claims the id.
export default defineCommand({
  summary: "restore a container from a previous checkpoint (needs CRIU; refused with the reason)",
  description:
    "runc's restore, through CRIU. tsrun looks for CRIU (--criu, default `criu` in PATH) and runs `criu check`; it does not drive CRIU itself, so the command always fails, saying what is missing: CRIU, the kernel features it needs, or tsrun's support. Nothing is created.",
  flags: {
    "console-socket": { type: "string", description: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal" },
    "image-path": { type: "string", description: "path to criu image files for restoring" },
    "work-path": { type: "string", description: "path for saving work files and logs" },
    "tcp-established": { type: "boolean", description: "allow open tcp connections" },
    "ext-unix-sk": { type: "boolean", description: "allow external unix sockets" },
    "shell-job": { type: "boolean", description: "allow shell jobs" },
    "file-locks": { type: "boolean", description: "handle file locks, for safety" },
    "manage-cgroups-mode": { type: "string", description: "cgroups mode: 'soft' (default), 'full' and 'strict'", options: ["soft", "full", "strict", "ignore"] },
    bundle: { type: "string", char: "b", description: "path to the root of the bundle directory" },
    detach: { type: "boolean", char: "d", description: "detach from the container's process" },
    "pid-file": { type: "string", description: "specify the file to write the process id to" },
    "no-subreaper": { type: "boolean", description: "disable the use of the subreaper used to reap reparented processes" },
    "no-pivot": { type: "boolean", description: "do not use pivot root to jail process inside rootfs" },
    "empty-ns": { type: "string", description: "create a namespace, but don't restore its properties", multiple: true },
    "auto-dedup": { type: "boolean", description: "enable auto deduplication of memory images" },
    "lazy-pages": { type: "boolean", description: "use userfaultfd to lazily restore memory pages" },
    "lsm-profile": { type: "string", description: "Specify an LSM profile to be used during restore in the form of TYPE:NAME." },
    "lsm-mount-context": { type: "string", description: "Specify an LSM mount context to be used during restore." },
  },
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, _flags, args) {
    restoreContainer(new Store(ctx.globals.root), args[0]!, ctx.globals.criu ?? "criu");
  },
});
