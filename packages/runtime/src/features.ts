// The runtime-spec features document (features.md, features-linux.md). Built from the same
// tables the validator uses; each field says what this build of tsrun really does, and grows as
// the runtime does.
import type { Features } from "@tsrun/ocispec/core";
import { CAPABILITIES, HOOK_NAMES, MOUNT_OPTIONS, NAMESPACE_TYPES, OCI_VERSION, OCI_VERSION_MIN } from "@tsrun/ocispec/core";
import { COMMIT, VERSION } from "./version.ts";
import { SECCOMP_FILTER_FLAG } from "./seccomp/index.ts";
import { MPOL_FLAG, MPOL_MODE } from "./plan/kernel.ts";

export function features(): Features {
  return {
    ociVersionMin: OCI_VERSION_MIN,
    ociVersionMax: OCI_VERSION,
    hooks: [...HOOK_NAMES],
    mountOptions: Object.keys(MOUNT_OPTIONS).sort(),
    linux: {
      namespaces: [...NAMESPACE_TYPES].sort(),
      capabilities: [...CAPABILITIES],
      // Containers are placed in cgroups and limited on v1 and v2 hosts (device rules on v1
      // only); systemd and rdma are not implemented: said so.
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
        operators: ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        archs: ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        knownFlags: Object.keys(SECCOMP_FILTER_FLAG),
        supportedFlags: Object.keys(SECCOMP_FILTER_FLAG),
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
      // No resctrl support: a config with linux.intelRdt is refused.
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: true } },
      // Moved with iproute2's ip at create (linux/netdevices.ts).
      netDevices: { enabled: true },
      // Every mode and flag of the spec is passed to set_mempolicy (plan/kernel.ts).
      memoryPolicy: { modes: Object.keys(MPOL_MODE).sort(), flags: Object.keys(MPOL_FLAG).sort() },
    },
    annotations: {
      "org.opencontainers.tsrun.version": VERSION,
      "org.opencontainers.tsrun.commit": COMMIT,
      "org.opencontainers.tsrun.bun": Bun.version,
    },
  };
}
