import { defineCommand } from "../def.ts";
import { startContainer } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "start a created container: run its program",
  description: "Lets a container made by `tsrun create` run the program of its config (process.args). Fails unless the container is in the created state.",
  flags: {},
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, _flags, args) {
    startContainer(new Store(ctx.globals.root), args[0]!);
    return 0;
  },
});
