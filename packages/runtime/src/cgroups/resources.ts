// linux.resources → cgroupfs files: which controller file applies each setting (v1/*.ts,
// v2/*.ts, one per controller), and which requested settings this host and manager cannot apply,
// so that create can refuse a config instead of running a container without a limit it asked for.
//
// v1 and hybrid managers use the v1 controllers (a hybrid host's cgroup2 tree only tracks the
// processes, as with runc); a v2 manager uses the cgroup2 directory. linux.resources.devices is
// not handled here (v1: applyDevicesV1, called by create; v2 needs an eBPF program).

import { existsSync, readdirSync } from "node:fs";
import { posix } from "node:path";
import type { LinuxResources } from "@tsrun/ocispec/core";
import { CgroupError } from "./errors.ts";
import { readText } from "./fs.ts";
import type { CgroupManager } from "./manager.ts";
import { UNIFIED } from "./paths.ts";
import type { Probe, Requested, ResourceController } from "./controller.ts";
import { blkioV1 } from "./v1/blkio.ts";
import { cpuV1 } from "./v1/cpu.ts";
import { cpusetV1 } from "./v1/cpuset.ts";
import { hugetlbV1 } from "./v1/hugetlb.ts";
import { memoryV1 } from "./v1/memory.ts";
import { netClsV1 } from "./v1/netcls.ts";
import { netPrioV1 } from "./v1/netprio.ts";
import { pidsV1 } from "./v1/pids.ts";
import { rdma } from "./v1/rdma.ts";
import { cpuV2 } from "./v2/cpu.ts";
import { cpusetV2 } from "./v2/cpuset.ts";
import { hugetlbV2 } from "./v2/hugetlb.ts";
import { ioV2 } from "./v2/io.ts";
import { memoryV2 } from "./v2/memory.ts";
import { pidsV2 } from "./v2/pids.ts";
import { rdmaV2 } from "./v2/rdma.ts";
import { unifiedV2 } from "./v2/unified.ts";

/** In application order: cpuset before anything that could need the CPUs, unified last (it wins). */
const V1: readonly ResourceController[] = [cpusetV1, memoryV1, cpuV1, pidsV1, blkioV1, hugetlbV1, netClsV1, netPrioV1, rdma];
const V2: readonly ResourceController[] = [cpusetV2, memoryV2, cpuV2, pidsV2, ioV2, hugetlbV2, rdmaV2, unifiedV2];

export interface UnsupportedResource {
  /** JSON pointer into config.json, e.g. "/linux/resources/hugepageLimits/0". */
  pointer: string;
  reason: string;
}

export interface ApplyResourcesOptions {
  /** Settings accepted but ignored on purpose (memory.kernel). */
  warn?: ((message: string) => void) | undefined;
}

/**
 * Writes every setting of `resources` into the manager's cgroups (which create() has made).
 * Refuses, before writing anything, when some requested setting cannot be applied here (see
 * unsupportedResources); a failing write throws the CgroupError naming file, value and errno.
 */
export function applyResources(manager: CgroupManager, resources: LinuxResources, options: ApplyResourcesOptions = {}): void {
  if (!manager.exists()) throw new CgroupError("apply", undefined, "ENOENT", "the container's cgroup does not exist (create() it before applying resources)");
  const bad = unsupportedResourceReasons(manager, resources);
  if (bad.length > 0) {
    throw new CgroupError("apply", undefined, "EOPNOTSUPP", `cannot apply on this host: ${bad.map((b) => `${b.pointer} (${b.reason})`).join("; ")}`);
  }
  for (const { controller, dir } of targets(manager)) {
    if (dir !== undefined && controller.needsToHandle(resources)) controller.apply(dir, resources, options.warn);
  }
}

/** The JSON pointers of the requested settings this manager cannot apply on this host. */
export function unsupportedResources(manager: CgroupManager, resources: LinuxResources): string[] {
  return unsupportedResourceReasons(manager, resources).map((u) => u.pointer);
}

/**
 * unsupportedResources with a reason each. Exact once create() has made the cgroups; before
 * that, judged from the nearest existing ancestor directory (the files a new cgroup will have).
 */
export function unsupportedResourceReasons(manager: CgroupManager, resources: LinuxResources): UnsupportedResource[] {
  const out: UnsupportedResource[] = [];
  const all = (reqs: Requested[], reason: string) => out.push(...reqs.map((q) => ({ pointer: q.pointer, reason })));
  const v2 = manager.mode === "v2";
  for (const { controller, dir } of targets(manager)) {
    const reqs = controller.requested(resources);
    if (reqs.length === 0) continue;
    if (dir === undefined) {
      const lost = manager.dropped()[v2 ? UNIFIED : controller.name];
      // runc refuses this too ("cannot set <ctl> limit: container could not join or create cgroup").
      if (lost) all(reqs, `rootless: the container has no ${v2 ? "cgroup2" : controller.name} cgroup, since this user may not make or join one (${lost.message}); remove the limit, or run where the user owns a delegated cgroup`);
      else all(reqs, `the cgroup v1 ${controller.name} controller is not mounted`);
      continue;
    }
    const probe = makeProbe(dir, v2);
    if (v2 && controller.name !== "" && !probe.controllers().includes(controller.name)) {
      all(reqs, `the cgroup2 ${controller.name} controller is not available in ${probe.dir}`);
      continue;
    }
    for (const q of reqs) {
      const hasFile = q.files.some((f) => probe.has(f));
      if (!hasFile) out.push({ pointer: q.pointer, reason: q.why ?? `no ${q.files.join(" or ")} in ${probe.dir}` });
      else if (q.ok && !q.ok(probe)) out.push({ pointer: q.pointer, reason: q.why ?? "not applicable here" });
    }
  }
  if (v2) {
    all([...netClsV1.requested(resources), ...netPrioV1.requested(resources)], "cgroup v2 has no net_cls or net_prio controller");
  } else {
    all(unifiedV2.requested(resources), `invalid configuration: linux.resources.unified needs cgroup v2; this container's cgroups are ${manager.mode === "hybrid" ? "v1 (hybrid host)" : "v1"}`);
  }
  return out;
}

/** Each controller of the manager's mode with its directory (undefined: not mounted). */
function targets(manager: CgroupManager): { controller: ResourceController; dir: string | undefined }[] {
  const paths = manager.paths();
  if (manager.mode === "v2") return V2.map((controller) => ({ controller, dir: paths[UNIFIED] }));
  return V1.map((controller) => ({ controller, dir: paths[controller.name] }));
}

/** v1 files that a hierarchy's root lacks but every cgroup below it has. */
const V1_NON_ROOT = new Set(["blkio.weight", "blkio.weight_device", "blkio.leaf_weight", "blkio.leaf_weight_device", "blkio.bfq.weight", "blkio.bfq.weight_device"]);

interface FullProbe extends Probe {
  /** v2: the controllers the container's cgroup has (or, before create(), can get). */
  controllers(): string[];
}

function makeProbe(dir: string, v2: boolean): FullProbe {
  let p = dir;
  while (!existsSync(p) && p !== "/") p = posix.dirname(p);
  const exact = p === dir;
  const read = (file: string): string | undefined => {
    try {
      return readText(`${p}/${file}`).trim();
    } catch {
      return undefined;
    }
  };
  const controllers = (): string[] => (read("cgroup.controllers") ?? "").split(/\s+/).filter((c) => c !== "");
  const has = (file: string): boolean => {
    if (existsSync(`${p}/${file}`)) return true;
    if (exact) return false;
    // The container's cgroup will be made below p: judge by what such a cgroup gets.
    if (!v2) return existsSync(`${p}/cgroup.sane_behavior`) && V1_NON_ROOT.has(file);
    // cgroup2: a controller's files appear below a cgroup that has the controller; p itself may
    // show none of them (the root, or not enabled in p's parent), and then p's children will.
    const ctrl = file.slice(0, file.indexOf("."));
    if (!controllers().includes(ctrl)) return false;
    return !readdirSync(p).some((f) => f.startsWith(`${ctrl}.`) && ctrl !== "cgroup");
  };
  return { dir: p, has, read, controllers };
}
