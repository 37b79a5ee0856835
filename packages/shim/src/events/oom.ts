// TaskOOM: the shim watches the memory cgroup of each container it created (the runtime
// library's OOM notification, on the cgroup of the container's record in tsrun's state, or for
// another runtime (BinaryName) the memory cgroup /proc names for the init) and
// publishes /tasks/oom for each OOM event. It sits between the Task service and the publisher:
// TaskCreate starts a watch, the init's TaskExit first publishes any OOM not yet seen (so an
// OOM-killed container's TaskOOM comes before its TaskExit, as with the runc shim), and
// TaskDelete ends the watch. One timer checks every watch (eventfds on cgroup v1 are
// non-blocking reads; v2 compares memory.events' oom_kill count), so nothing blocks the event loop.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { containerCgroup, Store, watchCgroupOom, type OomWatch } from "@tsrun/runtime";
import type { Publish, Topic, TopicEvents } from "./proto.ts";

export interface OomOptions {
  /** The state root of the runtime for a bundle (saved by Create; tsrun's records are read there). */
  stateRoot: (bundle: string) => string;
  log: (line: string) => void;
  intervalMs?: number;
}

export class OomMonitor {
  private watches = new Map<string, OomWatch>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private downstream: Publish,
    private opts: OomOptions,
  ) {}

  /** The Publish hook to give the Task service: forwards every event, watching OOMs on the way. */
  readonly publish: Publish = <T extends Topic>(topic: T, event: TopicEvents[T]) => {
    try {
      if (topic === "/tasks/create") {
        const e = event as TopicEvents["/tasks/create"];
        this.watch(e.containerId, e.bundle, e.pid);
      } else if (topic === "/tasks/exit") {
        const e = event as TopicEvents["/tasks/exit"];
        if (e.id === e.containerId) this.check(e.containerId);
      } else if (topic === "/tasks/delete") {
        this.unwatch((event as TopicEvents["/tasks/delete"]).containerId);
      }
    } catch (err) {
      this.opts.log(`OOM watch: ${(err as Error).message}`);
    }
    this.downstream(topic, event);
  };

  private watch(id: string, bundle: string, pid: number): void {
    let w: OomWatch | undefined;
    try {
      const store = new Store(this.opts.stateRoot(bundle));
      w = watchCgroupOom(store.exists(id) ? containerCgroup(store.read(id)) : processCgroup(pid));
    } catch (err) {
      this.opts.log(`OOM watch for ${id} not set up: ${(err as Error).message}`);
      return;
    }
    if (!w) return;
    this.watches.get(id)?.close();
    this.watches.set(id, w);
    this.timer ??= setInterval(() => {
      for (const id of this.watches.keys()) this.check(id);
    }, this.opts.intervalMs ?? 200);
    this.timer.unref?.();
  }

  private check(id: string): void {
    const w = this.watches.get(id);
    if (!w) return;
    const n = w.take();
    for (let i = 0; i < n; i++) this.downstream("/tasks/oom", { containerId: id });
  }

  private unwatch(id: string): void {
    this.watches.get(id)?.close();
    this.watches.delete(id);
    if (this.watches.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    for (const id of [...this.watches.keys()]) this.unwatch(id);
  }
}

/**
 * The memory cgroup of a process as /proc/PID/cgroup names it (relative to this process's cgroup
 * namespace, the host's for a shim), under the usual /sys/fs/cgroup mount: the v1 memory
 * hierarchy, or the unified one on a pure v2 host.
 */
export function processCgroup(pid: number, text = readFileSync(`/proc/${pid}/cgroup`, "utf8"), root = "/sys/fs/cgroup"): { mode: "v1" | "v2"; paths(): Record<string, string> } {
  const lines = text.split("\n").map((l) => /^(\d+):([^:]*):(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  const memory = lines.find((m) => m[2]!.split(",").includes("memory"));
  if (memory) return { mode: "v1", paths: () => ({ memory: join(root, "memory", memory[3]!) }) };
  const unified = lines.find((m) => m[1] === "0" && m[2] === "");
  if (unified && existsSync(join(root, "cgroup.controllers"))) return { mode: "v2", paths: () => ({ "": join(root, unified[3]!) }) };
  throw new Error(`process ${pid} has no memory cgroup in /proc/${pid}/cgroup`);
}

/** Where a bundle's runtime keeps its records: the root Create saved (options.json), per namespace. */
export function stateRootFor(savedRoot: string, namespace: string): string {
  return join(savedRoot, namespace);
}
