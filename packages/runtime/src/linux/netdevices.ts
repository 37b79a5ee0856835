// linux.netDevices: host network devices moved into the container's new network namespace, as
// runc 1.3 does it: down on the host, moved and renamed in one RTM_NEWLINK (so a new name never
// collides on the host), the permanent global addresses put back (the kernel drops addresses on a
// move), then up. Done with iproute2's `ip` from tsrun, once the init exists in its namespace and
// before it goes on (tsrun handles the init's pid message before its next sync).
//
// Nothing is moved back at delete: the spec forbids it ("MUST NOT attempt to move the interface
// out of the namespace before deletion"); when the namespace dies the kernel returns physical
// devices to the initial namespace and destroys virtual ones (veth, macvlan …), as with runc.
import type { LinuxNetDevice } from "@tsrun/ocispec/core";
import { ContainerError } from "../container/errors.ts";

interface IpAddr {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
  dynamic?: boolean;
  broadcast?: string;
}

function ip(args: string[], pointer: string, what: string, netnsOf?: number): string {
  const argv = netnsOf === undefined ? ["ip", ...args] : ["nsenter", `--net=/proc/${netnsOf}/ns/net`, "--", "ip", ...args];
  let r: { success: boolean; exitCode: number | null; stdout: Buffer; stderr: Buffer };
  try {
    r = Bun.spawnSync(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch {
    throw new ContainerError(`${pointer}: ${what}: cannot run ${argv[0]} (linux.netDevices needs iproute2's ip and util-linux's nsenter)`);
  }
  if (!r.success) throw new ContainerError(`${pointer}: ${what}: ${argv.join(" ")}: ${r.stderr.toString().trim() || `exit status ${r.exitCode}`}`);
  return r.stdout.toString();
}

/** Every host device must exist before the first one moves: a later failure would lose a virtual one with the namespace. */
export function checkNetDevices(devices: Record<string, LinuxNetDevice>): void {
  for (const name of Object.keys(devices)) ip(["-j", "link", "show", "dev", name], `/linux/netDevices/${name}`, `no network device ${name} on the host`);
}

/** Moves each device into the network namespace of `pid` (the container's init). */
export function moveNetDevices(devices: Record<string, LinuxNetDevice>, pid: number): void {
  checkNetDevices(devices);
  // A name already taken inside (lo) fails the kernel's rename after the move, and a virtual
  // device would die with the namespace: refused before anything moves.
  const taken = new Set((JSON.parse(ip(["-j", "link", "show"], "/linux/netDevices", "list the container's devices", pid)) as { ifname: string }[]).map((l) => l.ifname));
  for (const [name, dev] of Object.entries(devices))
    if (taken.has(dev.name || name) && !(dev.name || name).includes("%d"))
      throw new ContainerError(`/linux/netDevices/${name}${dev.name ? "/name" : ""}: ${dev.name || name} already exists in the container's network namespace`);
  for (const [name, dev] of Object.entries(devices)) {
    const pointer = `/linux/netDevices/${name}`;
    const target = dev.name || name;
    const link = (JSON.parse(ip(["-j", "link", "show", "dev", name], pointer, "read the device")) as { ifindex: number }[])[0]!;
    const addrs = (JSON.parse(ip(["-j", "addr", "show", "dev", name], pointer, "read its addresses")) as { addr_info?: IpAddr[] }[])[0]?.addr_info ?? [];
    // Only what the user configured for outside use travels (RFC 3549 2.3.3.2, as the spec
    // says): permanent (not dynamic) addresses of global scope.
    const keep = addrs.filter((a) => a.scope === "global" && !a.dynamic);
    ip(["link", "set", "dev", name, "down"], pointer, "set it down");
    ip(["link", "set", "dev", name, "netns", String(pid), "name", target], pointer, `move it into the container's network namespace as ${target}`);
    // A "%d" name is the kernel's pick: the device is found again by its index, which a move
    // keeps (the new namespace has only lo).
    const inside = (JSON.parse(ip(["-j", "link", "show"], pointer, "list the container's devices", pid)) as { ifindex: number; ifname: string }[]).find((l) => l.ifindex === link.ifindex);
    if (!inside) throw new ContainerError(`${pointer}: the device moved but is not found in the container's network namespace`);
    for (const a of keep)
      ip(["addr", "add", `${a.local}/${a.prefixlen}`, ...(a.broadcast ? ["broadcast", a.broadcast] : []), "dev", inside.ifname], pointer, `put back address ${a.local}/${a.prefixlen}`, pid);
    ip(["link", "set", "dev", inside.ifname, "up"], pointer, `set ${inside.ifname} up`, pid);
  }
}
