import { defineCommand } from "../def.ts";
import { resumeContainer } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "resume every process of a paused container",
  description: "Thaws the processes that `pause` froze; signals sent meanwhile are delivered now.",
  flags: {},
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, _flags, args) {
    resumeContainer(new Store(ctx.globals.root), args[0]!);
    return 0;
  },
});
