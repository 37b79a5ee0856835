// The network's configuration and the files a container gets from it: the default conflist,
// `-p` port mappings, and the contents of /etc/hosts, /etc/hostname and /etc/resolv.conf.
// Pure: nothing here touches the host but what the caller passes in.

/** A network config list as the CNI spec has it (SPEC.md, "Configuration format"). */
export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: PluginConfig[];
}

/** One plugin's entry of a list: `type` names the binary, the rest is the plugin's own. */
export interface PluginConfig {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A port mapping, in the form of the portmap plugin's `portMappings` runtime config. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIP?: string;
}

export const CNI_VERSION = "1.0.0";

/** The default network's bridge and subnet: not podman's 10.88.0.0/16 nor docker's 172.17.0.0/16. */
export const DEFAULT_BRIDGE = "tsrun0";
export const DEFAULT_SUBNET = "10.89.0.0/16";
export const DEFAULT_NETWORK_NAME = "tsrun";

/**
 * The conflist tsrun writes on first use: a bridge with host-local addresses (whose leases live
 * in `dataDir`, tsrun's own, not the plugins' /var/lib/cni shared with every other CNI user),
 * masquerading out of the subnet, published ports (portmap), and the firewall plugin so that
 * a FORWARD policy of DROP (as dockerd leaves it) does not cut the containers off.
 */
export function defaultConflist(opts: { dataDir: string; bridge?: string; subnet?: string; name?: string }): NetworkConfigList {
  const subnet = opts.subnet ?? DEFAULT_SUBNET;
  return {
    cniVersion: CNI_VERSION,
    name: opts.name ?? DEFAULT_NETWORK_NAME,
    plugins: [
      {
        type: "bridge",
        bridge: opts.bridge ?? DEFAULT_BRIDGE,
        isGateway: true,
        ipMasq: true,
        // A container reaches its own published port through the host's address.
        hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: opts.dataDir },
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
      { type: "firewall", backend: "iptables" },
    ],
  };
}

/** The loopback network every namespace of tsrun gets (containerd's CRI calls it apart the same way). */
export function loopbackConfig(): NetworkConfigList {
  return { cniVersion: CNI_VERSION, name: "tsrun-loopback", plugins: [{ type: "loopback" }] };
}

/** Checks what tsrun relies on in a conflist read from disk; the plugins check their own fields. */
export function parseConflist(text: string, file: string): NetworkConfigList {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`network config ${file}: not JSON (${(e as Error).message})`);
  }
  const o = v as Partial<NetworkConfigList>;
  const bad = (what: string): never => {
    throw new Error(`network config ${file}: ${what}`);
  };
  if (typeof o !== "object" || o === null || Array.isArray(o)) bad("not a JSON object");
  if (typeof o.cniVersion !== "string") bad("cniVersion is missing");
  if (typeof o.name !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(o.name)) bad(`name ${JSON.stringify(o.name)} is not a network name (letters, digits, _ . -)`);
  if (!Array.isArray(o.plugins) || o.plugins.length === 0) bad("plugins is missing or empty");
  o.plugins!.forEach((p, i) => {
    if (typeof p !== "object" || p === null || typeof p.type !== "string" || !/^[a-zA-Z0-9_.-]+$/.test(p.type)) bad(`/plugins/${i}/type is not a plugin name`);
  });
  return o as NetworkConfigList;
}

/**
 * `-p` values, docker's forms: [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]. Ranges are not taken:
 * portmap takes single ports, and one range is many mappings the user can write out.
 */
export function parsePublish(values: readonly string[]): PortMapping[] {
  const out: PortMapping[] = [];
  for (const v of values) {
    const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(v);
    if (!m) throw new Error(`-p ${JSON.stringify(v)}: expected HOSTPORT:CONTAINERPORT[/tcp|udp] or IP:HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. -p 8080:80`);
    const port = (s: string, what: string): number => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`-p ${JSON.stringify(v)}: ${what} port ${s} is not in 1-65535`);
      return n;
    };
    const mapping: PortMapping = { hostPort: port(m[2]!, "host"), containerPort: port(m[3]!, "container"), protocol: (m[4] ?? "tcp") as "tcp" | "udp" };
    if (m[1] !== undefined) {
      if (m[1].split(".").some((b) => Number(b) > 255)) throw new Error(`-p ${JSON.stringify(v)}: ${m[1]} is not an IPv4 address`);
      mapping.hostIP = m[1];
    }
    const dup = out.find((o) => o.hostPort === mapping.hostPort && o.protocol === mapping.protocol && (o.hostIP ?? "") === (mapping.hostIP ?? ""));
    if (dup) throw new Error(`-p ${JSON.stringify(v)}: host port ${mapping.hostPort}/${mapping.protocol} is published twice`);
    out.push(mapping);
  }
  return out;
}

/** Docker's /etc/hosts of a container: the loopback names, then its own address under its hostname. */
export function hostsFile(hostname: string, addresses: readonly string[]): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
  ];
  for (const a of addresses) lines.push(`${a}\t${hostname}`);
  return `${lines.join("\n")}\n`;
}

const LOOPBACK_NAMESERVER = /^\s*nameserver\s+(127\.\d+\.\d+\.\d+|::1|0\.0\.0\.0)\s*$/;

/** Docker's fallback when the host's resolv.conf has no nameserver a container can reach. */
export const DEFAULT_NAMESERVERS = ["8.8.8.8", "8.8.4.4"];

/**
 * The host's resolv.conf for a container in its own network namespace: a loopback nameserver
 * (systemd-resolved's 127.0.0.53, a local dnsmasq) is the container's own loopback there, where
 * nothing answers, so those lines go; when no nameserver is left, Docker's defaults are added.
 * A container on the host's network keeps the file as it is.
 */
export function resolvConf(host: string, ownNamespace: boolean): string {
  if (!ownNamespace) return host.endsWith("\n") || host === "" ? host : `${host}\n`;
  const lines = host.split("\n").filter((l) => !LOOPBACK_NAMESERVER.test(l));
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  if (!lines.some((l) => /^\s*nameserver\s/.test(l))) lines.push(...DEFAULT_NAMESERVERS.map((n) => `nameserver ${n}`));
  return `${lines.join("\n")}\n`;
}
