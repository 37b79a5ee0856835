// cgroups: where a container's cgroups are, creating and removing them, moving processes in,
// listing, freezing and signalling them, applying linux.resources (resources.ts) and telling which
// requested resources this host cannot apply. v1, v2 and hybrid hosts, cgroupfs driver only.

export { CgroupError, SystemdCgroupUnsupportedError } from "./errors.ts";
export { detect, hostFromMountinfo, ownProcsFile, parseMountinfo, parseProcCgroup } from "./detect.ts";
export type { CgroupHost, CgroupMode, Hierarchy, MountinfoCgroup, ProcCgroups, V1Hierarchy } from "./detect.ts";
export { hierarchiesFor, resolveCgroupPaths, UNIFIED } from "./paths.ts";
export type { Hierarchies, ResolveInput } from "./paths.ts";
export { cgroupManager, cgroupManagerFromJSON, DESTROY_TIMEOUT_MS } from "./manager.ts";
export type { CgroupManager, CgroupManagerOptions, CgroupManagerState, DestroyOptions } from "./manager.ts";
export { FREEZE_TIMEOUT_MS } from "./freezer.ts";
export { applyDevicesV1, DEFAULT_ALLOWED, ruleLine } from "./v1/devices.ts";
export { applyResources, unsupportedResourceReasons, unsupportedResources } from "./resources.ts";
export type { ApplyResourcesOptions, UnsupportedResource } from "./resources.ts";
export type { Probe, Requested, ResourceController } from "./controller.ts";
export { blkioToIoWeight, memswFirst, pidsMax, sharesToWeight, swapV2, v1Limit, v2Limit } from "./values.ts";
export { cpuMax } from "./v2/cpu.ts";
