// What the monitor of an image container (monitor.ts) keeps beside the container's bundle, in
// the image store's bundles/<id>/ (0700, root's), so that everything of a container goes with
// its bundle when `tsrun delete` removes it:
//   container.log  the container's output in containerd's CRI log format (cri.ts)
//   monitor.json   who the monitor is (pid and start time), and what the container was run as
//   exit.json      the init's exit status, written when it has exited and its output is drained
//   attach.sock    the monitor's attach socket (0600), while the container runs
//   monitor.err    the monitor's own stderr (its failures, for the user who looks)
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface MonitorRecord {
  /** The monitor's pid and its start time in clock ticks (/proc/PID/stat field 22): a pid reused later is not it. */
  pid: number;
  startTime: number;
  id: string;
  image: string;
  tty: boolean;
  stdin: boolean;
  /** ISO time the container was created. */
  created: string;
  /** `--rm`: the monitor removes the container when it exits. */
  rm: boolean;
}

export interface ExitRecord {
  /** The exit status as a shell reports it (128+n for signal n). */
  code: number;
  /** ISO time the init exited. */
  finished: string;
}

export const monitorFiles = (bundle: string) => ({
  log: join(bundle, "container.log"),
  record: join(bundle, "monitor.json"),
  exit: join(bundle, "exit.json"),
  socket: join(bundle, "attach.sock"),
  err: join(bundle, "monitor.err"),
  createLog: join(bundle, "create.log"),
});

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

export const readMonitorRecord = (bundle: string) => readJson<MonitorRecord>(monitorFiles(bundle).record);
export const readExitRecord = (bundle: string) => readJson<ExitRecord>(monitorFiles(bundle).exit);
export const hasMonitor = (bundle: string) => existsSync(monitorFiles(bundle).record);

/** A process's start time (clock ticks since boot), or undefined when it is gone. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") return undefined;
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Whether the monitor a record names is still running (the same process, not a reused pid). */
export function monitorAlive(rec: MonitorRecord): boolean {
  return processStartTime(rec.pid) === rec.startTime;
}

/**
 * The bundle of a container of `run --image`: the one its runtime record names when that is in
 * an image store, else the image store's bundles/<id> (a container whose record is gone).
 * Undefined when there is none with a monitor's files.
 */
export function imageContainerBundle(recordBundle: string | undefined, imageRoot: string, id: string): string | undefined {
  for (const b of [recordBundle, join(imageRoot, "bundles", id)]) if (b && (existsSync(join(b, "monitor.json")) || existsSync(join(b, "container.log")))) return b;
  return undefined;
}
