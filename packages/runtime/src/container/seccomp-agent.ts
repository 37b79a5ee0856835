// The seccomp user-notification listener of a container's process goes to the agent at
// linux.seccomp.listenerPath with the container process state (config-linux.md): one
// connection, one message, the fd in SCM_RIGHTS. The init's and every exec'd process's alike.
import type { Spec } from "@tsrun/ocispec/core";
import { OCI_VERSION } from "@tsrun/ocispec/core";
import * as linux from "../linux/index.ts";
import { ContainerError } from "./errors.ts";
import type { stateDocument } from "./status.ts";

/** `pid`: the process the listener belongs to (the init, or an exec'd process). */
export function sendSeccompListener(id: string, spec: Spec, fd: number, state: ReturnType<typeof stateDocument>, pid: number = state.pid ?? 0): void {
  const path = spec.linux?.seccomp?.listenerPath;
  // The compiler asks for a listener only when it has a path to send it to.
  if (!path) throw new ContainerError(`container ${id}: /linux/seccomp/listenerPath: the process made a seccomp listener but no agent socket is configured`, { id, pointer: "/linux/seccomp/listenerPath" });
  const processState = { ociVersion: OCI_VERSION, fds: ["seccompFd"], pid, metadata: spec.linux?.seccomp?.listenerMetadata ?? "", state };
  try {
    linux.sendFd(path, fd, JSON.stringify(processState));
  } catch (e) {
    if (!(e instanceof linux.SysError)) throw e;
    throw new ContainerError(
      `container ${id}: failed to connect with seccomp agent at ${path} (/linux/seccomp/listenerPath) to send it the listener: ${linux.errnoName(e.errno)}: ${linux.strerror(e.errno)}`,
      { id, pointer: "/linux/seccomp/listenerPath", path, errno: e.errno },
    );
  }
}
