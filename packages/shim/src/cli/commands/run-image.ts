// The --image half of `run` (see run.ts): bundle from the image, its network, run it, clean up.
//
// The network comes between the bundle and the container: a namespace tsrun makes and wires
// with CNI first (network/attach.ts), which the container then joins by path, so that its
// program starts with its interfaces up and the namespace outlives any of its processes for the
// DEL. Its record is written before anything of it is made, so `tsrun delete [--force]` removes
// it whatever moment a kill -9 stopped this process at.
import { readFileSync, writeFileSync } from "node:fs";
import { hostname as hostHostname } from "node:os";
import { join, resolve } from "node:path";
import type { Spec } from "@tsrun/ocispec";
import type { Context } from "@tsrun/runtime/cli";
import { CliError } from "@tsrun/runtime/cli";
import runtimeRun from "@tsrun/runtime/cli/run";
import { forwardSignals, startContainer, Store } from "@tsrun/runtime";
import * as linux from "@tsrun/runtime/linux";
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { attach, DEFAULT_DETACH_KEYS, parseDetachKeys } from "../../monitor/attach.ts";
import { monitorAlive, monitorFiles, readMonitorRecord } from "../../monitor/files.ts";
import { selfCommand } from "../../monitor/monitor.ts";
import { removeContainer } from "./delete.ts";
import type { BundleRequest } from "../../image/service.ts";
import { withNetwork, type EtcFiles } from "../../image/spec.ts";
import { setupNetwork, teardownNetwork, type NetworkMode, type NetworkSetup } from "../../network/attach.ts";
import { hostsFile, parsePublish, resolvConf } from "../../network/config.ts";
import { images, userErrors } from "./common.ts";

type RunFlags = Parameters<typeof runtimeRun.run>[1] & {
  image: string;
  rm: boolean;
  "image-root"?: string | undefined;
  net?: string | undefined;
  publish: string[];
  interactive: boolean;
  tty: boolean;
  "detach-keys"?: string | undefined;
};

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
  const detachKeys = await userErrors(async () => parseDetachKeys(flags["detach-keys"] ?? DEFAULT_DETACH_KEYS));
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
  try {
    if (mode !== "host") net = await userErrors(() => setupNetwork({ imageRoot: svc.root, root: ctx.globals.root, id, bundle: dir, mode, ports }));
    const files = writeEtcFiles(dir, mode, hostname, net?.addresses ?? []);
    const config: Spec = withNetwork(bundle.config, net ? { netns: net.record.netns } : "host", files);
    writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
    // Its monitor creates it and holds its stdio (monitor/monitor.ts).
    await startMonitor(ctx.globals.root, svc.root, dir, id, flags);
  } catch (e) {
    // Nothing of a container that never ran is kept.
    try {
      await removeNetwork();
    } finally {
      await svc.removeBundle(dir);
    }
    throw e;
  }
  // Docker's life from here: the container is kept when it exits (logs, listed, committable),
  // its network released by its monitor then, until `tsrun delete ID` removes it with its
  // writable layer, mounts, log and monitor; with --rm the monitor removes it when it exits.
  const store = new Store(ctx.globals.root);
  const start = () => startContainer(store, id);
  // A container that did not start (its program is missing …) is not kept.
  const removeOnError = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (e) {
      await removeContainer(ctx.globals.root, id, true, svc.root).catch(() => {});
      throw e;
    }
  };
  if (flags.detach) {
    await removeOnError(async () => start());
    ctx.stdout(`${id}\n`);
    return 0;
  }
  return removeOnError(() => foreground(ctx.globals.root, dir, id, flags, detachKeys, start));
}

/** Attached: the container's stdio here, signals forwarded (without a terminal), its exit status returned. */
export async function foreground(root: string, dir: string, id: string, o: { interactive: boolean; tty: boolean }, detachKeys: number[], start?: () => void): Promise<number> {
  let stop = () => {};
  let startError: unknown;
  const monitor = readMonitorRecord(dir);
  const r = await attach({
    bundle: dir,
    stdin: o.interactive,
    tty: o.tty,
    detachKeys,
    connected: () => {
      try {
        start?.();
      } catch (e) {
        startError = e;
        return;
      }
      // With a terminal, ^C reaches the container through it; without, as a signal to us.
      if (!o.tty) {
        const rec = new Store(root).read(id);
        stop = forwardSignals((sig) => linux.killVerified(rec.pid, rec.pidStartTime, sig));
      }
    },
  });
  stop();
  if (startError) throw startError;
  if (r === undefined) throw new CliError(`container ${id} is not running: nothing to attach to (\`tsrun logs ${id}\` shows its output)`);
  // When the container has exited, so has its monitor once we return: nothing of a `run --rm` is left.
  if ("exit" in r && monitor) for (let i = 0; i < 300 && monitorAlive(monitor); i++) await Bun.sleep(10);
  if ("detached" in r) {
    process.stderr.write(`\r\ntsrun: detached from ${id}; it runs on (\`tsrun attach ${id}\` to come back)\r\n`);
    return 0;
  }
  return r.exit;
}

/**
 * Starts the container's monitor in a session of its own, holding nothing of ours but a status
 * pipe it closes once the container is created; returns then, or throws create's error.
 */
async function startMonitor(root: string, imageRoot: string, dir: string, id: string, flags: RunFlags): Promise<void> {
  const self = selfCommand();
  const files = monitorFiles(dir);
  const err = openSync(files.err, "a", 0o600);
  // Absolute: the monitor works from /, not from our directory.
  const args = [...self.slice(1), "--root", resolve(root), "__monitor", "--bundle", resolve(dir), "--image-root", resolve(imageRoot), "--image", flags.image];
  if (flags.tty) args.push("--tty");
  if (flags.interactive) args.push("--stdin");
  if (flags.rm) args.push("--rm");
  args.push(id);
  const m = spawn(self[0]!, args, { detached: true, stdio: ["ignore", "ignore", err, "pipe"], env: { ...process.env, _TSRUN_MONITOR: "1" } });
  closeSync(err);
  const pipe = m.stdio[3] as NodeJS.ReadableStream;
  // Bun does not count the pipe of a detached child as work to wait for: without this, tsrun
  // could exit (0) with the reply still unread when the monitor fails at once.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    return await readReply(m, pipe, files.err);
  } finally {
    clearInterval(keepAlive);
  }
}

async function readReply(m: ReturnType<typeof spawn>, pipe: NodeJS.ReadableStream, errFile: string): Promise<void> {
  const reply = await new Promise<string>((resolve) => {
    let text = "";
    pipe.on("data", (d: Buffer) => (text += d.toString()));
    pipe.on("end", () => resolve(text));
    pipe.on("error", () => resolve(text));
  });
  m.unref();
  let msg: { created?: boolean; error?: string } = {};
  try {
    msg = JSON.parse(reply.trim().split("\n")[0] ?? "{}") as typeof msg;
  } catch {
    // said nothing: see below
  }
  if (msg.created) return;
  // The monitor is done (it closed the pipe by exiting): wait for it, so that nothing of it is left.
  await new Promise<void>((resolve) => (m.exitCode !== null || m.signalCode !== null ? resolve() : m.once("exit", () => resolve())));
  let why = "";
  try {
    why = readFileSync(errFile, "utf8").trim();
  } catch {
    // nothing written
  }
  throw new CliError(msg.error ?? `the container's monitor failed${why ? `: ${why}` : ""}`);
}
