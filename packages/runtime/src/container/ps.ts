// `ps`: the container's processes are those of its cgroup (every sub-cgroup included), as runc
// lists them; the table is the host's ps(1) output cut down to those pids.
import { ContainerError } from "./errors.ts";
import { containerCgroup, status } from "./lifecycle.ts";
import type { Store } from "./store.ts";

export function containerPids(store: Store, id: string): number[] {
  const rec = store.read(id);
  // A container made rootless without cgroup access has no cgroup to list: runc fails here too
  // ("unable to get all container pids"), rather than answer that nothing runs.
  if (rec.cgroup === undefined) throw new ContainerError(`unable to get all container pids: container ${id} has no cgroup (it was created without access to one)`, { id });
  const cg = containerCgroup(rec);
  // A stopped container whose cgroup is gone has no processes; that is not an error (runc).
  if (status(store, rec) === "stopped" && !cg.exists()) return [];
  return cg.pids();
}

/**
 * The header of ps(1)'s output and the lines whose PID column is one of `pids`, in ps's order.
 * The PID column is found by name in the header, so any `-o` list that has it works.
 */
export function filterPsOutput(output: string, pids: readonly number[]): string {
  const lines = output.split("\n");
  const header = lines[0] ?? "";
  const at = header.trim().split(/\s+/).indexOf("PID");
  if (at < 0) throw new ContainerError("couldn't find PID field in ps output");
  const want = new Set(pids);
  const out = [header];
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const field = line.trim().split(/\s+/)[at];
    const pid = Number(field);
    if (!Number.isInteger(pid) || field === undefined || field === "") throw new ContainerError(`unable to parse pid: ${JSON.stringify(field)} in ps output line ${JSON.stringify(line)}`);
    if (want.has(pid)) out.push(line);
  }
  return out.map((l) => `${l}\n`).join("");
}
