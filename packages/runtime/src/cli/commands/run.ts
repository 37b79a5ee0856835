import { defineCommand } from "../def.ts";
import { createFlags, createOptions } from "./create.ts";
import { runContainer } from "../../container/run.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "create and start a container, and wait for it unless --detach",
  description:
    "Creates and starts the container ID from the bundle. In the foreground tsrun forwards signals to the container, relays its terminal when it has one, returns its exit status and deletes it (unless --keep).",
  examples: ["tsrun run --bundle ./bundle mycontainer", "tsrun run -d --bundle ./bundle mycontainer"],
  flags: {
    ...createFlags,
    detach: { type: "boolean", char: "d", description: "detach from the container's process" },
    keep: { type: "boolean", description: "do not delete the container after it exits" },
    "no-subreaper": { type: "boolean", description: "accepted for runc compatibility; tsrun is the parent of the init anyway", hidden: true },
  },
  args: [{ name: "id", description: "the container id, unique on this root", required: true }],
  run(ctx, flags, args) {
    return runContainer(new Store(ctx.globals.root), { ...createOptions(ctx, flags, args[0]!), detach: flags.detach, keep: flags.keep });
  },
});
