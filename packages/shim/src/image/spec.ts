// The runtime spec (config.json) of a container made from an image: containerd's default unix spec
// (oci.populateDefaultUnixSpec) with the image config applied as oci.WithImageConfigArgs does, and
// Docker's default seccomp profile on top (containerd's ctr adds none unless asked; Docker always
// does, and an image-run container without one can unshare, mount, load BPF… whenever it holds
// the capability).
//
// What the image config contributes:
//   Entrypoint, Cmd  process.args (with the user's overrides, see processArgs)
//   Env              process.env (then the user's env over it, see mergeEnv)
//   WorkingDir       process.cwd ("/" when unset)
//   User             process.user, resolved in the rootfs's /etc/passwd and /etc/group (passwd.ts)
//   StopSignal       annotation org.opencontainers.image.stopSignal (the image-spec's conversion
//                    rule; containerd keeps it as a container label, which a bundle does not have)
// and what it does not: Labels (containerd copies them to container labels, not to the spec),
// ExposedPorts (`run --image -p` publishes ports, withNetwork below), Volumes (containerd ignores them too; Docker makes
// anonymous volumes), Healthcheck, Memory/CpuShares (reserved fields, never set by builders).
import { OCI_VERSION, parseSignal, type ImageConfig, type Mount, type Spec } from "@tsrun/ocispec";
import { resolveUser } from "./passwd.ts";
import { defaultSeccompProfile } from "./seccomp-default.ts";

/** The annotation carrying the image's StopSignal (image-spec conversion.md). */
export const STOP_SIGNAL_ANNOTATION = "org.opencontainers.image.stopSignal";

/** PATH when neither the image nor the user sets one (containerd's defaultUnixEnv, Docker's DefaultPathEnv). */
export const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** containerd's defaultUnixCaps, which is also Docker's default set. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/** containerd's masked paths: runc's plus /sys/devices/virtual/powercap (its energy counters are a side channel, CVE-2020-8694). */
export const IMAGE_MASKED_PATHS: readonly string[] = [
  "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
  "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
];
/** containerd's read-only paths (runc's). */
export const IMAGE_READONLY_PATHS: readonly string[] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/** containerd's defaultMounts (Linux). */
function defaultMounts(): Mount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
  ];
}

export class ImageSpecError extends Error {
  override name = "ImageSpecError";
}

export interface SpecFromImageOptions {
  /** root.path of the spec: relative to the bundle or absolute. Default "rootfs". */
  rootfs?: string;
  /** The rootfs on this host, where the image's /etc/passwd and /etc/group are read. */
  rootfsDir: string;
  /** The image's name, for error messages. */
  image?: string;
  /** Replaces the image's Cmd (`docker run IMAGE ARGS…`); empty means not given. */
  args?: string[];
  /** Replaces the image's Entrypoint and drops its Cmd (`docker run --entrypoint`); [] clears it. */
  entrypoint?: string[];
  /** KEY=value sets or replaces; a bare KEY removes the image's KEY. */
  env?: string[];
  /** Replaces the image's User; same forms. */
  user?: string;
  /** Replaces the image's WorkingDir; must be absolute. */
  cwd?: string;
  /** A terminal for the process (and TERM=xterm unless env sets TERM). */
  tty?: boolean;
  /** The UTS hostname; left unset (the runtime keeps the host's name in the new namespace) when absent. */
  hostname?: string;
  readonlyRootfs?: boolean;
  /** Docker's default profile (the default), or no seccomp filter. */
  seccomp?: "default" | "unconfined";
  /** Added to the spec's annotations, over the StopSignal one. */
  annotations?: Record<string, string>;
  /** The container id: linux.cgroupsPath becomes "/tsrun/<id>" (containerd's "/<namespace>/<id>"); otherwise left to the runtime (its default is the id). */
  id?: string;
  /** containerd sets no_new_privs (default true); false lets setuid binaries such as su or ping raise privileges. */
  noNewPrivileges?: boolean;
}

/**
 * Entrypoint + Cmd with the user's overrides, Docker's rules (containerd's WithImageConfigArgs has
 * the `args` half; ctr has no entrypoint override that keeps args):
 *   args given        → Entrypoint + args
 *   entrypoint given  → entrypoint + (args, or nothing: the image's Cmd was written for its own Entrypoint)
 *   neither           → Entrypoint + Cmd
 */
export function processArgs(exec: { Entrypoint?: string[] | null; Cmd?: string[] | null }, over: { args?: string[] | undefined; entrypoint?: string[] | undefined } = {}): string[] {
  const args = over.args !== undefined && over.args.length > 0 ? over.args : undefined;
  const entrypoint = over.entrypoint ?? exec.Entrypoint ?? [];
  const cmd = args ?? (over.entrypoint !== undefined ? [] : (exec.Cmd ?? []));
  return [...entrypoint, ...cmd];
}

const envKey = (e: string): string => {
  const i = e.indexOf("=");
  return i < 0 ? e : e.slice(0, i);
};

/**
 * containerd's replaceOrAppendEnvValues: each override replaces the entry with its key in place or
 * is appended; an override without "=" removes the key.
 */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const out: (string | null)[] = [...base];
  const index = new Map<string, number>();
  out.forEach((e, i) => index.set(envKey(e!), i));
  for (const o of overrides) {
    const k = envKey(o);
    const at = index.get(k);
    if (!o.includes("=")) {
      if (at !== undefined) out[at] = null;
      continue;
    }
    if (at !== undefined && out[at] !== null) out[at] = o;
    else {
      index.set(k, out.length);
      out.push(o);
    }
  }
  return out.filter((e): e is string => e !== null);
}

const hasKey = (env: readonly string[], key: string): boolean => env.some((e) => envKey(e) === key);

/** The runtime spec for a container of the image with this config. */
export function specFromImage(config: ImageConfig, opts: SpecFromImageOptions): Spec {
  const what = opts.image ? `image ${opts.image}` : "image";
  const fail = (msg: string): never => {
    throw new ImageSpecError(`${what}: ${msg}`);
  };
  if (config.os !== "linux") fail(`is built for ${JSON.stringify(config.os)}, and tsrun runs linux containers only`);
  const exec = config.config ?? {};

  const args = processArgs(exec, opts);
  if (args.length === 0) fail("no command specified: the image has no Entrypoint or Cmd; give the command to run");
  if (args[0] === "") fail("no command specified: the command's first word is empty");

  const imageEnv = exec.Env ?? [];
  imageEnv.forEach((e, i) => {
    if (!/^[^=\0]+=/.test(e)) fail(`/config/Env/${i} ${JSON.stringify(e)} is not of the form KEY=value`);
  });
  (opts.env ?? []).forEach((e) => {
    if (e === "" || e.startsWith("=") || e.includes("\0")) fail(`environment entry ${JSON.stringify(e)} has no name`);
  });
  // Docker adds PATH whenever the image lacks one; containerd only when the image has no Env at all,
  // which leaves `ENV FOO=bar` images without a PATH. Docker's rule breaks nothing containerd's allows.
  const base = hasKey(imageEnv, "PATH") ? [...imageEnv] : [DEFAULT_PATH, ...imageEnv];
  const env = mergeEnv(base, opts.env ?? []);

  const cwd = opts.cwd ?? (exec.WorkingDir || "/");
  if (!cwd.startsWith("/")) fail(`the working directory ${JSON.stringify(cwd)} ${opts.cwd !== undefined ? "" : "(/config/WorkingDir) "}must be an absolute path`);

  const user = resolveUser(opts.user ?? exec.User ?? "", opts.rootfsDir, { image: what });
  if (!hasKey(env, "HOME")) env.push(`HOME=${user.home}`);
  if (opts.tty && !hasKey(env, "TERM")) env.push("TERM=xterm");

  const annotations: Record<string, string> = {};
  if (exec.StopSignal) {
    if (parseSignal(exec.StopSignal) === undefined) fail(`/config/StopSignal ${JSON.stringify(exec.StopSignal)} is not a signal`);
    annotations[STOP_SIGNAL_ANNOTATION] = exec.StopSignal;
  }
  Object.assign(annotations, opts.annotations ?? {});

  const caps = [...DEFAULT_CAPABILITIES];
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: opts.tty ?? false,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args,
      env,
      cwd,
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: opts.noNewPrivileges ?? true,
    },
    root: { path: opts.rootfs ?? "rootfs", readonly: opts.readonlyRootfs ?? false },
    mounts: defaultMounts(),
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network" }],
      maskedPaths: [...IMAGE_MASKED_PATHS],
      readonlyPaths: [...IMAGE_READONLY_PATHS],
    },
  };
  if (opts.hostname !== undefined) spec.hostname = opts.hostname;
  if (opts.id !== undefined) {
    if (opts.id === "" || opts.id.includes("/") || opts.id === "." || opts.id === "..") fail(`container id ${JSON.stringify(opts.id)} cannot name a cgroup`);
    spec.linux!.cgroupsPath = `/tsrun/${opts.id}`;
  }
  if ((opts.seccomp ?? "default") === "default") spec.linux!.seccomp = defaultSeccompProfile({ capabilities: caps });
  if (Object.keys(annotations).length > 0) spec.annotations = annotations;
  return spec;
}

/** The container's own /etc/hosts, /etc/hostname and /etc/resolv.conf: files of the bundle, bind-mounted over the image's. */
export interface EtcFiles {
  hosts: string;
  hostname: string;
  resolvConf: string;
}

/**
 * The network of `run --image` applied to a bundle's spec: the network namespace joined by path
 * (one tsrun made and wired with CNI before the container starts), or none of its own for the
 * host's network; and the /etc files bind-mounted as containerd and Docker mount theirs (rbind,
 * rprivate, writable even on a read-only root: they are the container's own copies).
 */
export function withNetwork(spec: Spec, net: { netns: string } | "host", files: EtcFiles): Spec {
  const namespaces = (spec.linux?.namespaces ?? []).filter((n) => n.type !== "network");
  if (net !== "host") namespaces.push({ type: "network", path: net.netns });
  const bind = (destination: string, source: string): Mount => ({ destination, type: "bind", source, options: ["rbind", "rprivate"] });
  const etc = [bind("/etc/hosts", files.hosts), bind("/etc/hostname", files.hostname), bind("/etc/resolv.conf", files.resolvConf)];
  const mounts = (spec.mounts ?? []).filter((m) => !etc.some((e) => e.destination === m.destination));
  return { ...spec, mounts: [...mounts, ...etc], linux: { ...spec.linux, namespaces } };
}
