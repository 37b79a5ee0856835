import { readFileSync } from "node:fs";
import { defineCommand } from "../def.ts";
import { ContainerError } from "../../container/errors.ts";
import { Store } from "../../container/store.ts";
import { resourcesFromFlags, resourcesFromJSON, updateContainer } from "../../container/update.ts";

const str = (description: string) => ({ type: "string" as const, description });

export default defineCommand({
  summary: "update container resource constraints",
  description:
    "Changes the cgroup limits of a created, running or paused container, all or nothing: a value the host or the kernel refuses changes nothing. -r reads a runtime-spec LinuxResources JSON from FILE (- for stdin; the flags are then ignored, as with runc; devices are not updated). Memory sizes take k, m, g units; -1 is unlimited; 0 leaves a value as it is.",
  examples: ["tsrun update --memory 256m --cpu-quota 50000 mycontainer", "echo '{\"pids\":{\"limit\":64}}' | tsrun update -r - mycontainer"],
  flags: {
    resources: { type: "string", char: "r", description: "path to the file containing the resources to update or '-' to read from the standard input" },
    "blkio-weight": str("Specifies per cgroup weight, range is from 10 to 1000"),
    "cpu-period": str("CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"),
    "cpu-quota": str("CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    "cpu-share": str("CPU shares (relative weight vs. other containers)"),
    "cpu-shares": { ...str("same as --cpu-share"), hidden: true },
    "cpu-rt-period": str("CPU realtime period to be used for hardcapping (in usecs). 0 to use system default"),
    "cpu-rt-runtime": str("CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period"),
    "cpuset-cpus": str("CPU(s) to use"),
    "cpuset-mems": str("Memory node(s) to use"),
    memory: str("Memory limit (in bytes)"),
    "memory-reservation": str("Memory reservation or soft_limit (in bytes)"),
    "memory-swap": str("Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
    "kernel-memory": { ...str("Kernel memory limit (ignored, as by runc 1.1)"), hidden: true },
    "kernel-memory-tcp": { ...str("Kernel memory limit for TCP buffers (ignored, as by runc 1.1)"), hidden: true },
    "pids-limit": str("Maximum number of pids allowed in the container"),
    "l3-cache-schema": str("The string of Intel RDT/CAT L3 cache schema (not supported)"),
    "mem-bw-schema": str("The string of Intel RDT/MBA memory bandwidth schema (not supported)"),
  },
  args: [{ name: "id", description: "the container id", required: true }],
  run(ctx, flags, args) {
    const warn = (m: string) => process.stderr.write(`tsrun: warning: ${m}\n`);
    let resources;
    if (flags.resources !== undefined) {
      const source = flags.resources === "-" ? "standard input" : flags.resources;
      let text: string;
      try {
        text = readFileSync(flags.resources === "-" ? 0 : flags.resources, "utf8");
      } catch (e) {
        throw new ContainerError(`cannot read ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      resources = resourcesFromJSON(text, source);
    } else {
      if (flags["cpu-share"] !== undefined && flags["cpu-shares"] !== undefined) throw new ContainerError("give --cpu-share once (--cpu-shares is the same flag)");
      resources = resourcesFromFlags(
        {
          blkioWeight: flags["blkio-weight"],
          cpuPeriod: flags["cpu-period"],
          cpuQuota: flags["cpu-quota"],
          cpuShare: flags["cpu-share"] ?? flags["cpu-shares"],
          cpuRtPeriod: flags["cpu-rt-period"],
          cpuRtRuntime: flags["cpu-rt-runtime"],
          cpusetCpus: flags["cpuset-cpus"],
          cpusetMems: flags["cpuset-mems"],
          memory: flags.memory,
          memoryReservation: flags["memory-reservation"],
          memorySwap: flags["memory-swap"],
          kernelMemory: flags["kernel-memory"],
          kernelMemoryTcp: flags["kernel-memory-tcp"],
          pidsLimit: flags["pids-limit"],
          l3CacheSchema: flags["l3-cache-schema"],
          memBwSchema: flags["mem-bw-schema"],
        },
        warn,
      );
    }
    updateContainer(new Store(ctx.globals.root), args[0]!, resources, warn);
    return 0;
  },
});
