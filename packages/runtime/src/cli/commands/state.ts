import { defineCommand } from "../def.ts";
import { containerState } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "output the state of a container",
  description: "Prints the runtime-spec state of the container as JSON: id, pid, status (creating, created, running, paused, stopped), bundle, rootfs, created, owner, annotations.",
  flags: {},
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, _flags, args) {
    ctx.stdout(JSON.stringify(containerState(new Store(ctx.globals.root), args[0]!), null, 2) + "\n");
    return 0;
  },
});
