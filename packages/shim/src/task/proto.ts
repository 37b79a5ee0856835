// containerd's shim Task API (containerd.task.v2.Task) and the messages it carries, as TypeScript
// shapes and protobufjs codecs. The .proto texts are ours, written to match containerd's field
// numbers and types; the shapes below must follow them (the shim tests round-trip each message).
import type protobuf from "protobufjs";
import mountProto from "../../proto/containerd/types/mount.proto" with { type: "text" };
import taskTypesProto from "../../proto/containerd/types/task.proto" with { type: "text" };
import shimProto from "../../proto/containerd/task/v2/shim.proto" with { type: "text" };
import runcOptionsProto from "../../proto/containerd/runc/options.proto" with { type: "text" };
import cgroupsV1MetricsProto from "../../proto/containerd/cgroups/v1/metrics.proto" with { type: "text" };
import { codec, parseProtos, type Any, type Codec, type Timestamp } from "../ttrpc/codec.ts";

export const TASK_SERVICE_V2 = "containerd.task.v2.Task";
/** containerd 2.x asks for v3 first; the messages are the same, only the package differs. */
export const TASK_SERVICE_V3 = "containerd.task.v3.Task";
export const RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options";
export const PROCESS_DETAILS_TYPE = "containerd.runc.v1.ProcessDetails";

/** containerd.v1.types.Status */
export const TaskStatus = { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 } as const;

export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface CreateTaskRequest {
  id: string;
  bundle: string;
  rootfs: Mount[];
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  checkpoint: string;
  parentCheckpoint: string;
  options: Any | null;
}
export interface CreateTaskResponse {
  pid: number;
}
export interface IdRequest {
  id: string;
}
export interface ProcessRequest {
  id: string;
  execId: string;
}
export interface StartResponse {
  pid: number;
}
export interface DeleteResponse {
  pid: number;
  exitStatus: number;
  exitedAt: Timestamp | null;
}
export interface StateResponse {
  id: string;
  bundle: string;
  pid: number;
  status: number;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt: Timestamp | null;
  execId: string;
}
export interface ExecProcessRequest {
  id: string;
  execId: string;
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  /** runtime-spec Process, JSON in the Any's value. */
  spec: Any | null;
}
export interface ResizePtyRequest {
  id: string;
  execId: string;
  width: number;
  height: number;
}
export interface UpdateTaskRequest {
  id: string;
  /** runtime-spec LinuxResources, JSON in the Any's value. */
  resources: Any | null;
  annotations: Record<string, string>;
}
export interface StatsResponse {
  stats: Any | null;
}
export interface KillRequest {
  id: string;
  execId: string;
  signal: number;
  all: boolean;
}
export interface CloseIORequest {
  id: string;
  execId: string;
  stdin: boolean;
}
export interface ProcessInfo {
  pid: number;
  info: Any | null;
}
export interface PidsResponse {
  processes: ProcessInfo[];
}
export interface WaitResponse {
  exitStatus: number;
  exitedAt: Timestamp | null;
}
export interface ConnectResponse {
  shimPid: number;
  taskPid: number;
  version: string;
}
export interface ShutdownRequest {
  id: string;
  now: boolean;
}
export type Empty = Record<string, never>;

/** containerd.runc.v1.Options: the fields this shim reads. */
export interface RuncOptions {
  binaryName: string;
  root: string;
  systemdCgroup: boolean;
  noPivotRoot: boolean;
  noNewKeyring: boolean;
}

const P = "containerd.task.v2.";

function load() {
  const root: protobuf.Root = parseProtos([mountProto, taskTypesProto, shimProto, runcOptionsProto, cgroupsV1MetricsProto]);
  return {
    root,
    createRequest: codec<CreateTaskRequest>(root, `${P}CreateTaskRequest`),
    createResponse: codec<CreateTaskResponse>(root, `${P}CreateTaskResponse`),
    startRequest: codec<ProcessRequest>(root, `${P}StartRequest`),
    startResponse: codec<StartResponse>(root, `${P}StartResponse`),
    stateRequest: codec<ProcessRequest>(root, `${P}StateRequest`),
    stateResponse: codec<StateResponse>(root, `${P}StateResponse`),
    deleteRequest: codec<ProcessRequest>(root, `${P}DeleteRequest`),
    deleteResponse: codec<DeleteResponse>(root, `${P}DeleteResponse`),
    killRequest: codec<KillRequest>(root, `${P}KillRequest`),
    execRequest: codec<ExecProcessRequest>(root, `${P}ExecProcessRequest`),
    resizePtyRequest: codec<ResizePtyRequest>(root, `${P}ResizePtyRequest`),
    idRequest: codec<IdRequest>(root, `${P}PauseRequest`),
    updateRequest: codec<UpdateTaskRequest>(root, `${P}UpdateTaskRequest`),
    statsRequest: codec<IdRequest>(root, `${P}StatsRequest`),
    statsResponse: codec<StatsResponse>(root, `${P}StatsResponse`),
    cgroupsV1Metrics: codec<Record<string, unknown>>(root, "io.containerd.cgroups.v1.Metrics"),
    processDetails: codec<{ execId: string }>(root, "containerd.runc.v1.ProcessDetails"),
    waitRequest: codec<ProcessRequest>(root, `${P}WaitRequest`),
    waitResponse: codec<WaitResponse>(root, `${P}WaitResponse`),
    pidsRequest: codec<IdRequest>(root, `${P}PidsRequest`),
    pidsResponse: codec<PidsResponse>(root, `${P}PidsResponse`),
    closeIORequest: codec<CloseIORequest>(root, `${P}CloseIORequest`),
    connectRequest: codec<IdRequest>(root, `${P}ConnectRequest`),
    connectResponse: codec<ConnectResponse>(root, `${P}ConnectResponse`),
    shutdownRequest: codec<ShutdownRequest>(root, `${P}ShutdownRequest`),
    empty: codec<Empty>(root, "google.protobuf.Empty"),
    any: codec<Any>(root, "google.protobuf.Any"),
    runcOptions: codec<RuncOptions>(root, "containerd.runc.v1.Options"),
  };
}

let loaded: ReturnType<typeof load> | undefined;

/** The Task API codecs, parsed on first use. */
export function taskProto(): ReturnType<typeof load> {
  return (loaded ??= load());
}

/** The Task service's methods as declared in shim.proto (to check the handler table against). */
export function taskMethods(): string[] {
  return Object.keys(taskProto().root.lookupService(TASK_SERVICE_V2).methods);
}

export type { Any, Codec, Timestamp };
