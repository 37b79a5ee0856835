// A shim daemon for the tests that drive the Task service over ttrpc without containerd
// (task.test.ts, task-timeout.test.ts): a temporary directory with a busybox layer in it, `shim
// start` run there as containerd runs it (src/bin/shim.ts under this bun), a ttrpc client on the
// daemon's socket, and bundles made by `tsrun spec`. stop() leaves nothing: the daemon, the
// containers a failure left (tsrun's own `delete --force`), the mounts under the directory, the
// socket, the directory, and the host directories for shim sockets if the test made them.
//
// The pieces shim-grpc.test.ts shares (its daemons are the built binary, started by a fake
// containerd): daemonPid, mountedUnder, specBundle, runcOptions and removeLeftovers.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { umount2, MNT_DETACH } from "@tsrun/runtime/linux";
import { TtrpcClient } from "../src/ttrpc/client.ts";
import type { TtrpcError } from "../src/ttrpc/status.ts";
import { taskProto, TASK_SERVICE_V2, type Codec } from "../src/task/proto.ts";
import { mountPoints } from "../src/task/rootfs.ts";
import { SOCKET_DIR } from "../src/bin/manager.ts";

const repo = join(import.meta.dir, "../../..");
const SHIM = join(repo, "packages/shim/src/bin/shim.ts");
const p = taskProto();

/** The daemon's pid, found by its -socket argument (start does not print it); 0 if none runs. */
export function daemonPid(sock: string): number {
  for (const entry of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(sock)) return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  return 0;
}

export function mountedUnder(path: string): string[] {
  return mountPoints().filter((m) => m === path || m.startsWith(`${path}/`));
}

/** The error a call that must fail failed with (throws if it succeeded). */
export const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: unknown) => e as TtrpcError,
  );

/**
 * A bundle directory with `tsrun spec`'s config.json, made to run `args` without a terminal on
 * its rootfs/ (read-only or not), then handed to `edit`; rootfs/ is made empty, for the shim to
 * mount on.
 */
export function specBundle(tsrun: string, bundle: string, args: string[], readonly: boolean, edit?: (config: Record<string, any>) => void): { bundle: string; rootfs: string } {
  const rootfs = join(bundle, "rootfs");
  mkdirSync(rootfs, { recursive: true });
  const spec = Bun.spawnSync([tsrun, "spec"], { cwd: bundle });
  if (!spec.success) throw new Error(`tsrun spec: ${spec.stderr}`);
  const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
  config.process.terminal = false;
  config.process.args = args;
  config.root = { path: "rootfs", readonly };
  edit?.(config);
  writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
  return { bundle, rootfs };
}

/** A Create request's options as containerd passes them: the runtime binary and its state root. */
export function runcOptions(binaryName: string, root: string) {
  return { typeUrl: "containerd.runc.v1.Options", value: p.runcOptions.encode({ binaryName, root }) };
}

/** The host directories a shim makes for its sockets (SOCKET_DIR and its parent) that are not there now, children first. */
export function missingSocketDirs(): string[] {
  return [SOCKET_DIR, dirname(SOCKET_DIR)].filter((d) => !existsSync(d));
}

/**
 * Removes what shim daemons under test may have left, in this order: kills `pids`; deletes the
 * containers under `runtime.root` (the runtime's own `delete --force`); unmounts whatever is
 * mounted under `dir`, deepest first; removes `sockets` and `dir`; removes each of `made` (host
 * directories the test made, children first) once empty.
 */
export function removeLeftovers(o: { pids: Iterable<number>; runtime?: { tsrun: string; root: string }; dir: string; sockets: Iterable<string>; made: string[] }): void {
  for (const pid of o.pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone (as after a Shutdown).
    }
  }
  if (o.runtime && existsSync(o.runtime.root)) {
    for (const e of readdirSync(o.runtime.root, { withFileTypes: true })) {
      if (e.isDirectory()) Bun.spawnSync([o.runtime.tsrun, "--root", o.runtime.root, "delete", "--force", e.name], { stdio: ["ignore", "ignore", "ignore"] });
    }
  }
  for (const m of mountedUnder(o.dir).sort((a, b) => b.length - a.length)) {
    try {
      umount2(m, MNT_DETACH);
    } catch {
      // Best effort.
    }
  }
  for (const s of o.sockets) rmSync(s, { force: true });
  rmSync(o.dir, { recursive: true, force: true });
  for (const d of o.made) {
    try {
      rmdirSync(d);
    } catch {
      // Missing, or not empty (someone else's): left as it is.
    }
  }
}

export class ShimDaemon {
  /** The temporary directory: the layer, the shim's bundle, the runtime's state, the tests' bundles. */
  readonly dir: string;
  /** The runtime's state root (the runc options' Root); containers go under <stateRoot>/<ns>. */
  readonly stateRoot: string;
  /** The busybox root filesystem (scripts/make-rootfs.sh), for the bundles' rootfs mounts. */
  readonly layer: string;
  /** The directory `shim start` runs in, as containerd runs it in the first container's bundle. */
  readonly shimBundle: string;
  client!: TtrpcClient;
  socket = "";
  /** The daemon's pid (0 before start, or if it was not found). */
  pid = 0;
  private readonly made = missingSocketDirs();

  constructor(
    readonly ns: string,
    prefix: string,
    private readonly tsrun: string,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.stateRoot = join(this.dir, "state");
    this.layer = join(this.dir, "layer");
    this.shimBundle = join(this.dir, "shim-bundle");
  }

  /** Runs the shim (`-namespace`, `-address` in the directory, `-publish-binary /bin/true`, then `args`) in `cwd`. */
  run(args: string[], cwd: string, env: Record<string, string> = {}): { code: number; stdout: Uint8Array; stderr: string } {
    const r = Bun.spawnSync([process.execPath, SHIM, "-namespace", this.ns, "-address", join(this.dir, "containerd.sock"), "-publish-binary", "/bin/true", ...args], {
      cwd,
      env: { ...process.env, ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
  }

  /** Makes the layer, runs `shim start` (with `env` added) in shimBundle, connects the client; returns what start printed. */
  async start(env: Record<string, string> = {}): Promise<string> {
    const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-rootfs.sh"), this.layer]);
    if (!mk.success) throw new Error(`make-rootfs.sh: ${mk.stderr}`);
    mkdirSync(this.shimBundle);
    const r = this.run(["-id", `shim-${process.pid}`, "start"], this.shimBundle, env);
    const address = new TextDecoder().decode(r.stdout);
    if (r.code !== 0) throw new Error(`shim start failed (${r.code}): ${address}${r.stderr}`);
    this.socket = address.slice("unix://".length);
    this.pid = daemonPid(this.socket);
    this.client = await TtrpcClient.connect(this.socket);
    return address;
  }

  /** A Task call in the fixture's namespace (30 s at most); a property, to be taken off the fixture. */
  readonly call = async <Req, Res>(method: string, req: Partial<Req>, reqCodec: Codec<Req>, resCodec: Codec<Res>, service = TASK_SERVICE_V2): Promise<Res> => {
    const bytes = await this.client.call(service, method, reqCodec.encode(req), { metadata: { "containerd-namespace-ttrpc": this.ns }, timeoutMs: 30_000 });
    return resCodec.decode(bytes);
  };

  /** Removes everything the daemon and the tests made (see the top of the file). */
  stop(): void {
    this.client?.close();
    removeLeftovers({
      pids: this.pid > 0 ? [this.pid] : [],
      runtime: { tsrun: this.tsrun, root: join(this.stateRoot, this.ns) },
      dir: this.dir,
      sockets: this.socket ? [this.socket] : [],
      made: this.made,
    });
  }
}
