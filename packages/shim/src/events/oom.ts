// TaskOOM: the shim watches the memory cgroup of each container it created (the runtime
// library's OOM notification, found through the container's record in tsrun's state) and
// publishes /tasks/oom for each OOM event. It sits between the Task service and the publisher:
// TaskCreate starts a watch, the init's TaskExit first publishes any OOM not yet seen (so an
// OOM-killed container's TaskOOM comes before its TaskExit, as with the runc shim), and
// TaskDelete ends the watch. One timer checks every watch (eventfds on cgroup v1 are
// non-blocking reads; v2 compares memory.events' oom_kill count), so nothing blocks the event loop.
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
        this.watch(e.containerId, e.bundle);
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

  private watch(id: string, bundle: string): void {
    let w: OomWatch | undefined;
    try {
      const store = new Store(this.opts.stateRoot(bundle));
      w = watchCgroupOom(containerCgroup(store.read(id)));
    } catch (err) {
      // Another runtime (BinaryName) keeps no tsrun record; the container then gets no TaskOOM.
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

/** Where a bundle's runtime keeps its records: the root Create saved (options.json), per namespace. */
export function stateRootFor(savedRoot: string, namespace: string): string {
  return join(savedRoot, namespace);
}
