// Facts about processes from /proc, safe against pid reuse by comparing start times.
import { readFileSync } from "node:fs";

export interface ProcStat {
  state: string;
  ppid: number;
  startTime: number;
}

export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: parse from the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0]!, ppid: Number(rest[1]), startTime: Number(rest[19]) };
}

/** True while `pid` is the process that had `startTime` and has not exited (zombies have). */
export function isAlive(pid: number, startTime: number): boolean {
  if (pid <= 0) return false;
  const st = procStat(pid);
  return st !== undefined && st.startTime === startTime && st.state !== "Z" && st.state !== "X";
}
