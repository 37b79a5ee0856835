// --systemd-cgroup: the systemd driver asks systemd (over D-Bus) to create a transient scope and
// lets it own the cgroup. tsrun has no such driver; the error says so, and on a host without
// systemd (like ours: PID 1 is not systemd, no D-Bus) says that no driver could work here.

import { existsSync } from "node:fs";
import { SystemdCgroupUnsupportedError } from "./errors.ts";

const FIX = "run without --systemd-cgroup to use the cgroupfs driver (and, under containerd, set SystemdCgroup = false)";

export function systemdUnsupported(): SystemdCgroupUnsupportedError {
  // sd_booted(3)'s test: systemd creates this directory early at boot, and only systemd does.
  if (!existsSync("/run/systemd/system")) {
    return new SystemdCgroupUnsupportedError("--systemd-cgroup", "/run/systemd/system", "ENOENT", `the systemd cgroup driver needs systemd as the init system, reached over D-Bus, and this host was not booted with systemd; ${FIX}`);
  }
  return new SystemdCgroupUnsupportedError("--systemd-cgroup", undefined, "ENOTSUP", `tsrun has no systemd cgroup driver; ${FIX}`);
}
