// The task events the shim publishes (containerd.events.*, topics /tasks/…) and the envelope
// containerd's ttrpc events service takes, as TypeScript shapes and protobufjs codecs.
import mountProto from "../../proto/containerd/types/mount.proto" with { type: "text" };
import eventsProto from "../../proto/containerd/events/task.proto" with { type: "text" };
import forwardProto from "../../proto/containerd/services/events/ttrpc.proto" with { type: "text" };
import { codec, parseProtos, type Any, type Codec, type Timestamp } from "../ttrpc/codec.ts";
import type { Mount } from "../task/proto.ts";

export const EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events";

export interface TaskCreate {
  containerId: string;
  bundle: string;
  rootfs: Mount[];
  io: { stdin: string; stdout: string; stderr: string; terminal: boolean };
  checkpoint: string;
  pid: number;
}
export interface TaskStart {
  containerId: string;
  pid: number;
}
export interface TaskDelete {
  containerId: string;
  pid: number;
  exitStatus: number;
  exitedAt: Timestamp | null;
  id: string;
}
export interface TaskExit {
  containerId: string;
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: Timestamp | null;
}
export interface ContainerOnly {
  containerId: string;
}
export interface TaskExecAdded {
  containerId: string;
  execId: string;
}
export interface TaskExecStarted {
  containerId: string;
  execId: string;
  pid: number;
}

/** Each topic and its message (containerd's runtime topics; the type name is the Any's type_url, bare as containerd 1.6 needs it). */
export interface TopicEvents {
  "/tasks/create": TaskCreate;
  "/tasks/start": TaskStart;
  "/tasks/exit": TaskExit;
  "/tasks/delete": TaskDelete;
  "/tasks/oom": ContainerOnly;
  "/tasks/exec-added": TaskExecAdded;
  "/tasks/exec-started": TaskExecStarted;
  "/tasks/paused": ContainerOnly;
  "/tasks/resumed": ContainerOnly;
}
export type Topic = keyof TopicEvents;

export const TOPIC_TYPES: Record<Topic, string> = {
  "/tasks/create": "containerd.events.TaskCreate",
  "/tasks/start": "containerd.events.TaskStart",
  "/tasks/exit": "containerd.events.TaskExit",
  "/tasks/delete": "containerd.events.TaskDelete",
  "/tasks/oom": "containerd.events.TaskOOM",
  "/tasks/exec-added": "containerd.events.TaskExecAdded",
  "/tasks/exec-started": "containerd.events.TaskExecStarted",
  "/tasks/paused": "containerd.events.TaskPaused",
  "/tasks/resumed": "containerd.events.TaskResumed",
};

/** The hook the Task service calls at each event point; it must return at once and never throw. */
export type Publish = <T extends Topic>(topic: T, event: TopicEvents[T]) => void;

export interface Envelope {
  timestamp: Timestamp;
  namespace: string;
  topic: string;
  event: Any;
}

function load() {
  const root = parseProtos([mountProto, eventsProto, forwardProto]);
  const events = Object.fromEntries(Object.entries(TOPIC_TYPES).map(([topic, type]) => [topic, codec<unknown>(root, type)])) as Record<Topic, Codec<unknown>>;
  return {
    root,
    events,
    envelope: codec<Envelope>(root, "containerd.services.events.ttrpc.v1.Envelope"),
    forwardRequest: codec<{ envelope: Envelope }>(root, "containerd.services.events.ttrpc.v1.ForwardRequest"),
    any: codec<Any>(root, "google.protobuf.Any"),
  };
}

let loaded: ReturnType<typeof load> | undefined;

/** The event codecs, parsed on first use. */
export function eventsProtoCodecs(): ReturnType<typeof load> {
  return (loaded ??= load());
}

/** The event as the Any containerd's consumers unpack. */
export function eventAny<T extends Topic>(topic: T, event: TopicEvents[T]): Any {
  return { typeUrl: TOPIC_TYPES[topic], value: eventsProtoCodecs().events[topic].encode(event as Partial<unknown>) };
}
