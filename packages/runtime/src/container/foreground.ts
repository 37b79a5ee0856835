// A process in the foreground (run, exec): tsrun waits for it, forwards the signals it gets,
// and relays the process's terminal, then returns its exit status.
import { readSync, writeSync } from "node:fs";
import { writeAll } from "../io.ts";
import * as linux from "../linux/index.ts";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const;
const SIGNO: Record<(typeof FORWARDED)[number], number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12, SIGWINCH: 28 };

/** Sends the signals tsrun gets on with `send` until the returned function is called. */
export function forwardSignals(send: (signal: number) => unknown): () => void {
  const handlers = FORWARDED.map((name) => {
    const h = () => send(SIGNO[name]);
    process.on(name, h);
    return () => process.off(name, h);
  });
  return () => handlers.forEach((off) => off());
}

/**
 * Waits for the init's exit without blocking the event loop for long (signal handlers must
 * run), relaying the terminal meanwhile when the container has one: the pty's output to our
 * stdout, our stdin (raw, when it is a terminal) to the pty.
 */
export async function waitExit(pid: number, pty: number | undefined): Promise<number> {
  // Only a terminal needs it: 64 KiB zeroed is 16 page faults for nothing otherwise.
  const buf = pty === undefined ? Buffer.alloc(0) : Buffer.allocUnsafe(64 * 1024);
  const rawTty = pty !== undefined && process.stdin.isTTY;
  if (rawTty) process.stdin.setRawMode(true);
  try {
    for (;;) {
      // Without a terminal, sleep on the process itself (pidfd) so that its exit is seen at
      // once; with one, on the terminal's output. Then let the event loop run signal handlers.
      const r = pty === undefined ? linux.waitpidTimeout(pid, 20) : linux.waitpid(pid, linux.WNOHANG);
      if (r !== null && (r.pid === pid || r.pid < 0)) {
        if (pty !== undefined) pump(pty, buf, 0);
        return r.pid < 0 ? 255 : r.exited ? r.code : 128 + r.signal;
      }
      if (pty !== undefined) pump(pty, buf, 10);
      await Bun.sleep(0);
    }
  } finally {
    if (rawTty) process.stdin.setRawMode(false);
  }
}

/** Moves what is ready between the pty and our stdio; waits up to `waitMs` for pty output. */
function pump(pty: number, buf: Buffer, waitMs: number): void {
  for (let wait = waitMs; linux.pollIn(pty, wait); wait = 0) {
    let n = 0;
    try {
      n = readSync(pty, buf, 0, buf.length, null);
    } catch {
      return; // EIO: the terminal's last holder closed it
    }
    if (n <= 0) return;
    writeAll(1, buf.subarray(0, n));
  }
  while (linux.pollIn(0, 0)) {
    let n = 0;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch {
      return;
    }
    if (n <= 0) return;
    writeSync(pty, buf, 0, n);
  }
}
