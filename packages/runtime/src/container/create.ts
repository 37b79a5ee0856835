// create: validate, claim the id, make the cgroup, compile the plan, run the executor and
// answer its sync points (id maps, hooks, console), record the init. Any failure — or tsrun
// being killed — leaves nothing that `delete --force` cannot remove: the state directory is
// claimed first, the cgroup is recorded before it is made, and the executor dies with its sync
// socket.
import { chownSync, closeSync, readFileSync, realpathSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../io.ts";
import { resolve } from "node:path";
import type { LinuxDeviceCgroup, Spec } from "@tsrun/ocispec/core";
import { validateConfig } from "@tsrun/ocispec/config";
import { parseJson, JsonSyntaxError } from "@tsrun/ocispec/json";
import { formatProblem, OCI_VERSION, NS_PROC_NAMES, sysctlNamespace, sysctlPath } from "@tsrun/ocispec/core";
import { compilePlan, PlanError, type CgroupMountSource } from "../plan/compile.ts";
import { SYNC, type Op } from "../plan/ops.ts";
import { encodePlan } from "../plan/wire.ts";
import type { Hook } from "@tsrun/ocispec/core";
import { runHooks, runHooksAsync } from "../hooks/run.ts";
import { runContainerHooks, runContainerHooksAsync, type ContainerHookContext } from "../hooks/container.ts";
import { killOwnChild, ownChild, reapOwnChild, recvAsync } from "./children.ts";
import { cgroupManager, type CgroupManager } from "../cgroups/manager.ts";
import { UNIFIED } from "../cgroups/paths.ts";
import { moveOfOp, openTasks } from "./cgroup-move.ts";
import { applyDevicesV1, DEFAULT_ALLOWED } from "../cgroups/v1/devices.ts";
import { reapMigrationWarmUp, startMigrationWarmUp } from "./warmup.ts";
import * as linux from "../linux/index.ts";
import { ContainerError, executorErrorFields, executorFailure } from "./errors.ts";
import { procStat } from "./proc.ts";
import { stateDocument } from "./status.ts";
import type { ContainerRecord, Store } from "./store.ts";
import { destroyContainer, lockContainer, NO_CGROUP, saveCgroupRecord } from "./cleanup.ts";
import { idmapUserns } from "./idmap.ts";
import { rootlessCgroups, rootlessFlagGiven } from "./rootless.ts";
import { readMountinfo } from "../linux/mountinfo.ts";
import { trace } from "../trace.ts";
import { sendSeccompListener } from "./seccomp-agent.ts";
import { apparmorEnabled, hostTerminal } from "./host.ts";

export interface CreateOptions {
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  preserveFds?: number;
  systemdCgroup?: boolean;
  /**
   * runc's `--rootless`: with "auto" (the default) cgroup permission errors are ignored when
   * tsrun is not root, or root in a user namespace; see cgroups/manager.ts for what is ignored.
   */
  rootless?: "true" | "false" | "auto";
  /** For `run` in the foreground: keep the pty master instead of sending it to a socket. */
  keepConsole?: boolean;
  /**
   * For a caller that serves the terminal itself (the shim): the pty master comes back in
   * Created.console; no console socket, and no terminal of the caller's own, is needed.
   */
  takeConsole?: boolean;
  /** The init's fds 0, 1, 2 (-1: /dev/null). Default: the caller's own 0, 1, 2. */
  stdio?: [number, number, number];
}

export interface Created {
  rec: ContainerRecord;
  /** The pty master when the container has a terminal and no console socket was given. */
  console?: number;
}

/** How long tsrun waits for any one step of the executor before giving up on it. */
const STEP_TIMEOUT_MS = 60_000;

export function loadConfig(bundle: string): Spec {
  const file = resolve(bundle, "config.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ContainerError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseJson(text, file);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new ContainerError(e.message);
    throw e;
  }
  const v = validateConfig(doc, { bundle, forCreate: true });
  if (!v.ok) {
    const n = v.problems.length;
    throw new ContainerError(`invalid ${file} (${n} problem${n === 1 ? "" : "s"}): ${v.problems.map(formatProblem).join("; ")}`);
  }
  return v.value;
}

/**
 * systemd socket activation, as runc does it: when tsrun itself was given LISTEN_FDS (for its
 * own pid), those fds (3…) go to the container first, before any --preserve-fds, and the
 * container is told with LISTEN_FDS=n and LISTEN_PID=1. Returns n.
 */
function socketActivation(spec: Spec): number {
  const n = Number(process.env.LISTEN_FDS ?? "");
  if (!Number.isInteger(n) || n <= 0 || process.env.LISTEN_PID !== String(process.pid) || !spec.process) return 0;
  spec.process.env = [...(spec.process.env ?? []), `LISTEN_FDS=${n}`, "LISTEN_PID=1"];
  return n;
}

/**
 * The device allow-list: nothing, then the config's rules, then what every container gets and
 * the devices the config creates (as runc does it): the v1 devices controller where there is
 * one (v1 and hybrid hosts), else an eBPF program on the cgroup2 directory.
 */
function applyDeviceRules(cg: CgroupManager, spec: Spec, rootless: boolean): void {
  warnUnknownAccess(spec);
  try {
    applyDeviceRulesStrict(cg, spec);
  } catch (e) {
    // As runc: a rootless container's device rules are not expected to work (writing
    // devices.deny or loading an eBPF program needs privilege); the user namespace already keeps
    // the container from making device nodes, and it gets the host's by bind mount.
    if (!rootless) throw e;
  }
}

/** The default allowed devices that are also default nodes, by rule: a config device at that path replaces both. */
const DEFAULT_NODE_PATHS: Readonly<Record<string, string>> = {
  "c 1:3": "/dev/null", "c 1:5": "/dev/zero", "c 1:7": "/dev/full", "c 1:8": "/dev/random", "c 1:9": "/dev/urandom", "c 5:0": "/dev/tty",
};

/**
 * The device allow-list as runc 1.1.5 makes it (specconv): everything denied, then the config's
 * own rules, then the default devices. A node the config creates (linux.devices) gets no rule of
 * its own: using it takes a rule in linux.resources.devices, so a deny there holds (runc's
 * "device cgroup deny"); a config node at a default device's path takes that default's rule away.
 */
export function deviceRules(spec: Spec): LinuxDeviceCgroup[] {
  const own = (spec.linux?.resources?.devices ?? []).map((r) => (r.access === undefined ? r : { ...r, access: splitAccess(r.access).known }));
  const configured = new Set((spec.linux?.devices ?? []).map((d) => d.path));
  const defaults = DEFAULT_ALLOWED.filter((r) => {
    const path = DEFAULT_NODE_PATHS[`${r.type} ${r.major}:${r.minor}`];
    return path === undefined || !configured.has(path);
  });
  return [{ allow: false, access: "rwm" }, ...own, ...defaults];
}

/**
 * runc (libcontainer/devices Permissions) reads only r, w and m in a rule's access and ignores any
 * other letter (its own update test writes "rwa", which it takes as "rw"): tsrun does the same.
 */
function splitAccess(access: string): { known: string; other: string } {
  const letters = [...access];
  const isKnown = (c: string) => c === "r" || c === "w" || c === "m";
  return { known: letters.filter(isKnown).join(""), other: letters.filter((c) => !isKnown(c)).join("") };
}

/** Says which letters of the config's device rules splitAccess ignores. */
function warnUnknownAccess(spec: Spec): void {
  (spec.linux?.resources?.devices ?? []).forEach((r, i) => {
    const other = r.access === undefined ? "" : splitAccess(r.access).other;
    if (other) process.stderr.write(`tsrun: warning: /linux/resources/devices/${i}/access: ${JSON.stringify(other)} ignored in ${JSON.stringify(r.access)}: only r, w and m mean something (as runc reads it)\n`);
  });
}

function applyDeviceRulesStrict(cg: CgroupManager, spec: Spec): void {
  const paths = cg.paths();
  const own = spec.linux?.resources?.devices ?? [];
  const rules = deviceRules(spec);
  if (paths["devices"] !== undefined) return applyDevicesV1(paths["devices"], rules);
  if (paths[""] !== undefined) {
    // Loaded only here: the eBPF compiler is start-up cost on every other host.
    const { applyDevicesV2 } = require("../cgroups/devices-v2.ts") as typeof import("../cgroups/devices-v2.ts");
    applyDevicesV2(paths[""], rules);
    return;
  }
  if (own.length) throw new ContainerError("/linux/resources/devices: device rules need the v1 devices controller or a cgroup2 directory, and this container has neither");
}

/**
 * Whether the cgroup is frozen (a joined or pre-made one can be): the init would hang in it
 * at its first step, so create refuses, as runc does.
 */
function frozen(cg: CgroupManager): boolean {
  const paths = cg.paths();
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8").trim();
    } catch {
      return "";
    }
  };
  if (paths["freezer"] !== undefined && read(`${paths["freezer"]}/freezer.state`) !== "THAWED" && read(`${paths["freezer"]}/freezer.state`) !== "") return true;
  return paths[""] !== undefined && read(`${paths[""]}/cgroup.freeze`) === "1";
}

/** How many processes the cgroup holds; 0 when it goes away meanwhile, as runc ignores that race. */
function cgroupPids(cg: CgroupManager): number {
  try {
    return cg.pids().length;
  } catch {
    return 0;
  }
}

/** The mount point that `path` is on: the longest one above it. */
function mountPointOf(path: string): string | undefined {
  let best: string | undefined;
  for (const { mountpoint: mp } of readMountinfo()) if (path === mp || path.startsWith(mp === "/" ? "/" : `${mp}/`)) if (!best || mp.length > best.length) best = mp;
  return best;
}

function cgroupSource(cg: CgroupManager): CgroupMountSource | undefined {
  const paths = cg.processPaths();
  if (paths[""] !== undefined && Object.keys(paths).length === 1) return { kind: "v2", hostPath: paths[""]! };
  const controllers = Object.entries(paths)
    .filter(([name]) => name !== "" && !name.startsWith("name="))
    .map(([name, hostPath]) => ({ name, hostPath }));
  return controllers.length ? { kind: "v1", controllers } : undefined;
}

/**
 * The init's id maps. Without privilege (euid ≠ 0) the kernel takes a gid_map only once
 * setgroups is denied in the namespace, and only a single line mapping tsrun's own ids; runc
 * (nsexec) denies setgroups for a rootless euid just so. runc would then try newuidmap and
 * newgidmap for a wider mapping; tsrun does not use them, and says so.
 */
function writeIdMaps(id: string, pid: number, spec: Spec, denySetgroups: boolean): void {
  const fmt = (maps: { containerID: number; hostID: number; size: number }[] | undefined) => (maps ?? []).map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
  const write = (file: string, text: string, pointer: string) => {
    try {
      writeFileSync(`/proc/${pid}/${file}`, text);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      const hint =
        denySetgroups && (code === "EPERM" || code === "EINVAL")
          ? `; an unprivileged user may map only its own ${file === "uid_map" ? `uid ${process.geteuid?.()}` : `gid ${process.getegid?.()}`}, in one entry of size 1 (tsrun does not use newuidmap/newgidmap)`
          : "";
      throw new ContainerError(`container ${id}: ${pointer}: cannot write /proc/${pid}/${file} (${JSON.stringify(text.trimEnd())}): ${code}${hint}`);
    }
  };
  write("uid_map", fmt(spec.linux?.uidMappings), "/linux/uidMappings");
  if (denySetgroups) write("setgroups", "deny", "/linux/gidMappings");
  write("gid_map", fmt(spec.linux?.gidMappings), "/linux/gidMappings");
}

const PROC_SUPER_MAGIC = 0x9fa0;

/**
 * A sysctl is accepted for the namespace that isolates it (validation); a namespace joined by
 * path may still be tsrun's own, the host's: then the write would change the host (runc checks
 * the same for the network namespace).
 */
function checkJoinedSysctlNamespaces(spec: Spec): void {
  for (const key of Object.keys(spec.linux?.sysctl ?? {})) {
    const parts = sysctlPath(key);
    const type = parts && sysctlNamespace(parts);
    const path = type && spec.linux?.namespaces?.find((n) => n.type === type)?.path;
    if (!path) continue;
    let joined;
    try {
      joined = statSync(path);
    } catch {
      continue; // unreadable: joining it fails later, with its own clear error
    }
    const own = statSync(`/proc/self/ns/${NS_PROC_NAMES[type]}`);
    if (joined.ino === own.ino && joined.dev === own.dev)
      throw new ContainerError(`/linux/sysctl/${key}: the ${type} namespace joined at ${path} is the host's: writing ${key} would change the host`);
  }
}

/** The host id that `id` of the container maps to, or undefined when it is not mapped. */
function hostId(id: number, maps: readonly { containerID: number; hostID: number; size: number }[]): number | undefined {
  const m = maps.find((x) => id >= x.containerID && id < x.containerID + x.size);
  return m && m.hostID + (id - m.containerID);
}

/**
 * The exec fifo is opened for writing by the init when it waits for `start`, by then as the
 * container's user (and maybe in a user namespace): the fifo is that user's, mode 0600, so that
 * nobody else can open it (no one else could forge what `start` reads, or hold it open). With a
 * joined user namespace the mapping is not known here: the fifo is then writable by others
 * (0622, as runc always has it), still behind the 0700 state root.
 */
function makeExecFifo(id: string, path: string, spec: Spec): void {
  const user = spec.process?.user ?? { uid: 0, gid: 0 };
  const userns = spec.linux?.namespaces?.find((n) => n.type === "user");
  if (userns?.path) {
    linux.mkfifo(path, 0o622);
    return;
  }
  const uid = userns ? hostId(user.uid ?? 0, spec.linux?.uidMappings ?? []) : (user.uid ?? 0);
  const gid = userns ? hostId(user.gid ?? 0, spec.linux?.gidMappings ?? []) : (user.gid ?? 0);
  linux.mkfifo(path, 0o600);
  if ((uid ?? 0) === (process.geteuid?.() ?? 0) && (gid ?? 0) === (process.getegid?.() ?? 0)) return;
  try {
    chownSync(path, uid ?? 0, gid ?? 0);
  } catch (e) {
    // Only root may give a file away: an unprivileged tsrun's container user must be the
    // caller itself on the host (in a rootless container that is what uid 0 maps to).
    throw new ContainerError(
      `container ${id}: /process/user: cannot hand the exec fifo to the container's user (host uid ${uid ?? 0}, gid ${gid ?? 0}): ${(e as NodeJS.ErrnoException).code}${process.geteuid?.() !== 0 ? "; as an unprivileged user, tsrun can run a container only as a user that maps to your own uid and gid" : ""}`,
    );
  }
}

/**
 * Keeps the recorded cgroup in step with what a rootless manager kept: delete --force must find
 * exactly the directories that are the container's, and none when it has none.
 */
function recordCgroup(store: Store, rec: ContainerRecord, cg: CgroupManager): void {
  if (Object.keys(cg.dropped()).length === 0) return;
  if (Object.keys(cg.paths()).length === 0) {
    delete rec.cgroup;
    saveCgroupRecord(store, rec.id, NO_CGROUP);
    return;
  }
  rec.cgroup = cg.toJSON();
  saveCgroupRecord(store, rec.id, rec.cgroup);
}

/** runc ignores these silently; a container without its cgroup deserves a word. */
function warnDropped(id: string, cg: CgroupManager): void {
  const dropped = Object.entries(cg.dropped());
  if (dropped.length === 0) return;
  const names = dropped.map(([k]) => (k === "" ? "cgroup2" : k)).join(", ");
  const none = Object.keys(cg.paths()).length === 0;
  process.stderr.write(
    `tsrun: warning: rootless: container ${id} runs without ${none ? "any cgroup" : `its ${names} cgroup${dropped.length > 1 ? "s" : ""}`} (${dropped[0]![1].message}${dropped.length > 1 ? `, and ${dropped.length - 1} more` : ""}): cgroup permission errors are ignored when rootless, as runc ignores them; ${none ? "pause, resume, update, ps and events need a cgroup" : `no limits on ${names}`}\n`,
  );
}

function writePidFile(path: string, pid: number): void {
  writeFileAtomic(resolve(path), String(pid), 0o644);
}

/**
 * What createSteps waits for: the executor's next message, or hooks to run. The CLI waits by
 * blocking (createContainer); a process serving others meanwhile awaits (createContainerAsync).
 */
type Step =
  | { kind: "recv"; sync: linux.SyncChannel; timeoutMs: number }
  | { kind: "hooks"; runs: [string, Hook[] | undefined, string][] }
  | { kind: "containerHooks"; hooks: Hook[]; state: string; ctx: ContainerHookContext }
  /** A point where an async caller lets its event loop run: the set-up's long synchronous stretches are split there. */
  | { kind: "turn" };

export function createContainer(store: Store, opts: CreateOptions): Created {
  const gen = createSteps(store, opts);
  let r = gen.next();
  while (!r.done) {
    let value: linux.Message | undefined;
    try {
      const step = r.value;
      if (step.kind === "recv") value = step.sync.recv(step.timeoutMs);
      else if (step.kind === "hooks") for (const [kind, hooks, state] of step.runs) runHooks(kind, hooks, state);
      else if (step.kind === "containerHooks") runContainerHooks("createContainer", step.hooks, step.state, step.ctx);
    } catch (e) {
      r = gen.throw(e);
      continue;
    }
    r = gen.next(value);
  }
  return r.value;
}

/**
 * createContainer without blocking the event loop: the executor's messages are awaited (short
 * polls between event-loop turns) and the runtime's hooks run as child processes awaited.
 */
export async function createContainerAsync(store: Store, opts: CreateOptions): Promise<Created> {
  const gen = createSteps(store, opts);
  let r = gen.next();
  while (!r.done) {
    let value: linux.Message | undefined;
    try {
      const step = r.value;
      if (step.kind === "recv") value = await recvAsync(step.sync, step.timeoutMs);
      else if (step.kind === "hooks") for (const [kind, hooks, state] of step.runs) await runHooksAsync(kind, hooks, state);
      else if (step.kind === "containerHooks") await runContainerHooksAsync("createContainer", step.hooks, step.state, step.ctx);
      else await new Promise<void>((resolve) => setImmediate(resolve));
    } catch (e) {
      r = gen.throw(e);
      continue;
    }
    r = gen.next(value);
  }
  return r.value;
}

function* createSteps(store: Store, opts: CreateOptions): Generator<Step, Created, linux.Message | undefined> {
  startMigrationWarmUp();
  const bundle = resolve(opts.bundle);
  try {
    if (!statSync(bundle).isDirectory()) throw new ContainerError(`bundle ${bundle} is not a directory`);
  } catch (e) {
    if (e instanceof ContainerError) throw e;
    throw new ContainerError(`cannot use bundle ${bundle}: ${(e as NodeJS.ErrnoException).code}`);
  }
  trace("create: start");
  const spec = loadConfig(bundle);
  if (spec.linux?.sysctl) checkJoinedSysctlNamespaces(spec);
  const fdCount = socketActivation(spec) + (opts.preserveFds ?? 0);
  trace("create: config validated");
  if (spec.process?.terminal && !opts.consoleSocket && !opts.keepConsole && !opts.takeConsole)
    throw new ContainerError("cannot allocate tty if tsrun will detach without setting console socket");
  if (!spec.process?.terminal && opts.consoleSocket) throw new ContainerError("cannot use console socket if tsrun will not detach or allocate tty");
  if (spec.process?.terminal && opts.keepConsole && !opts.consoleSocket && !hostTerminal())
    throw new ContainerError(
      "cannot relay the container's terminal: none of stdin, stdout and stderr is a terminal, and there is no controlling terminal (/dev/tty); run tsrun from a terminal, or set process.terminal to false, or use --detach with --console-socket",
    );
  const rootfs = realpathSync(resolve(bundle, spec.root!.path));
  const rootless = rootlessCgroups(opts.rootless ?? rootlessFlagGiven());
  // runc's RootlessEUID: what only privilege can do is done the unprivileged way or refused.
  const unprivileged = (process.geteuid?.() ?? 0) !== 0;
  if (unprivileged && !spec.linux?.namespaces?.some((n) => n.type === "user"))
    throw new ContainerError("/linux/namespaces: a rootless container requires a user namespace (tsrun is not root); `tsrun spec --rootless` makes such a config");

  const newNetns = (spec.linux?.namespaces ?? []).some((n) => n.type === "network" && !n.path);
  store.claim(opts.id);
  const lock = lockContainer(store, opts.id);
  const rec: ContainerRecord = {
    ociVersion: OCI_VERSION,
    id: opts.id,
    pid: 0,
    pidStartTime: 0,
    bundle,
    rootfs,
    created: new Date().toISOString(),
    owner: "",
    phase: "creating",
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
    config: spec,
  };
  let sync: linux.SyncChannel | undefined;
  let stage1 = 0;
  let consoleFd: number | undefined;
  const openedFds: number[] = [];
  try {
    store.write(rec);
    makeExecFifo(opts.id, store.fifoPath(opts.id), spec);
    trace("create: state and fifo");
    const cg = cgroupManager({ id: opts.id, cgroupsPath: spec.linux?.cgroupsPath, systemd: opts.systemdCgroup ?? false, rootless });
    // runc 1.1 runs a container in a cgroup that already has processes (one shared with another
    // container) and warns, in these words (1.2 refuses it); the count is of the whole subtree.
    const already = cg.exists() ? cgroupPids(cg) : 0;
    if (already) process.stderr.write(`tsrun: warning: container's cgroup is not empty: ${already} process(es) found\n`);
    // A frozen cgroup that is already there (a joined one) is refused before it is recorded, so
    // that the failure leaves it as it was (runc does the same).
    if (frozen(cg)) throw new ContainerError(`container ${opts.id}: its cgroup is frozen (thaw it first): container's cgroup unexpectedly frozen`);
    rec.cgroup = cg.toJSON();
    // Not in state.json yet: delete --force reads cgroup.json when state.json has no cgroup.
    saveCgroupRecord(store, opts.id, rec.cgroup);
    trace("create: cgroup recorded");
    yield { kind: "turn" };
    // Rootless, which cgroups the container gets is known only once they are tried, and the
    // plan's /sys/fs/cgroup depends on it: made before the plan (the warm-up's gain is for root).
    if (rootless) {
      cg.create();
      recordCgroup(store, rec, cg);
    }
    // Idmapped mounts: one user namespace per mount, passed after the preserved fds.
    const idmapFds: Record<number, number> = {};
    const extraFds: number[] = [];
    (spec.mounts ?? []).forEach((m, i) => {
      if (!m.uidMappings || !m.gidMappings) return;
      // mount_setattr(MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN over the mount's user namespace,
      // the host's for any mount an unprivileged user can reach.
      if (unprivileged) throw new ContainerError(`/mounts/${i}: idmapped mounts need root (tsrun is not root: the kernel lets only CAP_SYS_ADMIN in the initial user namespace idmap a host mount)`);
      const fd = idmapUserns(m.uidMappings, m.gidMappings);
      openedFds.push(fd);
      idmapFds[i] = 3 + fdCount + extraFds.length;
      extraFds.push(fd);
    });

    // Made, set up and, after its first sync, entered: the container's cgroups.
    const makeCgroup = () => {
      if (!rootless) cg.create();
      // A new cgroup under a frozen parent is frozen too (v1): refused, and removed as ours.
      if (frozen(cg)) throw new ContainerError(`container ${opts.id}: its cgroup is frozen (thaw it first): container's cgroup unexpectedly frozen`);
      applyDeviceRules(cg, spec, rootless);
      // Every limit is applied or the create refused: never a limit silently dropped. Judged
      // once the cgroup exists (a hierarchy's root has no limit files to look at).
      const resources = spec.linux?.resources;
      // Devices are done above; only other keys are limits to judge and write.
      if (resources && Object.keys(resources).some((k) => k !== "devices")) {
        // Loaded only for configs with limits: the appliers of every controller are start-up cost.
        const { applyResources, unsupportedResourceReasons } = require("../cgroups/resources.ts") as typeof import("../cgroups/resources.ts");
        const unsupported = unsupportedResourceReasons(cg, resources);
        if (unsupported.length) throw new ContainerError(`container ${opts.id}: ${unsupported.map((u) => `${u.pointer}: ${u.reason}`).join("; ")}`);
        applyResources(cg, resources, { warn: (m) => process.stderr.write(`tsrun: warning: ${m}\n`) });
      }
      trace("create: cgroup made");
    };
    // Every hierarchy v1 (no cgroup2 directory): stage 1 moves itself into the cgroups, which
    // takes no global migration lock (fold.ts moveSelfToCgroupOps), so no warm-up ran
    // (warmup.ts) and nothing waits for one: the cgroups are made now, before the executor
    // starts, and their tasks files passed to it after the idmap fds. Otherwise tsrun moves
    // stage 1 once it runs, the warm-up's wait being over by then.
    const selfMoveDirs = !rootless && cg.paths()[UNIFIED] === undefined ? [...new Set(Object.values(cg.paths()))] : [];
    if (selfMoveDirs.length) {
      makeCgroup();
      for (const dir of selfMoveDirs) {
        const fd = openTasks(dir, (code, cause) => new ContainerError(`container ${opts.id}: cannot move the init into its cgroup ${dir}: ${code}`, { id: opts.id, op: "open", path: join(dir, "tasks"), code, cause }));
        openedFds.push(fd);
        extraFds.push(fd);
      }
    }

    let plan;
    try {
      plan = compilePlan({
        spec,
        bundle,
        rootfs,
        execFifo: store.fifoPath(opts.id),
        preserveFds: fdCount,
        idmapFds,
        // Read only when used: mountinfo can be long, AppArmor's switch is a file read.
        ...(spec.linux?.rootfsPropagation?.includes("shared") ? { rootfsParentMount: mountPointOf(rootfs) } : {}),
        id: opts.id,
        noNewKeyring: opts.noNewKeyring ?? false,
        apparmor: spec.process?.apparmorProfile ? apparmorEnabled() : false,
        noPivot: opts.noPivot ?? false,
        ...(opts.noPivot ? { hostProcMounts: readMountinfo(["proc", "sysfs"]).filter((m) => m.root === "/").map((m) => m.mountpoint) } : {}),
        cgroups: cgroupSource(cg),
        cgroupTasks: selfMoveDirs,
        unprivileged,
        hostIsProcfs: (p) => statfsSync(p).type === PROC_SUPER_MAGIC,
        hostPathKind: (p) => {
          try {
            const st = statSync(p);
            return st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
          } catch {
            return "missing";
          }
        },
      });
    } catch (e) {
      if (e instanceof PlanError) throw new ContainerError(`container ${opts.id}: ${e.message}`, { ...e.fields, id: opts.id, cause: e });
      throw e;
    }
    const ops = plan.ops;
    const encoded = encodePlan(ops);
    trace("create: plan encoded");
    const preserved = [...Array.from({ length: fdCount }, (_, i) => 3 + i), ...extraFds];
    trace("create: plan compiled");
    const spawned = linux.spawnExecutor(encoded, { stdio: opts.stdio ?? [0, 1, 2], preserveFds: preserved });
    stage1 = spawned.pid;
    ownChild(stage1);
    sync = spawned.sync;
    trace("create: executor spawned");
    yield { kind: "turn" };
    if (!selfMoveDirs.length) {
      // Made only now: mkdir in cgroupfs waits for the migration warm-up (see warmup.ts: it
      // holds the cgroup lock), so everything that does not need the cgroup is done first.
      // Stage 1 waits at its first sync point until it is in the cgroup.
      makeCgroup();
      cg.addProcess(stage1);
    }
    recordCgroup(store, rec, cg);
    warnDropped(opts.id, cg);
    trace("create: in cgroup");

    const state = (status: "creating" | "created") => JSON.stringify(stateDocument(rec, status));
    for (;;) {
      const msg = (yield { kind: "recv", sync, timeoutMs: STEP_TIMEOUT_MS }) as linux.Message;
      trace(`create: message ${msg.type}${msg.type === "sync" ? ` ${msg.code}` : ""}`);
      if (msg.type === "sync") {
        if (msg.code === SYNC.USERNS) writeIdMaps(opts.id, stage1, spec, unprivileged);
        if (msg.code === SYNC.MOUNTS) {
          yield { kind: "hooks", runs: [["prestart", spec.hooks?.prestart, state("creating")], ["createRuntime", spec.hooks?.createRuntime, state("creating")]] };
          // in the init's namespaces, before pivot_root, while the init waits here
          const ctx = { spec, id: opts.id, initPid: rec.pid, rootfs, joinCgroups: (p: number) => cg.addProcess(p) };
          if (spec.hooks?.createContainer?.length) yield { kind: "containerHooks", hooks: spec.hooks.createContainer, state: state("creating"), ctx };
          sync.answer(true);
          continue;
        }
        if (msg.code === SYNC.CREATED) {
          rec.phase = "created";
          store.write(rec);
          if (opts.pidFile) writePidFile(opts.pidFile, rec.pid);
          sync.answer(true);
          break;
        }
        sync.answer(true);
      } else if (msg.type === "pid") {
        rec.pid = msg.pid;
        rec.pidStartTime = procStat(msg.pid)?.startTime ?? 0;
        store.write(rec);
        reapOwnChild(stage1);
        stage1 = 0;
        // linux.netDevices: into the init's new network namespace now, before it goes on to its
        // sysctls and hooks (it waits at its next sync), as runc does after its first child.
        // A new network namespace gets its loopback up, as runc's does: 127.0.0.1 answers inside.
        // Unprivileged tsrun cannot enter it (the container's user namespace owns it).
        if (newNetns && process.geteuid?.() === 0) {
          try {
            linux.loopbackUp(`/proc/${msg.pid}/ns/net`);
          } catch (e) {
            // The init is gone already (ENOENT): its own error message follows and says why.
            if (!(e instanceof linux.SysError && e.code === "ENOENT")) throw new ContainerError(`container ${opts.id}: cannot set the loopback interface up: ${(e as Error).message}`, { id: opts.id, op: "loopback" });
          }
        }
        if (spec.linux?.netDevices) (require("../linux/netdevices.ts") as typeof import("../linux/netdevices.ts")).moveNetDevices(spec.linux.netDevices, msg.pid);
      } else if (msg.type === "fd") {
        if (msg.kind === "seccomp") {
          try {
            sendSeccompListener(opts.id, spec, msg.fd, stateDocument(rec, "creating"));
          } finally {
            linux.close(msg.fd);
          }
        } else if (opts.consoleSocket) {
          linux.sendFd(opts.consoleSocket, msg.fd, "/dev/ptmx");
          linux.close(msg.fd);
        } else consoleFd = msg.fd;
      } else if (msg.type === "error") {
        const dir = moveOfOp(ops, msg.op, selfMoveDirs.map((d) => ({ dir: d })))?.dir;
        if (dir) throw new ContainerError(`container ${opts.id}: cannot move the init into its cgroup ${dir}: ${linux.errnoName(msg.errno)}`, { id: opts.id, op: "write", path: join(dir, "tasks"), code: linux.errnoName(msg.errno) });
        throw new ContainerError(executorFailure(opts.id, ops, msg), { ...executorErrorFields(ops[msg.op], msg.errno), id: opts.id });
      } else if (msg.type === "eof" || msg.type === "exec") {
        throw new ContainerError(`container ${opts.id}: the container's init exited during set-up`);
      }
    }
    sync.close();
    openedFds.forEach((fd) => linux.close(fd));
    closeSync(lock);
    // Done by now (its one write came before the init's move into its cgroup): reaped, so that
    // a long-lived caller (the shim) keeps no zombie of it.
    reapMigrationWarmUp(true);
    return consoleFd === undefined ? { rec } : { rec, console: consoleFd };
  } catch (e) {
    sync?.close();
    if (stage1) killOwnChild(stage1);
    if (consoleFd !== undefined) linux.close(consoleFd);
    openedFds.forEach((fd) => linux.close(fd));
    destroyContainer(store, opts.id, rec);
    closeSync(lock);
    throw e;
  }
}
