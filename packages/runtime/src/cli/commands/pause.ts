import { defineCommand } from "../def.ts";
import { pauseContainer } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "suspend every process of a container",
  description: "Freezes every process in the container's cgroup (the v1 freezer, or cgroup.freeze on cgroup v2). `state` and `list` then show it paused; `resume` thaws it.",
  flags: {},
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, _flags, args) {
    pauseContainer(new Store(ctx.globals.root), args[0]!);
    return 0;
  },
});
