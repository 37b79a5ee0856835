// A private containerd 1.6 for the end-to-end tests and the shim benchmark: its own config, root,
// state and socket under a temporary directory, the given shim and tsrun first on its PATH, CRI
// off (it needs CNI and would only slow start-up), and a busybox image made locally. stop()
// leaves nothing of it: containerd, the shims it started and their sockets, the runtimes' state,
// mounts under its directory, and the host paths it made.
//
// Outside its directory the shim and the runtime make what containerd's runc shim and runc would
// (fixed paths: containerd 1.6 passes a shim no directory), and ctr's "/<namespace>/<id>" cgroup
// paths leave a parent per hierarchy, as runc leaves it: whichever of these did not exist when
// the instance was made is removed once empty, so a host's own containerd keeps what is its.
import { closeSync, existsSync, mkdirSync, openSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { umount2, MNT_DETACH } from "@tsrun/runtime/linux";
import { mountPoints } from "../src/task/rootfs.ts";
import { DEFAULT_ROOT } from "../src/task/runtime.ts";
import { SOCKET_DIR } from "../src/bin/manager.ts";

export interface CtrResult {
  code: number;
  stdout: string;
  stderr: string;
}

const repo = join(import.meta.dir, "../../..");

/** The built shim and runtime (`bun scripts/build.ts`), which the end-to-end tests run. */
export const BUILT = { shim: join(repo, "dist/containerd-shim-tsrun-v2"), tsrun: join(repo, "dist/tsrun") };

const has = (cmd: string) => Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).success;

/**
 * An end-to-end test file's containerd on the built binaries, made when the host can run it:
 * root, the binaries, containerd, ctr, umoci and jq (scripts/make-image.sh). Otherwise `ctd` is
 * undefined, the paths are "" and canRun is false, for the file's requirements test to fail on
 * (nothing is skipped).
 */
export function testContainerd(ns: string, prefix: string) {
  const canRun = process.getuid?.() === 0 && existsSync(BUILT.shim) && existsSync(BUILT.tsrun) && ["containerd", "ctr", "umoci", "jq"].every(has);
  const ctd = canRun ? new PrivateContainerd(ns, prefix, BUILT) : undefined;
  const dir = ctd?.dir ?? "";
  return {
    canRun,
    ctd,
    dir,
    sock: ctd?.sock ?? "",
    fifos: ctd?.fifos ?? "",
    /** containerd's task bundles in the namespace (each holds the address of its shim). */
    bundles: join(dir, "state/io.containerd.runtime.v2.task", ns),
    ctr: (args: string[], timeoutMs?: number) => ctd!.ctr(args, timeoutMs),
  };
}

export class PrivateContainerd {
  /** Short (under /tmp): containerd's socket path and the shims' must fit in sun_path. */
  readonly dir: string;
  readonly sock: string;
  /** ctr's fifos for the tasks' stdio: its default is /run/containerd/fifo, on the host. */
  readonly fifos: string;
  /** Processes never counted or killed as this containerd's (a `ctr events` watcher). */
  readonly ignored = new Set<number>();
  private proc: Bun.Subprocess | undefined;
  private env: Record<string, string | undefined> = {};
  private readonly madeHere: string[];

  constructor(
    readonly ns: string,
    prefix: string,
    private readonly bins: { shim: string; tsrun: string },
  ) {
    const cgroupParents = readdirSync("/sys/fs/cgroup", { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join("/sys/fs/cgroup", e.name, ns));
    this.madeHere = [DEFAULT_ROOT, SOCKET_DIR, dirname(DEFAULT_ROOT), ...cgroupParents].filter((p) => !existsSync(p));
    this.dir = mkdtempSync(prefix);
    this.sock = join(this.dir, "c.sock");
    this.fifos = join(this.dir, "fifo");
  }

  /** containerd's own pid (0 before start). */
  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null;
  }

  /** Starts containerd with `env` added to its environment, then imports `image` (scripts/make-image.sh). */
  async start(image: string, env: Record<string, string> = {}): Promise<void> {
    const bin = join(this.dir, "bin");
    mkdirSync(bin);
    symlinkSync(this.bins.shim, join(bin, "containerd-shim-tsrun-v2"));
    symlinkSync(this.bins.tsrun, join(bin, "tsrun"));
    writeFileSync(join(this.dir, "config.toml"), 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n');
    this.env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env };
    await this.launch();
    const tar = join(this.dir, "image.tar");
    const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), tar, image], { stdout: "pipe", stderr: "pipe" });
    if (!mk.success) throw new Error(`make-image.sh: ${mk.stderr}`);
    const imp = this.ctr(["images", "import", tar]);
    if (imp.code !== 0) throw new Error(`ctr images import: ${imp.stderr}`);
  }

  /** containerd on this instance's config, root, state and socket; returns once it answers. */
  private async launch(): Promise<void> {
    const log = join(this.dir, "containerd.log");
    // Appended to: a restarted containerd's log follows the first one's.
    const out = openSync(log, "a");
    let proc: Bun.Subprocess;
    try {
      proc = Bun.spawn(["containerd", "--config", join(this.dir, "config.toml"), "--root", join(this.dir, "root"), "--state", join(this.dir, "state"), "--address", this.sock], {
        env: this.env,
        stdio: ["ignore", out, out],
      });
    } finally {
      closeSync(out);
    }
    this.proc = proc;
    const end = Date.now() + 20_000;
    while (this.ctr(["version"], 5000).code !== 0) {
      if (Date.now() > end || proc.exitCode !== null) throw new Error(`containerd did not come up: ${readFileSync(log, "utf8").slice(-2000)}`);
      await Bun.sleep(100);
    }
  }

  /**
   * Kills containerd with `signal` (SIGKILL: as a crash; the shims it started are not its
   * children and live on) and starts it again on the same config, root, state and socket.
   */
  async restart(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      proc.kill(signal);
      await proc.exited;
    }
    await this.launch();
  }

  ctr(args: string[], timeoutMs = 60_000): CtrResult {
    const r = Bun.spawnSync(["ctr", "--address", this.sock, "--namespace", this.ns, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
    return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  /** ctr without blocking the caller's event loop (for runs in parallel). */
  async ctrAsync(args: string[]): Promise<CtrResult> {
    const p = Bun.spawn(["ctr", "--address", this.sock, "--namespace", this.ns, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 120_000 });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, stdout, stderr };
  }

  /** `ctr tasks ls`: each task's init pid and status (RUNNING, STOPPED, ...), by id. */
  taskList(): Map<string, { pid: number; status: string }> {
    const out = new Map<string, { pid: number; status: string }>();
    for (const line of this.ctr(["tasks", "ls"]).stdout.split("\n").slice(1)) {
      const [id, pid, status] = line.trim().split(/\s+/);
      if (id) out.set(id, { pid: Number(pid), status: status! });
    }
    return out;
  }

  /** Processes other than containerd whose command line names `path` (the socket: shim daemons' -address, short shim commands). */
  processesUsing(path = this.sock): number[] {
    return readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e) && Number(e) !== this.pid && !this.ignored.has(Number(e)) && cmdline(e).includes(path))
      .map(Number);
  }

  mountedUnder(path = this.dir): string[] {
    return mountPoints().filter((m) => m === path || m.startsWith(`${path}/`));
  }

  /**
   * Stops containerd and removes whatever a failure left: each runtime state root's containers
   * (the runtime's own `delete --force`, as containerd's cleanup would run it; tsrun's under
   * DEFAULT_ROOT always), the shims and their sockets, mounts, the directory, the host paths made.
   */
  async stop(states: Array<[bin: string, root: string]> = []): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      proc.kill("SIGTERM");
      const end = Date.now() + 10_000;
      while (proc.exitCode === null && Date.now() < end) await Bun.sleep(50);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await proc.exited;
    }
    for (const [bin, root] of [[this.bins.tsrun, join(DEFAULT_ROOT, this.ns)] as [string, string], ...states]) {
      if (!existsSync(root)) continue;
      for (const e of readdirSync(root, { withFileTypes: true })) {
        if (e.isDirectory()) Bun.spawnSync([bin, "--root", root, "delete", "--force", e.name], { stdio: ["ignore", "ignore", "ignore"] });
      }
    }
    for (const pid of this.processesUsing()) {
      // A shim daemon's socket (its -socket argument) outlives a SIGKILL.
      const argv = cmdline(pid);
      const i = argv.indexOf("-socket");
      const socket = i >= 0 && argv[i + 1]?.startsWith(`${SOCKET_DIR}/`) ? argv[i + 1] : undefined;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone.
      }
      if (socket) rmSync(socket, { force: true });
    }
    for (const m of this.mountedUnder().sort((a, b) => b.length - a.length)) {
      try {
        umount2(m, MNT_DETACH);
      } catch {
        // Best effort.
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    // The namespace's state directory once empty (the runtime removes containers, not the
    // directory), then what was made outside the directory, children first.
    for (const p of [join(DEFAULT_ROOT, this.ns), ...this.madeHere]) {
      try {
        rmdirSync(p);
      } catch {
        // Not empty (in use by someone else) or not there: leave it.
      }
    }
  }
}

export function cmdline(pid: number | string): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}
