// The long-lived shim: a subreaper serving the Task API over ttrpc until Shutdown.
import { chmodSync, rmSync } from "node:fs";
import { TtrpcServer } from "../ttrpc/server.ts";
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from "../task/proto.ts";
import { Reaper } from "../task/reaper.ts";
import { TaskService } from "../task/service.ts";
import type { ShimFlags } from "./flags.ts";

/** How long a Shutdown waits for other calls' responses before the process exits anyway. */
const SETTLE_MS = 2000;

export function serve(f: ShimFlags): void {
  if (!f.socket) throw new Error("the shim daemon needs -socket (it is started by `containerd-shim-tsrun-v2 … start`)");
  const reaper = new Reaper();
  reaper.start();
  const server = new TtrpcServer();
  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    await Promise.race([server.settled(), Bun.sleep(SETTLE_MS)]);
    server.close();
    rmSync(f.socket, { force: true });
    reaper.stop();
    process.exit(code);
  };
  const service = new TaskService({ namespace: f.namespace || "default", reaper, onShutdown: () => void exit(0) });
  const methods = service.methods();
  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
  rmSync(f.socket, { force: true });
  server.listen(f.socket);
  chmodSync(f.socket, 0o600);
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void exit(0));
  if (f.debug) console.error(`containerd-shim-tsrun-v2: serving ${f.namespace}/${f.id} on ${f.socket} (pid ${process.pid})`);
}
