// Stats for containerd: the runtime's `events --stats` line (runc's stats JSON, libcontainer's
// types.Stats) turned into containerd's io.containerd.cgroups.v1.Metrics, the message
// containerd's runc shim returns on a cgroup v1 host. Pure: the caller runs the runtime.
export const CGROUPS_V1_METRICS_TYPE = "io.containerd.cgroups.v1.Metrics";

type Json = Record<string, any>;

/** Metrics as the protobufjs codec takes it (camelCase fields of metrics.proto). */
export function metricsFromRuncStats(data: Json): Json {
  const out: Json = {};
  if (data.pids) out.pids = { current: num(data.pids.current), limit: num(data.pids.limit) };
  const cpu = data.cpu;
  if (cpu) {
    out.cpu = {
      usage: { total: num(cpu.usage?.total), kernel: num(cpu.usage?.kernel), user: num(cpu.usage?.user), perCpu: (cpu.usage?.percpu ?? []).map(num) },
      throttling: { periods: num(cpu.throttling?.periods), throttledPeriods: num(cpu.throttling?.throttledPeriods), throttledTime: num(cpu.throttling?.throttledTime) },
    };
  }
  const mem = data.memory;
  if (mem) {
    const raw: Json = mem.raw ?? {};
    const m: Json = {
      usage: entry(mem.usage),
      swap: entry(mem.swap),
      kernel: entry(mem.kernel),
      kernelTcp: entry(mem.kernelTCP),
      hierarchicalMemoryLimit: num(raw.hierarchical_memory_limit),
      hierarchicalSwapLimit: num(raw.hierarchical_memsw_limit),
    };
    // memory.stat's keys, with and without total_, as cgroups' v1 memory controller reads them.
    const keys: Record<string, string> = {
      cache: "cache", rss: "rss", rss_huge: "rssHuge", mapped_file: "mappedFile", dirty: "dirty", writeback: "writeback",
      pgpgin: "pgPgIn", pgpgout: "pgPgOut", pgfault: "pgFault", pgmajfault: "pgMajFault", inactive_anon: "inactiveAnon",
      active_anon: "activeAnon", inactive_file: "inactiveFile", active_file: "activeFile", unevictable: "unevictable",
    };
    for (const [key, field] of Object.entries(keys)) {
      m[field] = num(raw[key]);
      m[`total${field[0]!.toUpperCase()}${field.slice(1)}`] = num(raw[`total_${key}`]);
    }
    out.memory = m;
  }
  const blkio = data.blkio;
  if (blkio) {
    const lists: Record<string, string> = {
      ioServiceBytesRecursive: "ioServiceBytesRecursive", ioServicedRecursive: "ioServicedRecursive", ioQueueRecursive: "ioQueuedRecursive",
      ioServiceTimeRecursive: "ioServiceTimeRecursive", ioWaitTimeRecursive: "ioWaitTimeRecursive", ioMergedRecursive: "ioMergedRecursive",
      ioTimeRecursive: "ioTimeRecursive", sectorsRecursive: "sectorsRecursive",
    };
    const b: Json = {};
    for (const [key, field] of Object.entries(lists)) {
      b[field] = ((blkio[key] ?? []) as Json[]).map((e) => ({ op: String(e.op ?? ""), device: "", major: num(e.major), minor: num(e.minor), value: num(e.value) }));
    }
    out.blkio = b;
  }
  if (data.hugetlb) {
    out.hugetlb = Object.entries(data.hugetlb as Record<string, Json>).map(([pagesize, h]) => ({ pagesize, usage: num(h.usage), max: num(h.max), failcnt: num(h.failcnt) }));
  }
  if (Array.isArray(data.network_interfaces)) {
    out.network = (data.network_interfaces as Json[]).map((n) => ({
      name: String(n.name ?? ""),
      rxBytes: num(n.rx_bytes), rxPackets: num(n.rx_packets), rxErrors: num(n.rx_errors), rxDropped: num(n.rx_dropped),
      txBytes: num(n.tx_bytes), txPackets: num(n.tx_packets), txErrors: num(n.tx_errors), txDropped: num(n.tx_dropped),
    }));
  }
  return out;
}

function entry(e: Json | undefined): Json {
  return { limit: num(e?.limit), usage: num(e?.usage), max: num(e?.max), failcnt: num(e?.failcnt) };
}

/** A uint64 from JSON: absent or negative counts as 0 (runc omits zero values). */
function num(v: unknown): number {
  return typeof v === "number" && v > 0 ? v : 0;
}
