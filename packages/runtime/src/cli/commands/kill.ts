import { defineCommand } from "../def.ts";
import { killContainer } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "send a signal to a container's init (or all its processes)",
  description: "Sends SIGNAL (a name with or without SIG, or a number; SIGTERM when omitted) to the container's init process, or with --all to every process in its cgroup.",
  examples: ["tsrun kill mycontainer", "tsrun kill mycontainer KILL", "tsrun kill --all mycontainer 9"],
  flags: { all: { type: "boolean", char: "a", description: "send the signal to all processes in the container" } },
  args: [
    { name: "id", description: "the container id", required: true },
    { name: "signal", description: "signal to send (default SIGTERM)" },
  ],
  run(ctx, flags, args) {
    killContainer(new Store(ctx.globals.root), args[0]!, args[1] ?? "SIGTERM", flags.all);
    return 0;
  },
});
