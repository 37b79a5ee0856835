// run: create + start, then (in the foreground) forward signals, relay the terminal, wait for
// the init and return its exit status, and delete the container unless --keep.
import * as linux from "../linux/index.ts";
import { createContainer, type CreateOptions } from "./create.ts";
import { forwardSignals, waitExit } from "./foreground.ts";
import { deleteContainer, startContainer } from "./lifecycle.ts";
import { reapMigrationWarmUp } from "./warmup.ts";
import type { Store } from "./store.ts";
import { trace } from "../trace.ts";

export interface RunOptions extends CreateOptions {
  detach?: boolean;
  keep?: boolean;
}

export async function runContainer(store: Store, opts: RunOptions): Promise<number> {
  const { rec, console: pty } = createContainer(store, { ...opts, keepConsole: !opts.detach });
  try {
    startContainer(store, opts.id, rec);
  } catch (e) {
    deleteContainer(store, opts.id, true);
    throw e;
  }
  trace("run: started");
  if (opts.detach) return 0;
  reapMigrationWarmUp(true);

  const stop = forwardSignals((sig) => linux.killVerified(rec.pid, rec.pidStartTime, sig));
  let code: number;
  try {
    code = await waitExit(rec.pid, pty);
  } finally {
    stop();
    if (pty !== undefined) linux.close(pty);
  }
  trace("run: exited");
  if (!opts.keep) deleteContainer(store, opts.id, true, rec);
  trace("run: deleted");
  return code;
}
