// The long-lived shim: a subreaper serving the Task API over ttrpc until Shutdown.
import { chmodSync, rmSync } from "node:fs";
import { TtrpcServer } from "../ttrpc/server.ts";
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from "../task/proto.ts";
import { Reaper } from "../task/reaper.ts";
import { loadSavedOptions, TaskService } from "../task/service.ts";
import { Publisher, transportFromEnvironment } from "../events/publisher.ts";
import { OomMonitor, stateRootFor } from "../events/oom.ts";
import { EventOrder } from "../events/order.ts";
import type { ShimFlags } from "./flags.ts";

/** How long a Shutdown waits for other calls' responses before the process exits anyway. */
const SETTLE_MS = 2000;

export function serve(f: ShimFlags): void {
  if (!f.socket) throw new Error("the shim daemon needs -socket (it is started by `containerd-shim-tsrun-v2 … start`)");
  const reaper = new Reaper();
  reaper.start();
  const server = new TtrpcServer();
  const namespace = f.namespace || "default";
  const log = (line: string) => console.error(`containerd-shim-tsrun-v2 ${namespace}/${f.id}: ${line}`);
  // Events: the service → OOM watching → ordering → the queue that sends them to containerd.
  const publisher = new Publisher({ namespace, transport: transportFromEnvironment(process.env, f.publishBinary, f.address), log });
  const oom = new OomMonitor(new EventOrder(publisher.publish).publish, { stateRoot: (bundle) => stateRootFor(loadSavedOptions(bundle).root, namespace), log });
  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    await Promise.race([server.settled(), Bun.sleep(SETTLE_MS)]);
    // The last events (TaskDelete) go out before the process does.
    await publisher.flush(SETTLE_MS);
    oom.close();
    publisher.close();
    server.close();
    rmSync(f.socket, { force: true });
    reaper.stop();
    process.exit(code);
  };
  const service = new TaskService({ namespace, reaper, onShutdown: () => void exit(0), publish: oom.publish });
  const methods = service.methods();
  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
  rmSync(f.socket, { force: true });
  server.listen(f.socket);
  chmodSync(f.socket, 0o600);
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void exit(0));
  if (f.debug) console.error(`containerd-shim-tsrun-v2: serving ${f.namespace}/${f.id} on ${f.socket} (pid ${process.pid})`);
}
