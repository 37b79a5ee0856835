// OOM notifications of a container's memory cgroup. v1: an eventfd registered on
// memory.oom_control through cgroup.event_control (the kernel also signals it when the cgroup is
// removed); v2: the oom_kill count of memory.events, compared on each check.

import { closeSync, constants, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { dlopen, FFIType } from "bun:ffi";
import { writeText } from "./fs.ts";
import { UNIFIED } from "./paths.ts";
import type { CgroupManager } from "./manager.ts";

export interface OomWatch {
  /** An fd to poll for readability (v1), or undefined when only polling by time works (v2). */
  readonly fd: number | undefined;
  /** How many OOM events happened since the last call (reads the eventfd or memory.events). */
  take(): number;
  close(): void;
}

let eventfd: ((initval: number, flags: number) => number) | undefined;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

export function watchOom(memoryDir: string, v2: boolean): OomWatch | undefined {
  if (v2) {
    const file = `${memoryDir}/memory.events`;
    const count = (): number => Number(/^oom_kill (\d+)$/m.exec(safeRead(file))?.[1] ?? 0);
    if (!existsSync(file)) return undefined;
    let last = count();
    return {
      fd: undefined,
      take: () => {
        const now = count();
        const n = Math.max(0, now - last);
        last = now;
        return n;
      },
      close: () => {},
    };
  }
  if (!existsSync(`${memoryDir}/memory.oom_control`)) return undefined;
  eventfd ??= dlopen("libc.so.6", { eventfd: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 } }).symbols.eventfd as (a: number, b: number) => number;
  const efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return undefined;
  const oomFd = openSync(`${memoryDir}/memory.oom_control`, constants.O_RDONLY);
  try {
    writeText(`${memoryDir}/cgroup.event_control`, `${efd} ${oomFd}`);
  } catch (err) {
    closeSync(efd);
    throw err;
  } finally {
    // The registration holds its own reference to the file.
    closeSync(oomFd);
  }
  const buf = Buffer.alloc(8);
  return {
    fd: efd,
    take: () => {
      try {
        if (readSync(efd, buf, 0, 8, null) !== 8) return 0;
      } catch {
        return 0; // EAGAIN: nothing yet
      }
      // The kernel signals the eventfd when the cgroup goes away too: that is no OOM.
      if (!existsSync(`${memoryDir}/cgroup.event_control`)) return 0;
      return Number(buf.readBigUInt64LE(0));
    },
    close: () => closeSync(efd),
  };
}

/** OOM notifications of a container's cgroup (containerCgroup(record)); undefined without a memory controller. */
export function watchCgroupOom(cg: Pick<CgroupManager, "mode" | "paths">): OomWatch | undefined {
  const paths = cg.paths();
  const dir = cg.mode === "v2" ? paths[UNIFIED] : paths.memory;
  return dir === undefined ? undefined : watchOom(dir, cg.mode === "v2");
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
