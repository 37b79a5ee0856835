// Checks of a config.json that a JSON Schema cannot express: absolute paths, unique
// namespaces, names the kernel knows, and facts about the bundle on disk. Runs on documents that
// may also have failed the schema, so it looks at every value's type before trusting it.
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { CAPABILITIES, NAMESPACE_TYPES, RLIMITS, HOOK_NAMES, sysctlNamespace, sysctlPath } from "./linux-names.ts";
import { pointerToken, type Problem } from "./problem.ts";
import { closest, misspeltKey } from "./suggest.ts";
import { OCI_VERSION, SUPPORTED_OCI_MAJOR } from "./version.ts";

export interface SemanticOptions {
  /** Bundle directory: when given, root.path is resolved against it and must be a directory. */
  bundle?: string;
  /** The config is about to be used to create a container: process and root become required. */
  forCreate?: boolean;
}


type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): v is string => typeof v === "string";

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;
const ENV_ENTRY = /^[^=\0]+=/;

export function semanticProblems(config: unknown, opts: SemanticOptions = {}): Problem[] {
  const out: Problem[] = [];
  if (!isObj(config)) return out;
  const add = (pointer: string, message: string, hint?: string) => out.push(hint ? { pointer, message, hint } : { pointer, message });
  const absolute = (pointer: string, v: unknown, what: string) => {
    if (str(v) && !v.startsWith("/")) add(pointer, `${what} must be an absolute path, found ${JSON.stringify(v)}`);
  };

  const version = config.ociVersion;
  if (str(version)) {
    const m = SEMVER.exec(version);
    if (!m) add("/ociVersion", `must be a SemVer 2.0.0 version, found ${JSON.stringify(version)}`, `e.g. "${OCI_VERSION}"`);
    else if (Number(m[1]) !== SUPPORTED_OCI_MAJOR)
      add("/ociVersion", `version ${version} is not supported: tsrun reads runtime-spec ${SUPPORTED_OCI_MAJOR}.x`);
  }

  checkRoot(config, opts, add);
  checkProcess(config.process, opts, add, absolute);

  arr(config.mounts).forEach((m, i) => {
    if (!isObj(m)) return;
    if (str(m.destination) && m.destination === "") add(`/mounts/${i}/destination`, "must not be empty");
    for (const k of ["uidMappings", "gidMappings"] as const) {
      if (m[k] !== undefined && m[k === "uidMappings" ? "gidMappings" : "uidMappings"] === undefined)
        add(`/mounts/${i}/${k}`, `an idmapped mount needs both uidMappings and gidMappings`);
    }
  });

  if (isObj(config.hooks)) {
    for (const [name, list] of Object.entries(config.hooks)) {
      if (!(HOOK_NAMES as readonly string[]).includes(name)) continue;
      arr(list).forEach((h, i) => {
        if (isObj(h)) absolute(`/hooks/${pointerToken(name)}/${i}/path`, h.path, "a hook path");
      });
    }
  }

  if (isObj(config.linux)) checkLinux(config, config.linux, add, absolute);
  return out;
}

type Add = (pointer: string, message: string, hint?: string) => void;
type Absolute = (pointer: string, v: unknown, what: string) => void;

function checkRoot(config: Obj, opts: SemanticOptions, add: Add): void {
  const root = config.root;
  if (root === undefined) {
    if (opts.forCreate) add("/root", "is required to create a container on Linux");
    return;
  }
  if (!isObj(root) || !str(root.path) || opts.bundle === undefined) return;
  const path = isAbsolute(root.path) ? root.path : resolve(opts.bundle, root.path);
  try {
    if (!statSync(path).isDirectory()) add("/root/path", `${path} is not a directory`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    add("/root/path", `${path} cannot be used as the root filesystem: ${code}`, code === "ENOENT" ? "create it, or fix root.path (relative paths are resolved against the bundle)" : undefined);
  }
}

function checkProcess(process: unknown, opts: SemanticOptions, add: Add, absolute: Absolute): void {
  if (process === undefined) {
    if (opts.forCreate) add("/process", "is required to create a container");
    return;
  }
  if (!isObj(process)) return;
  absolute("/process/cwd", process.cwd, "the working directory");
  if (isObj(process.user)) {
    for (const k of ["uid", "gid"] as const)
      if (process.user[k] === undefined) {
        const near = misspeltKey(process.user, k);
        add(`/process/user/${k}`, `is required on Linux`, near !== undefined ? `found "${near}": did you mean "${k}"?` : process.user.username !== undefined ? "username is only used on Windows" : undefined);
      }
  } else if (process.user === undefined && opts.forCreate) add("/process/user", "is required on Linux (uid and gid)");
  if (Array.isArray(process.args) && process.args.length === 0) add("/process/args", "must name at least the program to run");
  else if (process.args === undefined && process.commandLine === undefined && opts.forCreate) add("/process/args", "is required: the program to run");
  arr(process.env).forEach((e, i) => {
    if (str(e) && !ENV_ENTRY.test(e)) add(`/process/env/${i}`, `must have the form KEY=value, found ${JSON.stringify(e)}`);
  });
  if (isObj(process.capabilities)) {
    for (const [set, list] of Object.entries(process.capabilities)) {
      arr(list).forEach((c, i) => {
        if (str(c) && !(CAPABILITIES as readonly string[]).includes(c)) {
          const guess = closest(c.startsWith("CAP_") ? c : `CAP_${c.toUpperCase()}`, CAPABILITIES);
          add(`/process/capabilities/${pointerToken(set)}/${i}`, `unknown capability ${JSON.stringify(c)}`, guess ? `did you mean "${guess}"?` : undefined);
        }
      });
    }
  }
  const seen = new Map<string, number>();
  arr(process.rlimits).forEach((r, i) => {
    if (!isObj(r) || !str(r.type)) return;
    if (RLIMITS[r.type] === undefined) {
      const guess = closest(r.type, Object.keys(RLIMITS));
      add(`/process/rlimits/${i}/type`, `unknown resource limit ${JSON.stringify(r.type)}`, guess ? `did you mean "${guess}"?` : undefined);
    }
    const prev = seen.get(r.type);
    if (prev !== undefined) add(`/process/rlimits/${i}/type`, `${r.type} is already set by /process/rlimits/${prev}`);
    else seen.set(r.type, i);
    if (typeof r.soft === "number" && typeof r.hard === "number" && r.soft > r.hard)
      add(`/process/rlimits/${i}/soft`, `soft limit ${r.soft} is above the hard limit ${r.hard}`);
  });
}

function checkLinux(config: Obj, linux: Obj, add: Add, absolute: Absolute): void {
  const kinds = new Map<string, number>();
  arr(linux.namespaces).forEach((ns, i) => {
    if (!isObj(ns) || !str(ns.type)) return;
    const prev = kinds.get(ns.type);
    if (prev !== undefined) add(`/linux/namespaces/${i}/type`, `namespace "${ns.type}" is already listed at /linux/namespaces/${prev}`);
    else kinds.set(ns.type, i);
    if (ns.path !== undefined) absolute(`/linux/namespaces/${i}/path`, ns.path, "a namespace path");
  });
  const has = (t: (typeof NAMESPACE_TYPES)[number]) => kinds.has(t);
  const userNs = kinds.get("user");
  const newUserNs = userNs !== undefined && isObj(arr(linux.namespaces)[userNs]) && (arr(linux.namespaces)[userNs] as Obj).path === undefined;
  for (const k of ["uidMappings", "gidMappings"] as const) {
    const present = Array.isArray(linux[k]) && (linux[k] as unknown[]).length > 0;
    if (present && userNs === undefined) add(`/linux/${k}`, `mappings need a user namespace`, `add {"type": "user"} to /linux/namespaces`);
    if (!present && newUserNs) add(`/linux/${k}`, `a new user namespace needs ${k}`, `map at least the container's root, e.g. [{"containerID": 0, "hostID": 1000, "size": 65536}]`);
  }
  if (str(config.hostname) && config.hostname !== "" && !has("uts"))
    add("/hostname", "setting the hostname needs a new UTS namespace", `add {"type": "uts"} to /linux/namespaces`);
  if (str(config.domainname) && config.domainname !== "" && !has("uts"))
    add("/domainname", "setting the domainname needs a new UTS namespace", `add {"type": "uts"} to /linux/namespaces`);
  if (linux.timeOffsets !== undefined && !has("time"))
    add("/linux/timeOffsets", "time offsets need a time namespace", `add {"type": "time"} to /linux/namespaces`);

  if (isObj(linux.sysctl)) {
    // Only what a namespace of the container isolates is accepted (runc's rule): any other key
    // is one value for the whole machine, and writing it from a container changes the host.
    const label = { network: "network", ipc: "IPC", uts: "UTS" } as const;
    for (const key of Object.keys(linux.sysctl)) {
      const p = `/linux/sysctl/${pointerToken(key)}`;
      const parts = sysctlPath(key);
      if (!parts) {
        add(p, `"${key}" is not a sysctl name: an empty, "." or ".." component`);
        continue;
      }
      const ns = sysctlNamespace(parts);
      if (!ns)
        add(p, `${key} is not isolated by any namespace: writing it would change the host`, "only per-namespace sysctls are accepted: net.*, fs.mqueue.*, kernel.msgmax/msgmnb/msgmni/sem/shmall/shmmax/shmmni/shm_rmid_forced, kernel.hostname/domainname");
      else if (!has(ns)) add(p, `${key} is per ${label[ns]} namespace: it needs a new ${label[ns]} namespace (changing the host's is refused)`, `add {"type": "${ns}"} to /linux/namespaces`);
      else if (parts.join(".") === "kernel.hostname" && str(config.hostname) && config.hostname !== "") add(p, `${key} conflicts with /hostname`, "set the hostname in one of them");
    }
  }

  arr(linux.devices).forEach((d, i) => {
    if (!isObj(d)) return;
    absolute(`/linux/devices/${i}/path`, d.path, "a device path");
    if ((d.type === "c" || d.type === "b" || d.type === "u") && (d.major === undefined || d.minor === undefined))
      add(`/linux/devices/${i}`, `a "${d.type}" device needs major and minor numbers`);
  });
  for (const k of ["maskedPaths", "readonlyPaths"] as const) arr(linux[k]).forEach((p, i) => absolute(`/linux/${k}/${i}`, p, "a path"));

  if (isObj(linux.seccomp)) {
    const sc = linux.seccomp;
    const actions = [sc.defaultAction, ...arr(sc.syscalls).map((s) => (isObj(s) ? s.action : undefined))];
    if (actions.includes("SCMP_ACT_NOTIFY") && !str(sc.listenerPath))
      add("/linux/seccomp/listenerPath", "is required when a rule uses SCMP_ACT_NOTIFY");
    if (sc.defaultAction === "SCMP_ACT_NOTIFY") add("/linux/seccomp/defaultAction", "SCMP_ACT_NOTIFY cannot be the default action");
    if (str(sc.listenerPath)) absolute("/linux/seccomp/listenerPath", sc.listenerPath, "the listener path");
    arr(sc.syscalls).forEach((s, i) => {
      if (!isObj(s)) return;
      if (s.errnoRet !== undefined && s.action !== "SCMP_ACT_ERRNO" && s.action !== "SCMP_ACT_TRACE")
        add(`/linux/seccomp/syscalls/${i}/errnoRet`, `only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not ${String(s.action)}`);
    });
    if (sc.defaultErrnoRet !== undefined && sc.defaultAction !== "SCMP_ACT_ERRNO" && sc.defaultAction !== "SCMP_ACT_TRACE")
      add("/linux/seccomp/defaultErrnoRet", `only applies when defaultAction is SCMP_ACT_ERRNO or SCMP_ACT_TRACE`);
  }
}
