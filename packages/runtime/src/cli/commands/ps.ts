import { defineCommand } from "../def.ts";
import { ContainerError } from "../../container/errors.ts";
import { containerPids, filterPsOutput } from "../../container/ps.ts";
import { Store } from "../../container/store.ts";

export default defineCommand({
  summary: "display the processes running inside a container",
  description:
    "Lists the processes of the container's cgroup. --format json prints their host pids as a JSON array (null when there are none, as runc prints it); the table is the host's ps(1) run with PS_ARGS (default -ef), keeping the header and the container's lines.",
  usage: ["ps [--format table|json] ID [PS_ARGS...]"],
  examples: ["tsrun ps mycontainer", "tsrun ps --format json mycontainer", "tsrun ps mycontainer -o pid,stat,args"],
  flags: { format: { type: "string", char: "f", description: "select one of: table or json", default: "table" } },
  args: [{ name: "id", description: "the container id", required: true }],
  variadic: true,
  passThrough: true,
  run(ctx, flags, args) {
    // Checked here rather than by the parser, for runc's message.
    if (flags.format !== "table" && flags.format !== "json") throw new ContainerError("invalid format option");
    const pids = containerPids(new Store(ctx.globals.root), args[0]!);
    if (flags.format === "json") {
      // runc encodes an empty Go slice as null; engines decoding into a list accept both.
      ctx.stdout(`${pids.length === 0 ? "null" : JSON.stringify(pids)}\n`);
      return 0;
    }
    const psArgs = args.length > 1 ? args.slice(1) : ["-ef"];
    const r = Bun.spawnSync(["ps", ...psArgs], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    if (!r.success) throw new ContainerError(`ps ${psArgs.join(" ")}: exit status ${r.exitCode ?? `signal ${r.signalCode}`}: ${(r.stdout.toString() + r.stderr.toString()).trim()}`);
    ctx.stdout(filterPsOutput(r.stdout.toString(), pids));
    return 0;
  },
});
