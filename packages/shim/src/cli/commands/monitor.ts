// The hidden mode of the tsrun binary that monitors one image container (src/monitor/monitor.ts).
// Registered only when tsrun starts itself as a monitor ($_TSRUN_MONITOR): it is in no help.
import { defineCommand } from "@tsrun/runtime/cli";

export default defineCommand({
  summary: "monitor an image container (internal: started by `tsrun run --image`)",
  flags: {
    bundle: { type: "string", description: "the container's bundle" },
    "image-root": { type: "string", description: "the image store" },
    image: { type: "string", description: "the image the container runs" },
    tty: { type: "boolean", description: "the container has a terminal" },
    stdin: { type: "boolean", description: "keep the container's stdin open" },
    rm: { type: "boolean", description: "remove the container when it exits" },
  },
  args: [{ name: "id", description: "the container id", required: true }],
  async run(ctx, flags, args) {
    const { runMonitor, selfCommand } = await import("../../monitor/monitor.ts");
    const code = await runMonitor({
      root: ctx.globals.root,
      imageRoot: flags["image-root"]!,
      bundle: flags.bundle!,
      id: args[0]!,
      image: flags.image ?? "",
      tty: flags.tty,
      stdin: flags.stdin,
      rm: flags.rm,
      self: selfCommand(),
    });
    // Nothing is left to do: streams of the container's stdio or the attach server must not keep it.
    process.exit(code);
  },
});
