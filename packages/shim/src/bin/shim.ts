// containerd-shim-tsrun-v2: containerd's runtime v2 shim for tsrun (runtime type io.containerd.tsrun.v2).
// `start` and `delete` are short commands containerd runs; without an action this is the daemon.
// Each action loads only its own modules: `start` runs on every container start, and the binary
// is tsrun's too (cli/bin.ts imports this file when run under the shim's name).
import { FlagError, parseFlags } from "./flags.ts";
import { SHIM_VERSION } from "./name.ts";

async function main(argv: string[]): Promise<number> {
  const f = parseFlags(argv);
  if (f.version) {
    await Bun.write(Bun.stdout, `${SHIM_VERSION}\n`);
    return 0;
  }
  if (f.info) {
    const stdin = await (await import("./manager.ts")).readStdin();
    await Bun.write(Bun.stdout, (await import("./info.ts")).runtimeInfo(stdin));
    return 0;
  }
  switch (f.action) {
    case "start":
      // A plain address or JSON (bootstrap.ts), no newline needed: containerd 1.6 takes stdout as the address.
      await Bun.write(Bun.stdout, await (await import("./manager.ts")).startShim(f));
      return 0;
    case "delete":
      await Bun.write(Bun.stdout, await (await import("./cleanup.ts")).deleteShim(f));
      return 0;
    case "":
      await (await import("./daemon.ts")).serve(f);
      return -1;
    default:
      throw new FlagError(`unknown action ${JSON.stringify(f.action)}: use start or delete`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // The daemon keeps running on its event loop; the commands exit when done.
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`containerd-shim-tsrun-v2: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
