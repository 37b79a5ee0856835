// @tsrun/runtime: the OCI runtime as a library. The CLI (src/cli) is one client of it; the shim
// is the other. The lifecycle functions take the Store (a state root) and work as the command of
// the same name does; failures are TsrunError subclasses (ContainerError, NotFound, CorruptState,
// PlanError, CgroupError, SeccompError), each with runc-compatible fields (errorFields).
//
// Sub-entries: "@tsrun/runtime/linux" (libc through bun:ffi, constants, mountinfo; opens
// nothing until used), "@tsrun/runtime/seccomp" (the profile → BPF compiler, syscall tables),
// "@tsrun/runtime/cli" (command definitions, the registry, CliError, the entry) and
// "@tsrun/runtime/cli/run", "@tsrun/runtime/cli/delete" (the runtime's commands that the image
// commands extend). "sideEffects": false (package.json) lets Bun's bundler leave out of each
// command every module re-exported here that the command does not use: without it, a command
// importing one name from this file would carry the whole library.

// State store and records.
export { Store, checkId, NotFound, CorruptState, type ContainerRecord } from "./container/store.ts";
export { stateDocument, isPaused, type Status } from "./container/status.ts";

// Lifecycle.
export { createContainer, createContainerAsync, loadConfig, type CreateOptions, type Created } from "./container/create.ts";
export { runContainer, type RunOptions } from "./container/run.ts";
export {
  containerState,
  listContainers,
  startContainer,
  startContainerAsync,
  killContainer,
  pauseContainer,
  resumeContainer,
  deleteContainer,
  deleteContainerAsync,
  status,
  containerCgroup,
  withLockedRecord,
} from "./container/lifecycle.ts";
export { execProcess, startExec, validateProcess, type ExecOptions, type Executed } from "./container/exec.ts";
// Children the library waits for itself (a subreaper in the same process leaves them alone).
export { ownsChild } from "./container/children.ts";
export { updateContainer, mergeResources, resourcesFromFlags, resourcesFromJSON, parseSize, type UpdateFlags } from "./container/update.ts";
export { containerEvents, parseDuration } from "./container/events.ts";
export { containerPids, filterPsOutput } from "./container/ps.ts";
export { checkpointContainer, restoreContainer } from "./container/criu.ts";
export { waitExit, forwardSignals } from "./container/foreground.ts";

// Cgroups: stats, pause state, the manager a record's cgroup is rebuilt into.
export { containerStats, encodeJSON, type Json } from "./cgroups/stats.ts";
export { cgroupPaused } from "./cgroups/pause.ts";
export { watchCgroupOom, type OomWatch } from "./cgroups/oom.ts";
export { cgroupManager, cgroupManagerFromJSON, type CgroupManager, type CgroupManagerOptions, type CgroupManagerState } from "./cgroups/manager.ts";

// Mount options as the runtime reads them (flags, propagation, bind).
export { parseMountOptions, isBind, type ParsedMountOptions } from "./plan/mounts.ts";

// Errors.
export { TsrunError, errorFields, type ErrorFields, type TsrunErrorOptions } from "./errors.ts";
export { ContainerError } from "./container/errors.ts";
export { PlanError } from "./plan/compile.ts";
export { CgroupError, SystemdCgroupUnsupportedError } from "./cgroups/errors.ts";
export { SeccompError } from "./seccomp/index.ts";
export { SysError } from "./linux/libc.ts";

// Features and version.
export { VERSION, COMMIT, versionText } from "./version.ts";
export { features } from "./features.ts";
