import { defineCommand } from "../def.ts";
import { deleteContainer } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "delete a container and everything it holds",
  description:
    "Removes a stopped (or created) container: kills what is left of it, removes its cgroup and state, runs its poststop hooks. With --force a running container is killed first, and a container whose state is damaged is removed all the same.",
  flags: { force: { type: "boolean", char: "f", description: "kill the container if it is still running; ignore a missing container" } },
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, flags, args) {
    deleteContainer(new Store(ctx.globals.root), args[0]!, flags.force);
    return 0;
  },
});
