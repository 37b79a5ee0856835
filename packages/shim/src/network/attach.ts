// A container's network attachment: a network namespace of its own, kept by a bind mount of its
// nsfs file (as containerd and `ip netns` keep one) under the image store's networks/netns/, and
// the CNI networks ADDed in it; and the teardown that undoes all of it.
//
// Why a namespace of its own rather than the container's (/proc/<pid>/ns/net): its life is
// the attachment's, not the init's. When the container's processes are gone — killed, exited, or
// tsrun itself killed with -9 — the namespace is still there for the DEL, and the bridge
// plugin only removes its masquerading rules when it can read the addresses from the namespace
// (with an empty CNI_NETNS it releases the lease and stops). The container joins it by path.
//
// Why DEL always happens: the record (networks/attachments/<cid>.json) is written before
// anything is made, holds the conflist as used (a later edit of the file does not change what
// is removed) and each plugin's result as soon as it comes; `teardown` works from it alone,
// and only forgets it once every DEL succeeded. A plugin still running from a killed tsrun
// (the record says "adding") is killed first, so it cannot add after the DEL.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { umount2 } from "@tsrun/runtime/linux";
import { addList, CniError, containerAddresses, delList, type CniResult } from "./cni.ts";
import { defaultConflist, loopbackConfig, parseConflist, type NetworkConfigList, type PortMapping } from "./config.ts";
import { cniContainerId, networkDir, recordPath } from "./paths.ts";

export type NetworkMode = "bridge" | "host" | "none";

const MNT_DETACH = 2;

/** The default network's conflist in a store: written on first use, the user's to edit after. */
export function conflistPath(imageRoot: string): string {
  return join(networkDir(imageRoot), "tsrun.conflist");
}

export interface NetworkRecord {
  /** tsrun's container id and state root, for messages. */
  id: string;
  root: string;
  /** The bundle of `run --image` the container was made from: a delete after a kill -9 that came before the runtime knew the container removes it from here. */
  bundle?: string;
  /** CNI_CONTAINERID. */
  containerId: string;
  netns: string;
  ports: PortMapping[];
  /** In ADD order; DEL goes the other way. `result`: the last result a plugin returned. */
  networks: { list: NetworkConfigList; ifname: string; result?: CniResult }[];
  phase: "adding" | "added";
}

export interface NetworkSetup {
  record: NetworkRecord;
  /** The container's addresses on its networks (none with --net none). */
  addresses: string[];
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

function writeRecord(imageRoot: string, rec: NetworkRecord): void {
  writeAtomic(recordPath(imageRoot, rec.containerId), JSON.stringify(rec));
}

export function readRecord(imageRoot: string, cid: string): NetworkRecord | undefined {
  let text: string;
  try {
    text = readFileSync(recordPath(imageRoot, cid), "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as NetworkRecord;
  } catch (e) {
    throw new Error(`network record ${recordPath(imageRoot, cid)} is damaged (${(e as Error).message}): the container's network cannot be removed from it`);
  }
}

/** The default network's conflist, written with tsrun's bridge and subnet the first time. */
export function loadConflist(imageRoot: string): NetworkConfigList {
  const file = conflistPath(imageRoot);
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeAtomic(file, `${JSON.stringify(defaultConflist({ dataDir: join(networkDir(imageRoot), "ipam") }), null, 2)}\n`);
  }
  return parseConflist(readFileSync(file, "utf8"), file);
}

/** Whether `path` is a namespace file (nsfs) rather than the empty file it is mounted on. */
function isNetns(path: string): boolean {
  try {
    return statSync(path).dev === statSync("/proc/self/ns/net").dev;
  } catch {
    return false;
  }
}

/** A new network namespace kept by a bind mount on `path`: util-linux's unshare makes it and mounts it. */
function makeNetns(path: string, cid: string): void {
  writeFileSync(path, "", { mode: 0o444 });
  // CNI_CONTAINERID in its environment: a teardown after a kill -9 finds it as it finds a plugin.
  const r = Bun.spawnSync(["unshare", `--net=${path}`, "true"], { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: { ...process.env, CNI_CONTAINERID: cid } });
  if (!r.success) throw new Error(`making the network namespace ${path} failed: unshare: ${r.stderr.toString().trim() || `exit status ${r.exitCode}`}`);
}

function removeNetns(path: string): void {
  if (isNetns(path)) umount2(path, MNT_DETACH);
  rmSync(path, { force: true });
}

/** Processes (plugins, unshare) started for this attachment by a tsrun that is gone: they carry its CNI_CONTAINERID. */
function attachmentProcesses(cid: string): number[] {
  const mark = `\0CNI_CONTAINERID=${cid}\0`;
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (`\0${readFileSync(`/proc/${p}/environ`, "latin1")}`.includes(mark)) out.push(Number(p));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

async function killAttachmentProcesses(cid: string): Promise<void> {
  let pids = attachmentProcesses(cid);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  for (let i = 0; i < 250 && pids.length; i++) {
    await Bun.sleep(20);
    pids = pids.filter((p) => existsSync(`/proc/${p}`) && !/\) [ZX] /.test(readFileSync(`/proc/${p}/stat`, "latin1")));
  }
}

export interface SetupRequest {
  imageRoot: string;
  /** tsrun's state root and container id: the CNI container id is made from both. */
  root: string;
  id: string;
  bundle?: string;
  mode: Exclude<NetworkMode, "host">;
  ports: PortMapping[];
}

/**
 * Makes the container's namespace and ADDs its networks: loopback on "lo", and with "bridge" the
 * store's conflist on "eth0" with the port mappings. On failure everything made is removed.
 */
export async function setupNetwork(req: SetupRequest): Promise<NetworkSetup> {
  const dir = networkDir(req.imageRoot);
  for (const d of [dir, join(dir, "attachments"), join(dir, "netns")]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const cid = cniContainerId(req.root, req.id);
  // An attachment of a container of this id that a killed tsrun left and no delete removed:
  // its id is free again (the runtime has no container of it), so its network goes first.
  if (readRecord(req.imageRoot, cid)) await teardownNetwork(req.imageRoot, cid);
  const networks: NetworkRecord["networks"] = [{ list: loopbackConfig(), ifname: "lo" }];
  if (req.mode === "bridge") networks.push({ list: loadConflist(req.imageRoot), ifname: "eth0" });
  const rec: NetworkRecord = { id: req.id, root: req.root, ...(req.bundle ? { bundle: req.bundle } : {}), containerId: cid, netns: join(dir, "netns", cid), ports: req.ports, networks, phase: "adding" };
  writeRecord(req.imageRoot, rec);
  try {
    makeNetns(rec.netns, cid);
    for (const n of rec.networks) {
      await addList(n.list, { containerId: cid, netns: rec.netns, ifname: n.ifname }, { portMappings: rec.ports }, (r) => {
        n.result = r;
        writeRecord(req.imageRoot, rec);
      });
    }
    rec.phase = "added";
    writeRecord(req.imageRoot, rec);
  } catch (e) {
    try {
      await teardownNetwork(req.imageRoot, cid);
    } catch (t) {
      throw new CniError(`${(e as Error).message}; and removing what was made failed: ${(t as Error).message}`);
    }
    throw e;
  }
  const eth = rec.networks.find((n) => n.ifname === "eth0")?.result;
  return { record: rec, addresses: eth ? containerAddresses(eth) : [] };
}

/**
 * DELs every network of the attachment (in reverse, each with its recorded result; with an empty
 * CNI_NETNS when the namespace is already gone), then removes the namespace and the record.
 * Returns false when there was no record. On a DEL failure the record and namespace stay, so that
 * another `tsrun delete` tries again.
 */
export async function teardownNetwork(imageRoot: string, cid: string): Promise<boolean> {
  const rec = readRecord(imageRoot, cid);
  if (!rec) return false;
  if (rec.phase === "adding") await killAttachmentProcesses(cid);
  const netns = isNetns(rec.netns) ? rec.netns : "";
  const errors: string[] = [];
  for (const n of [...rec.networks].reverse()) {
    try {
      await delList(n.list, { containerId: cid, netns, ifname: n.ifname }, n.result, { portMappings: rec.ports });
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  if (errors.length) throw new CniError(`container ${rec.id}: removing its network failed (the record ${recordPath(imageRoot, cid)} is kept; \`tsrun delete --force ${rec.id}\` tries again): ${errors.join("; ")}`);
  removeNetns(rec.netns);
  rmSync(recordPath(imageRoot, cid), { force: true });
  return true;
}
