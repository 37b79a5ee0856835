// `tsrun attach ID`: stdin, stdout and stderr of a running image container's main process,
// through its monitor (monitor/monitor.ts), as `docker attach`: stdin goes to the container when
// it was run with -i, its terminal (-t) is ours in raw mode and follows our size, the detach
// keys leave it running, and its exit status is ours when it exits while we are attached.
import { defineCommand, CliError } from "@tsrun/runtime/cli";
import { Store } from "@tsrun/runtime";
import { imageRootFlag, images } from "./common.ts";

export default defineCommand({
  summary: "attach to a running container of `run --image`: its stdin, stdout and stderr",
  description:
    "Attaches the terminal (or stdin, stdout and stderr) to the main process of a container run with `tsrun run --image`: its output comes here as it is written, our input goes to it if it was run with -i (raw, with its terminal sized as ours, if it was run with -t). The detach keys (Docker's default ctrl-p ctrl-q, or --detach-keys) leave it running; when it exits, tsrun exits with its status. Without a terminal, the signals tsrun gets go to the container (as `docker attach --sig-proxy`).",
  examples: ["tsrun attach shell", "tsrun attach --detach-keys ctrl-x,x shell"],
  flags: {
    ...imageRootFlag,
    "detach-keys": { type: "string", description: "the keys that detach and leave the container running (Docker's form, default ctrl-p,ctrl-q)" },
    "no-stdin": { type: "boolean", description: "do not send our stdin to the container" },
  },
  args: [{ name: "id", description: "the container id", required: true }],
  async run(ctx, flags, args) {
    const id = args[0]!;
    const { DEFAULT_DETACH_KEYS, parseDetachKeys } = await import("../../monitor/attach.ts");
    const { imageContainerBundle, readMonitorRecord, readExitRecord } = await import("../../monitor/files.ts");
    const { userErrors } = await import("./common.ts");
    const keys = await userErrors(async () => parseDetachKeys(flags["detach-keys"] ?? DEFAULT_DETACH_KEYS));
    let recordBundle: string | undefined;
    try {
      recordBundle = new Store(ctx.globals.root).read(id).bundle;
    } catch {
      throw new CliError(`container ${id} does not exist`);
    }
    const bundle = imageContainerBundle(recordBundle, images(flags).root, id);
    const m = bundle && readMonitorRecord(bundle);
    if (!bundle || !m) throw new CliError(`container ${id} has no monitor to attach to: only containers of \`tsrun run --image\` have one`);
    if (readExitRecord(bundle)) throw new CliError(`cannot attach to container ${id}: it has exited (\`tsrun logs ${id}\` shows its output)`);
    const { foreground } = await import("./run-image.ts");
    return foreground(ctx.globals.root, bundle, id, { interactive: m.stdin && !flags["no-stdin"], tty: m.tty }, keys);
  },
});
