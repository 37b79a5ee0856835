import { defineCommand } from "../def.ts";
import { containerEvents, parseDuration } from "../../container/events.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
  description:
    'Prints JSON lines, as runc does: {"type":"stats","id":ID,"data":{cpu, cpuset, memory, pids, blkio, hugetlb, …}} every --interval, and {"type":"oom","id":ID} when the OOM killer acts in the container, until the container stops. With --stats, one stats line and exit.',
  flags: {
    interval: { type: "string", description: "set the stats collection interval", default: "5s" },
    stats: { type: "boolean", description: "display the container's stats then exit" },
  },
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, flags, args) {
    const intervalMs = parseDuration(flags.interval);
    containerEvents(new Store(ctx.globals.root), args[0]!, { stats: flags.stats, intervalMs }, ctx.stdout);
    return 0;
  },
});
