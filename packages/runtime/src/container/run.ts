// run: create + start, then (in the foreground) forward signals, relay the terminal, wait for
// the init and return its exit status, and delete the container unless --keep.
import { createReadStream, createWriteStream } from "node:fs";
import * as linux from "../linux/index.ts";
import { createContainer, type CreateOptions } from "./create.ts";
import { deleteContainer, startContainer } from "./lifecycle.ts";
import type { Store } from "./store.ts";
import { trace } from "../trace.ts";

export interface RunOptions extends CreateOptions {
  detach?: boolean;
  keep?: boolean;
}

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const;
const SIGNO: Record<(typeof FORWARDED)[number], number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12, SIGWINCH: 28 };

export async function runContainer(store: Store, opts: RunOptions): Promise<number> {
  const { rec, console: pty } = createContainer(store, { ...opts, keepConsole: !opts.detach });
  try {
    startContainer(store, opts.id);
  } catch (e) {
    deleteContainer(store, opts.id, true);
    throw e;
  }
  trace("run: started");
  if (opts.detach) return 0;

  const handlers = FORWARDED.map((name) => {
    const h = () => linux.killVerified(rec.pid, rec.pidStartTime, SIGNO[name]);
    process.on(name, h);
    return () => process.off(name, h);
  });
  const relay = pty === undefined ? undefined : relayTerminal(pty);
  let code: number;
  try {
    code = await waitExit(rec.pid);
  } finally {
    handlers.forEach((off) => off());
    relay?.stop();
  }
  trace("run: exited");
  if (!opts.keep) deleteContainer(store, opts.id, true);
  trace("run: deleted");
  return code;
}

/** Polls for the init's exit without blocking the event loop (signal handlers must run). */
async function waitExit(pid: number): Promise<number> {
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    const r = linux.waitpid(pid, linux.WNOHANG);
    if (r.pid === pid) return r.exited ? r.code : 128 + r.signal;
    if (r.pid < 0) return 255;
    await Bun.sleep(delay);
  }
}

function relayTerminal(master: number): { stop(): void } {
  const stdinIsTty = process.stdin.isTTY;
  if (stdinIsTty) process.stdin.setRawMode(true);
  const out = createReadStream("", { fd: master, autoClose: false });
  const inp = createWriteStream("", { fd: master, autoClose: false });
  out.on("error", () => {});
  inp.on("error", () => {});
  out.pipe(process.stdout);
  process.stdin.pipe(inp);
  return {
    stop() {
      process.stdin.unpipe(inp);
      process.stdin.pause();
      if (stdinIsTty) process.stdin.setRawMode(false);
      out.destroy();
      linux.close(master);
    },
  };
}
