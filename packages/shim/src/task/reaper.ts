// Exit statuses of container processes. The executor's stage 1 (a child of the runtime library in
// this process, or of a runtime binary) forks the container's init and exits, so the init is
// reparented to the nearest subreaper, this shim, and only the shim can wait for it.
//
// Bun reaps the processes it spawns itself, by pid, so this code must never wait(-1): it waits
// only for pids it was asked to watch, and for orphaned zombies that are not Bun's (an init that
// died before anyone watched it, a daemon a container left behind). SIGCHLD triggers a sweep; a
// slow timer sweeps too, in case a signal is coalesced while a sweep runs.
import { readdirSync, readFileSync } from "node:fs";
import { setChildSubreaper, waitpid, WNOHANG } from "@tsrun/runtime/linux";
import { ownsChild } from "@tsrun/runtime";

type Stdio = number | "ignore" | "pipe" | "inherit";

export interface SpawnSpec {
  cwd?: string;
  env?: Record<string, string | undefined>;
  stdio: [Stdio, Stdio, Stdio];
  detached?: boolean;
}

export interface Exit {
  pid: number;
  /** The exit code, or 128 + the signal for a killed process (as containerd reports it). */
  status: number;
  /** Date.now() when the exit was collected. */
  at: number;
}

/** Unwatched exits kept for a later watch(); bounded so that a fork bomb's orphans cannot grow it. */
const MAX_UNCLAIMED = 1024;
const SWEEP_INTERVAL_MS = 1000;

export class Reaper {
  private watched = new Map<number, Array<(exit: Exit) => void>>();
  private unclaimed = new Map<number, Exit>();
  /** Children Bun spawned and will reap itself. */
  private bunOwned = new Set<number>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly onSignal = () => this.sweep();

  /** owned: children someone else in this process waits for (default: the runtime library's). */
  constructor(private readonly owned: (pid: number) => boolean = ownsChild) {}

  /** Makes this process a subreaper and starts collecting exits. */
  start(): void {
    setChildSubreaper();
    process.on("SIGCHLD", this.onSignal);
    this.timer = setInterval(this.onSignal, SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    process.off("SIGCHLD", this.onSignal);
    if (this.timer) clearInterval(this.timer);
  }

  /** Spawns a helper through Bun, keeping the sweep's hands off it (Bun waits for it). */
  spawn(cmd: string[], opts: SpawnSpec): Bun.Subprocess {
    const proc = Bun.spawn(cmd, { cwd: opts.cwd, env: opts.env, stdio: opts.stdio, detached: opts.detached ?? false });
    this.bunOwned.add(proc.pid);
    void proc.exited.finally(() => this.bunOwned.delete(proc.pid));
    return proc as unknown as Bun.Subprocess;
  }

  /** Resolves with the pid's exit; the pid must be a child (or reparented orphan) of this process. */
  watch(pid: number): Promise<Exit> {
    const early = this.unclaimed.get(pid);
    if (early) {
      this.unclaimed.delete(pid);
      return Promise.resolve(early);
    }
    return new Promise<Exit>((resolve) => {
      this.watched.set(pid, [...(this.watched.get(pid) ?? []), resolve]);
      // It may have exited between the caller learning its pid and this call.
      this.sweep();
    });
  }

  /** Collects every exit that is ready; never blocks. */
  sweep(): void {
    for (const pid of [...this.watched.keys()]) {
      const exit = this.collect(pid);
      if (!exit) continue;
      const waiters = this.watched.get(pid) ?? [];
      this.watched.delete(pid);
      for (const w of waiters) w(exit);
    }
    for (const pid of zombieChildren()) {
      // The runtime library's own children (an executor's stage 1, a hook) are its to wait for.
      if (this.bunOwned.has(pid) || this.watched.has(pid) || this.owned(pid)) continue;
      const exit = this.collect(pid);
      if (!exit) continue;
      if (this.unclaimed.size >= MAX_UNCLAIMED) this.unclaimed.delete(this.unclaimed.keys().next().value!);
      this.unclaimed.set(pid, exit);
    }
  }

  private collect(pid: number): Exit | undefined {
    const w = waitpid(pid, WNOHANG);
    if (w.pid !== pid) return undefined;
    return { pid, status: w.signaled ? 128 + w.signal : w.code, at: Date.now() };
  }
}

/** This process's children that have exited and wait to be reaped. */
function zombieChildren(): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return out;
  }
  for (const tid of tasks) {
    let children: string;
    try {
      children = readFileSync(`/proc/self/task/${tid}/children`, "utf8");
    } catch {
      continue;
    }
    for (const word of children.split(" ")) {
      const pid = Number(word);
      if (pid > 0 && isZombie(pid)) out.push(pid);
    }
  }
  return out;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state follows the command name, which is in parentheses and may itself contain ") ".
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false;
  }
}
