// Calling CNI plugins as the CNI spec (v1.0, SPEC.md) says a runtime does: the plugin binary is
// found by its `type` in CNI_PATH, the parameters go in CNI_* environment variables, the plugin's
// config on stdin; a list's plugins are chained, each ADD getting the previous plugin's result as
// `prevResult`, DEL going through them in reverse with the ADD's final result; capabilities the
// plugin declares get their values in `runtimeConfig`.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { NetworkConfigList, PluginConfig } from "./config.ts";

/** Where Debian's containernetworking-plugins puts them, then the upstream default. */
export const DEFAULT_CNI_PATH = "/usr/lib/cni:/opt/cni/bin";

export function cniPath(): string {
  return process.env.TSRUN_CNI_PATH ?? DEFAULT_CNI_PATH;
}

/** A plugin's result (SPEC.md "Success"), as far as tsrun reads it. */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: unknown[];
  dns?: unknown;
  [key: string]: unknown;
}

export interface Attachment {
  containerId: string;
  /** The network namespace's path; "" for a DEL whose namespace is gone (the spec allows it). */
  netns: string;
  ifname: string;
}

export class CniError extends Error {
  override name = "CniError";
}

/** The plugin's binary: the first `type` in CNI_PATH's directories. */
export function findPlugin(type: string, path = cniPath()): string {
  for (const dir of path.split(":").filter(Boolean)) {
    const p = join(dir, type);
    if (existsSync(p)) return p;
  }
  throw new CniError(`CNI plugin ${JSON.stringify(type)} not found in ${path} (Debian: apt-get install containernetworking-plugins; or set $TSRUN_CNI_PATH)`);
}

/**
 * The config one plugin of a list gets on stdin: the list's cniVersion and name, the plugin's own
 * fields, `runtimeConfig` holding the values of the capabilities it declares (and only those),
 * and `prevResult` when there is one.
 */
export function pluginStdin(list: NetworkConfigList, plugin: PluginConfig, prevResult: CniResult | undefined, runtimeConfig: Record<string, unknown>): Record<string, unknown> {
  const { capabilities, ...own } = plugin;
  const conf: Record<string, unknown> = { ...own, cniVersion: list.cniVersion, name: list.name };
  const rc: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(capabilities ?? {})) if (on && runtimeConfig[cap] !== undefined) rc[cap] = runtimeConfig[cap];
  if (Object.keys(rc).length) conf.runtimeConfig = rc;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

/** The environment of a plugin: ours (plugins run iptables, which lives in sbin), and the CNI_ variables. */
function pluginEnv(command: "ADD" | "DEL", a: Attachment): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CNI_")) env[k] = v;
  const path = env.PATH ?? "/usr/bin:/bin";
  env.PATH = ["/usr/local/sbin", "/usr/sbin", "/sbin"].reduce((p, d) => (p.split(":").includes(d) ? p : `${p}:${d}`), path);
  return { ...env, CNI_COMMAND: command, CNI_CONTAINERID: a.containerId, CNI_NETNS: a.netns, CNI_IFNAME: a.ifname, CNI_PATH: cniPath() };
}

/** Runs one plugin; its result for ADD, nothing for DEL. A failure is a CniError with the plugin's own message. */
export async function execPlugin(command: "ADD" | "DEL", conf: Record<string, unknown>, a: Attachment): Promise<CniResult | undefined> {
  const type = String(conf.type);
  const bin = findPlugin(type);
  const proc = Bun.spawn([bin], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: pluginEnv(command, a) });
  proc.stdin.write(JSON.stringify(conf));
  await proc.stdin.end();
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) {
    // SPEC.md "Error": {code, msg, details} on stdout; stderr may hold more.
    let msg = out.trim() || err.trim() || `exit status ${code}`;
    try {
      const e = JSON.parse(out) as { code?: number; msg?: string; details?: string };
      if (e.msg) msg = `${e.msg}${e.details ? `: ${e.details}` : ""} (CNI error code ${e.code})`;
    } catch {
      // not JSON: the raw text says it
    }
    throw new CniError(`CNI ${command} of plugin ${type} (network ${String(conf.name)}, interface ${a.ifname}) failed: ${msg}`);
  }
  if (command === "DEL") return undefined;
  try {
    return JSON.parse(out) as CniResult;
  } catch {
    throw new CniError(`CNI ADD of plugin ${type} (network ${String(conf.name)}) printed no JSON result: ${JSON.stringify(out.slice(0, 200))}`);
  }
}

/**
 * ADD of a list: each plugin in order with the result so far. `progress` gets each plugin's
 * result as it comes, so that a caller who records it can DEL with it if it dies before the end.
 */
export async function addList(list: NetworkConfigList, a: Attachment, runtimeConfig: Record<string, unknown>, progress: (r: CniResult) => void): Promise<CniResult> {
  let prev: CniResult | undefined;
  for (const p of list.plugins) {
    const r = await execPlugin("ADD", pluginStdin(list, p, prev, runtimeConfig), a);
    // A plugin that returns nothing leaves the previous result as the list's (SPEC.md: it must
    // pass it on, but an older plugin may print nothing).
    if (r && (r.interfaces || r.ips || prev === undefined)) prev = r;
    if (prev) progress(prev);
  }
  if (!prev) throw new CniError(`CNI ADD of network ${list.name}: no plugin returned a result`);
  return prev;
}

/**
 * DEL of a list: every plugin in reverse order with the ADD's final result (or what was recorded
 * of it). Every plugin is called even when one fails, so that one failure does not leave the
 * others' rules behind; the failures are thrown together after.
 */
export async function delList(list: NetworkConfigList, a: Attachment, prevResult: CniResult | undefined, runtimeConfig: Record<string, unknown>): Promise<void> {
  const errors: string[] = [];
  for (const p of [...list.plugins].reverse()) {
    try {
      await execPlugin("DEL", pluginStdin(list, p, prevResult, runtimeConfig), a);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  if (errors.length) throw new CniError(errors.join("; "));
}

/** The container's own addresses in a result: those on an interface inside the namespace. */
export function containerAddresses(r: CniResult): string[] {
  const ifs = r.interfaces ?? [];
  return (r.ips ?? []).filter((ip) => ip.interface === undefined || ifs[ip.interface]?.sandbox).map((ip) => ip.address.split("/")[0]!);
}
