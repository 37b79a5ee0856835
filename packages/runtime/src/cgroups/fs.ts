// The few file operations cgroupfs needs, synchronous (they are on the container start path) and
// failing with CgroupError. Writes open the file O_WRONLY without O_CREAT/O_TRUNC: cgroupfs files
// are never created by writing, and a missing one must read as ENOENT, not as EACCES from creat.
// (libuv adds O_CLOEXEC to every open itself.)

import { closeSync, constants, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { errnoCode, fsError } from "./errors.ts";

export function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw fsError("read", path, err);
  }
}

/** One write(2) of `data`: cgroupfs acts on each write call as a whole. */
export function writeText(path: string, data: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY);
  } catch (err) {
    throw fsError("open", path, err, `to write ${JSON.stringify(data)}`);
  }
  try {
    writeSync(fd, data);
  } catch (err) {
    throw fsError("write", path, err, `writing ${JSON.stringify(data)}`);
  } finally {
    closeSync(fd);
  }
}

/** The pids in a cgroup.procs file (directly in that cgroup, not its descendants). */
export function readProcs(dir: string): number[] {
  const text = readText(`${dir}/cgroup.procs`);
  const pids: number[] = [];
  for (const line of text.split("\n")) if (line !== "") pids.push(Number(line));
  return pids;
}

/** Names of the sub-cgroups of dir; [] when dir has vanished. */
export function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if (vanished(err)) return [];
    throw fsError("readdir", dir, err);
  }
}

/** A cgroup removed under our feet: ENOENT on the path, ENODEV on a file of a removed cgroup. */
export function vanished(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "ENOENT" || code === "ENODEV";
}

export function sleepMs(ms: number): void {
  Bun.sleepSync(ms);
}
