// The long-lived shim: a subreaper serving the Task API over ttrpc for every container of its
// group (see manager.ts), until a Shutdown comes and no task is left. With -protocol grpc it
// serves the Task API over gRPC too, on the control socket's path plus ".grpc" (what `start`
// gave containerd); the ttrpc control socket stays, for `start`'s group reservations.
import { chmodSync, closeSync, constants, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { TtrpcServer, type Method } from "../ttrpc/server.ts";
import { trimResident } from "./trim.ts";
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from "../task/proto.ts";
import { Reaper } from "../task/reaper.ts";
import { TaskService } from "../task/service.ts";
import { loadSavedOptions } from "../task/options.ts";
import { Publisher, transportFromEnvironment } from "../events/publisher.ts";
import { OomMonitor, stateRootFor } from "../events/oom.ts";
import { EventOrder } from "../events/order.ts";
import { GROUP_SERVICE, groupMax } from "./manager.ts";
import type { ShimFlags } from "./flags.ts";
import { GRPC_SOCKET_SUFFIX } from "./bootstrap.ts";
import type { TaskGrpcServer } from "../grpc/task-server.ts";

/** How long a Shutdown waits for other calls' responses before the process exits anyway. */
const SETTLE_MS = 2000;

/**
 * How long a daemon with nothing left to serve stays for its group's next container. Starting a
 * daemon (a Bun process, its modules, their first run) is most of what `ctr run` waits for on
 * this shim; a daemon kept a few seconds serves a burst of containers of one namespace or group
 * at the cost of an idle process for that time. A pod's group never gets another container once
 * its sandbox is gone, so a pod's daemon goes at once. TSRUN_SHIM_LINGER_MS (from containerd's
 * environment, 0 for never) overrides it.
 */
export const DEFAULT_LINGER_MS = 5000;
export const LINGER_ENV = "TSRUN_SHIM_LINGER_MS";

/**
 * How long the daemon waits after its last Task call before it gives back what it only needed
 * while busy (see trim.ts). TSRUN_SHIM_TRIM_MS (0: never) overrides it.
 */
export const DEFAULT_TRIM_MS = 1000;
export const TRIM_ENV = "TSRUN_SHIM_TRIM_MS";

export function trimMs(env: Record<string, string | undefined> = process.env): number {
  const raw = env[TRIM_ENV];
  if (raw === undefined || raw === "") return DEFAULT_TRIM_MS;
  const v = Number(raw);
  return Number.isInteger(v) && v >= 0 ? v : DEFAULT_TRIM_MS;
}

/** Wraps a method table so that every call (re)arms `onIdle` to run once `ms` after the last call ends. */
export function idleAfter(methods: Record<string, Method>, ms: number, onIdle: () => void): Record<string, Method> {
  if (ms <= 0) return methods;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let busy = 0;
  const arm = () => {
    clearTimeout(timer);
    if (busy === 0) timer = setTimeout(onIdle, ms);
  };
  const out: Record<string, Method> = {};
  for (const [name, fn] of Object.entries(methods)) {
    out[name] = async (payload, ctx) => {
      busy++;
      clearTimeout(timer);
      try {
        return await fn(payload, ctx);
      } finally {
        busy--;
        arm();
      }
    };
  }
  return out;
}

export function lingerMs(group: string, env: Record<string, string | undefined> = process.env): number {
  if (group.startsWith("pod:")) return 0;
  const raw = env[LINGER_ENV];
  if (raw === undefined || raw === "") return DEFAULT_LINGER_MS;
  const v = Number(raw);
  return Number.isInteger(v) && v >= 0 ? v : DEFAULT_LINGER_MS;
}

export async function serve(f: ShimFlags): Promise<void> {
  if (!f.socket) throw new Error("the shim daemon needs -socket (it is started by `containerd-shim-tsrun-v2 … start`)");
  if (f.protocol !== "" && f.protocol !== "ttrpc" && f.protocol !== "grpc") throw new Error(`-protocol ${JSON.stringify(f.protocol)}: use ttrpc or grpc`);
  const reaper = new Reaper();
  reaper.start();
  const server = new TtrpcServer();
  const namespace = f.namespace || "default";
  const label = `${namespace}/${f.group || f.id}`;
  let service: TaskService | undefined;
  const shimLog = new ShimLog(() => service?.bundles() ?? []);
  const log = (line: string) => shimLog.write(`containerd-shim-tsrun-v2 ${label} (pid ${process.pid}): ${line}`);
  // A shared daemon outlives any one container's trouble: what escapes a handler is logged, not fatal.
  process.on("uncaughtException", (err) => log(`uncaught: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
  process.on("unhandledRejection", (err) => log(`unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`));
  // Events: the service → OOM watching → ordering → the queue that sends them to containerd.
  const publisher = new Publisher({ namespace, transport: transportFromEnvironment(process.env, f.publishBinary, f.address), log });
  const oom = new OomMonitor(new EventOrder(publisher.publish).publish, { stateRoot: (bundle) => stateRootFor(loadSavedOptions(bundle).root, namespace), log });
  let grpcServer: TaskGrpcServer | undefined;
  let exiting = false;
  const exit = async (code: number) => {
    if (exiting) return;
    exiting = true;
    await Promise.race([Promise.all([server.settled(), grpcServer?.settled()]), Bun.sleep(SETTLE_MS)]);
    // The last events (TaskDelete) go out before the process does.
    await publisher.flush(SETTLE_MS);
    oom.close();
    publisher.close();
    server.close();
    await grpcServer?.close(SETTLE_MS);
    rmSync(f.socket, { force: true });
    reaper.stop();
    process.exit(code);
  };
  service = new TaskService({ namespace, reaper, onShutdown: () => void exit(0), publish: oom.publish, maxTasks: groupMax(), lingerMs: lingerMs(f.group || "namespace") });
  // The container `start` spawned this daemon for is its first member.
  if (f.id) service.reserve(f.id);
  const methods = idleAfter(service.methods(), trimMs(), () => {
    const bytes = trimResident();
    if (f.debug) log(`idle: paged out ${(bytes / 2 ** 20).toFixed(1)} MB of the executable's clean mappings`);
  });
  server.register(TASK_SERVICE_V2, methods);
  server.register(TASK_SERVICE_V3, methods);
  const group = service;
  server.register(GROUP_SERVICE, {
    Reserve: (payload) => {
      group.reserve(new TextDecoder().decode(payload));
      return new Uint8Array(0);
    },
  });
  if (f.protocol === "grpc") {
    // Bound before the control socket: `start` hands out the address once that one answers.
    const { serveTaskGrpc } = await import("../grpc/task-server.ts");
    grpcServer = await serveTaskGrpc(`${f.socket}${GRPC_SOCKET_SUFFIX}`, { [TASK_SERVICE_V3]: methods });
  }
  rmSync(f.socket, { force: true });
  server.listen(f.socket);
  chmodSync(f.socket, 0o600);
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void exit(0));
  if (f.debug) log(`serving on ${f.socket}`);
}

/**
 * The daemon's log. Its stderr is the `log` fifo of the bundle `start` spawned it from, which
 * containerd reads only while that container's shim connection lasts: once that container is
 * gone, writes fail (EPIPE), and the log moves to the fifo of a task still served (opened
 * non-blocking: a line nobody reads in time is dropped rather than stalling the daemon). With no
 * task left, lines are dropped.
 */
export class ShimLog {
  constructor(
    private readonly bundles: () => string[],
    private fd = 2,
  ) {}

  write(line: string): void {
    const data = `${line}\n`;
    for (let tries = 0; tries < 3; tries++) {
      try {
        writeSync(this.fd, data);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EAGAIN") return;
        if (!this.reopen()) return;
      }
    }
  }

  /** Points the log at a live task's fifo; false when none has a reader. */
  private reopen(): boolean {
    for (const bundle of this.bundles()) {
      let fd: number;
      try {
        fd = openSync(join(bundle, "log"), constants.O_WRONLY | constants.O_NONBLOCK);
      } catch {
        continue;
      }
      if (this.fd > 2) closeSync(this.fd);
      this.fd = fd;
      return true;
    }
    return false;
  }
}
