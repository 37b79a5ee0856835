import { defineCommand } from "../def.ts";
import { checkpointContainer } from "../../container/criu.ts";
import { Store } from "../../container/store.ts";

// runc's flags, so that engines' command lines parse; tsrun refuses the checkpoint itself with
// the reason (container/criu.ts) before it touches the container.
export default defineCommand({
  summary: "checkpoint a running container (needs CRIU; refused with the reason)",
  description:
    "runc's checkpoint, through CRIU. tsrun looks for CRIU (--criu, default `criu` in PATH) and runs `criu check`; it does not drive CRIU itself, so the command always fails, saying what is missing: CRIU, the kernel features it needs, or tsrun's support. The container is left as it was.",
  flags: {
    "image-path": { type: "string", description: "path for saving criu image files" },
    "work-path": { type: "string", description: "path for saving work files and logs" },
    "parent-path": { type: "string", description: "path for previous criu image files in pre-dump" },
    "leave-running": { type: "boolean", description: "leave the process running after checkpointing" },
    "tcp-established": { type: "boolean", description: "allow open tcp connections" },
    "ext-unix-sk": { type: "boolean", description: "allow external unix sockets" },
    "shell-job": { type: "boolean", description: "allow shell jobs" },
    "lazy-pages": { type: "boolean", description: "use userfaultfd to lazily restore memory pages" },
    "status-fd": { type: "integer", description: "criu writes \\0 to this FD once lazy-pages is ready", default: -1, min: -1 },
    "page-server": { type: "string", description: "ADDRESS:PORT of the page server" },
    "file-locks": { type: "boolean", description: "handle file locks, for safety" },
    "pre-dump": { type: "boolean", description: "dump container's memory information only, leave the container running after this" },
    "manage-cgroups-mode": { type: "string", description: "cgroups mode: 'soft' (default), 'full' and 'strict'", options: ["soft", "full", "strict", "ignore"] },
    "empty-ns": { type: "string", description: "create a namespace, but don't restore its properties", multiple: true },
    "auto-dedup": { type: "boolean", description: "enable auto deduplication of memory images" },
  },
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, _flags, args) {
    checkpointContainer(new Store(ctx.globals.root), args[0]!, ctx.globals.criu ?? "criu");
  },
});
