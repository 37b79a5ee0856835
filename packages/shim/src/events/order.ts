// The order containerd's consumers rely on (docs/runtime-v2.md; the runc shim keeps it too):
// a task's TaskStart comes before its init's TaskExit, and the init's TaskExit comes after the
// TaskExit of every exec that was started in it. The Task service publishes each event when it
// happens; an init that exits while Start is still returning (a container running `true`), or
// before its execs are reaped, would break that order. This stage holds such an init exit back:
// until TaskStart of the task passes, until its last started exec's exit passes (at most
// EXEC_WAIT_MS), or until TaskDelete, which always comes last.
import type { Publish, Topic, TopicEvents } from "./proto.ts";

const EXEC_WAIT_MS = 2000;

interface TaskOrder {
  started: boolean;
  /** Exec ids started and not yet exited. */
  running: Set<string>;
  heldExit: TopicEvents["/tasks/exit"] | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class EventOrder {
  private tasks = new Map<string, TaskOrder>();

  constructor(private downstream: Publish) {}

  readonly publish: Publish = <T extends Topic>(topic: T, event: TopicEvents[T]) => {
    const id = (event as { containerId: string }).containerId;
    switch (topic) {
      case "/tasks/create":
        this.tasks.set(id, { started: false, running: new Set(), heldExit: undefined, timer: undefined });
        this.downstream(topic, event);
        return;
      case "/tasks/start": {
        this.downstream(topic, event);
        const t = this.tasks.get(id);
        if (t) {
          t.started = true;
          this.release(id, false);
        }
        return;
      }
      case "/tasks/exec-started":
        this.tasks.get(id)?.running.add((event as TopicEvents["/tasks/exec-started"]).execId);
        this.downstream(topic, event);
        return;
      case "/tasks/exit": {
        const exit = event as TopicEvents["/tasks/exit"];
        const t = this.tasks.get(id);
        if (!t) return this.downstream(topic, event);
        if (exit.id !== id) {
          this.downstream(topic, event);
          t.running.delete(exit.id);
          this.release(id, false);
          return;
        }
        t.heldExit = exit;
        this.release(id, false);
        return;
      }
      case "/tasks/delete": {
        this.release(id, true);
        this.tasks.delete(id);
        this.downstream(topic, event);
        return;
      }
      default:
        this.downstream(topic, event);
    }
  };

  /** Sends a held init exit once nothing it must follow is pending (or at once when `force`). */
  private release(id: string, force: boolean): void {
    const t = this.tasks.get(id);
    if (!t?.heldExit) return;
    if (!force && !t.started) return;
    if (!force && t.running.size > 0) {
      // An exec the kernel killed with the init is reaped a moment later; do not wait forever.
      t.timer ??= setTimeout(() => this.release(id, true), EXEC_WAIT_MS);
      return;
    }
    if (t.timer) clearTimeout(t.timer);
    t.timer = undefined;
    const exit = t.heldExit;
    t.heldExit = undefined;
    this.downstream("/tasks/exit", exit);
  }
}
