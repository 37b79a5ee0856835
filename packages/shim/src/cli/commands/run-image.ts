// The --image half of `run` (see run.ts): bundle from the image, its network, run it, clean up.
//
// The network comes between the bundle and the container: a namespace tsrun makes and wires
// with CNI first (network/attach.ts), which the container then joins by path, so that its
// program starts with its interfaces up and the namespace outlives any of its processes for the
// DEL. Its record is written before anything of it is made, so `tsrun delete [--force]` removes
// it whatever moment a kill -9 stopped this process at.
import { readFileSync, writeFileSync } from "node:fs";
import { hostname as hostHostname } from "node:os";
import { join } from "node:path";
import type { Spec } from "@tsrun/ocispec";
import type { Context } from "@tsrun/runtime/cli";
import { CliError } from "@tsrun/runtime/cli";
import runtimeRun from "@tsrun/runtime/cli/run";
import type { BundleRequest } from "../../image/service.ts";
import { withNetwork, type EtcFiles } from "../../image/spec.ts";
import { setupNetwork, teardownNetwork, type NetworkMode, type NetworkSetup } from "../../network/attach.ts";
import { hostsFile, parsePublish, resolvConf } from "../../network/config.ts";
import { images, userErrors } from "./common.ts";

type RunFlags = Parameters<typeof runtimeRun.run>[1] & { image: string; rm: boolean; "image-root"?: string | undefined; net?: string | undefined; publish: string[] };

function readHostFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** The bundle's own /etc/hosts, /etc/hostname and /etc/resolv.conf, for the bind mounts of withNetwork. */
function writeEtcFiles(dir: string, mode: NetworkMode, hostname: string, addresses: string[]): EtcFiles {
  const files: EtcFiles = { hosts: join(dir, "hosts"), hostname: join(dir, "hostname"), resolvConf: join(dir, "resolv.conf") };
  // On the host's network the host's names are the container's, as Docker has it.
  const hosts = mode === "host" ? readHostFile("/etc/hosts") || hostsFile(hostname, []) : hostsFile(hostname, addresses);
  writeFileSync(files.hosts, hosts, { mode: 0o644 });
  writeFileSync(files.hostname, `${hostname}\n`, { mode: 0o644 });
  writeFileSync(files.resolvConf, resolvConf(readHostFile("/etc/resolv.conf"), mode !== "host"), { mode: 0o644 });
  return files;
}

export async function runFromImage(ctx: Context, flags: RunFlags, id: string, cmd: string[], spec: Omit<BundleRequest, "image" | "dir">): Promise<number> {
  // $TSRUN_NET sets the default: a test suite whose containers need no network (or a host
  // whose user wants none by default) keeps the bridge, its chains and its subnet off the host.
  const mode = (flags.net ?? process.env.TSRUN_NET ?? "bridge") as NetworkMode;
  if (!["bridge", "host", "none"].includes(mode)) throw new CliError(`$TSRUN_NET ${JSON.stringify(mode)}: expected bridge, host or none`);
  const ports = await userErrors(async () => parsePublish(flags.publish));
  if (ports.length && mode !== "bridge") throw new CliError(`-p publishes ports of a container on the bridge network, not with --net ${mode}`);
  const svc = images(flags);
  const dir = join(svc.root, "bundles", id);
  // As docker does: the container's hostname is its name unless asked otherwise; on the host's
  // network, the host's name.
  const hostname = spec.hostname ?? (mode === "host" ? hostHostname() : id);
  const bundle = await userErrors(() => svc.bundle({ image: flags.image, dir, id, ...(cmd.length ? { args: cmd } : {}), ...spec, hostname }));
  let net: NetworkSetup | undefined;
  const removeNetwork = async () => {
    if (net) await teardownNetwork(svc.root, net.record.containerId);
    net = undefined;
  };
  let code: number;
  try {
    if (mode !== "host") net = await userErrors(() => setupNetwork({ imageRoot: svc.root, root: ctx.globals.root, id, bundle: dir, mode, ports }));
    const files = writeEtcFiles(dir, mode, hostname, net?.addresses ?? []);
    const config: Spec = withNetwork(bundle.config, net ? { netns: net.record.netns } : "host", files);
    writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
    // Docker's life: without --rm the container is kept when it exits (listed, committable),
    // until `tsrun delete ID` removes it with its writable layer and mounts.
    code = await runtimeRun.run(ctx, { ...flags, bundle: dir, keep: flags.keep || !flags.rm }, [id]);
  } catch (e) {
    // Nothing of a container that never ran is kept.
    try {
      await removeNetwork();
    } finally {
      await svc.removeBundle(dir);
    }
    throw e;
  }
  // A detached container keeps its network until `tsrun delete`; one that ran in the
  // foreground has exited, and a stopped container holds no address or port (as with Docker).
  if (!flags.detach) await userErrors(removeNetwork);
  if (flags.rm) await svc.removeBundle(dir);
  return code;
}
