// The pure parts of the network (no root): -p parsing, the /etc files' contents, the config a
// plugin of a list gets on stdin, the default conflist and its first-use write, the spec change.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerAddresses, findPlugin, pluginStdin } from "../src/network/cni.ts";
import { defaultConflist, hostsFile, parseConflist, parsePublish, resolvConf } from "../src/network/config.ts";
import { conflistPath, loadConflist } from "../src/network/attach.ts";
import { cniContainerId } from "../src/network/paths.ts";
import { withNetwork } from "../src/image/spec.ts";

const work = mkdtempSync(join(tmpdir(), "tsrun-netconf-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("-p", () => {
  test("docker's forms: HOST:CTR, /udp, an IP to bind", () => {
    expect(parsePublish(["8080:80", "53:53/udp", "127.0.0.1:9000:9000/tcp"])).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 53, containerPort: 53, protocol: "udp" },
      { hostPort: 9000, containerPort: 9000, protocol: "tcp", hostIP: "127.0.0.1" },
    ]);
    // The same host port for tcp and udp is two mappings, not one twice.
    expect(parsePublish(["53:53/tcp", "53:53/udp"])).toHaveLength(2);
  });
  test("refusals name the value and the reason", () => {
    expect(() => parsePublish(["80"])).toThrow('-p "80": expected HOSTPORT:CONTAINERPORT');
    expect(() => parsePublish(["8080:80/sctp"])).toThrow("expected HOSTPORT:CONTAINERPORT");
    expect(() => parsePublish(["0:80"])).toThrow('-p "0:80": host port 0 is not in 1-65535');
    expect(() => parsePublish(["8080:70000"])).toThrow("container port 70000 is not in 1-65535");
    expect(() => parsePublish(["300.0.0.1:80:80"])).toThrow("300.0.0.1 is not an IPv4 address");
    expect(() => parsePublish(["8080:80", "8080:81"])).toThrow("host port 8080/tcp is published twice");
  });
});

describe("the container's /etc files", () => {
  test("hosts: the loopback names, then the container's address under its hostname", () => {
    const h = hostsFile("web", ["10.89.0.7"]);
    expect(h.startsWith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")).toBe(true);
    expect(h.endsWith("\n10.89.0.7\tweb\n")).toBe(true);
  });
  test("resolv.conf: loopback nameservers go in a namespace of its own, Docker's defaults when none is left", () => {
    const host = "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\nsearch example.org\noptions edns0\n";
    expect(resolvConf(host, true)).toBe("# generated\nnameserver 10.0.0.2\nsearch example.org\noptions edns0\n");
    expect(resolvConf("nameserver 127.0.0.53\nsearch lan\n", true)).toBe("search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    // On the host's network the host's resolver is reachable: the file is the host's.
    expect(resolvConf(host, false)).toBe(host);
  });
});

describe("CNI calls", () => {
  const list = defaultConflist({ dataDir: "/x/ipam", bridge: "br9", subnet: "10.9.0.0/24", name: "n9" });
  test("a plugin's stdin: the list's version and name, runtimeConfig only for declared capabilities, prevResult", () => {
    const prev = { cniVersion: "1.0.0", ips: [{ address: "10.9.0.2/24", interface: 2 }] };
    const ports = [{ hostPort: 8080, containerPort: 80, protocol: "tcp" as const }];
    const portmap = pluginStdin(list, list.plugins[1]!, prev, { portMappings: ports });
    expect(portmap).toEqual({ type: "portmap", snat: true, cniVersion: "1.0.0", name: "n9", runtimeConfig: { portMappings: ports }, prevResult: prev });
    // The bridge declares no capability: it gets no runtimeConfig, and as the first plugin no prevResult.
    const bridge = pluginStdin(list, list.plugins[0]!, undefined, { portMappings: ports });
    expect(bridge.runtimeConfig).toBeUndefined();
    expect(bridge.prevResult).toBeUndefined();
    expect(bridge).toMatchObject({ type: "bridge", bridge: "br9", name: "n9", ipam: { type: "host-local", dataDir: "/x/ipam", ranges: [[{ subnet: "10.9.0.0/24" }]] } });
  });
  test("the container's addresses are those on an interface in its namespace", () => {
    const r = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "br9" }, { name: "veth1" }, { name: "eth0", sandbox: "/ns" }],
      ips: [{ address: "10.9.0.5/24", gateway: "10.9.0.1", interface: 2 }],
    };
    expect(containerAddresses(r)).toEqual(["10.9.0.5"]);
  });
  test("a plugin missing from CNI_PATH is named with the fix", () => {
    expect(() => findPlugin("nosuch", work)).toThrow(`CNI plugin "nosuch" not found in ${work} (Debian: apt-get install containernetworking-plugins; or set $TSRUN_CNI_PATH)`);
  });
  test("the CNI container id is unique per state root and id, and made of hex digits", () => {
    expect(cniContainerId("/run/tsrun", "web")).toMatch(/^[0-9a-f]{64}$/);
    expect(cniContainerId("/run/tsrun", "web")).not.toBe(cniContainerId("/run/other", "web"));
  });
});

describe("the network's conflist", () => {
  test("written on first use with tsrun's bridge, its subnet and a dataDir of the store; kept after", () => {
    const root = join(work, "store");
    const l = loadConflist(root);
    expect(l.name).toBe("tsrun");
    expect(l.plugins.map((p) => p.type)).toEqual(["bridge", "portmap", "firewall"]);
    expect(l.plugins[0]).toMatchObject({ bridge: "tsrun0", isGateway: true, ipMasq: true, ipam: { dataDir: join(root, "networks", "ipam"), ranges: [[{ subnet: "10.89.0.0/16" }]] } });
    // The user's edit is what the next container gets.
    writeFileSync(conflistPath(root), readFileSync(conflistPath(root), "utf8").replace("tsrun0", "mybr0"));
    expect(loadConflist(root).plugins[0]!.bridge).toBe("mybr0");
  });
  test("a damaged conflist is refused with its file and the field", () => {
    expect(() => parseConflist("{", "/f")).toThrow("network config /f: not JSON");
    expect(() => parseConflist('{"cniVersion":"1.0.0","name":"n","plugins":[]}', "/f")).toThrow("network config /f: plugins is missing or empty");
    expect(() => parseConflist('{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}', "/f")).toThrow("/plugins/0/type is not a plugin name");
  });
});

describe("withNetwork", () => {
  const spec = {
    ociVersion: "1.3.0",
    mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    linux: { namespaces: [{ type: "pid" as const }, { type: "network" as const }] },
  };
  const files = { hosts: "/b/hosts", hostname: "/b/hostname", resolvConf: "/b/resolv.conf" };
  test("joins the namespace by path and bind-mounts the /etc files", () => {
    const s = withNetwork(spec, { netns: "/s/netns/x" }, files);
    expect(s.linux?.namespaces).toEqual([{ type: "pid" }, { type: "network", path: "/s/netns/x" }]);
    expect(s.mounts?.map((m) => m.destination)).toEqual(["/proc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]);
    expect(s.mounts?.[1]).toEqual({ destination: "/etc/hosts", type: "bind", source: "/b/hosts", options: ["rbind", "rprivate"] });
  });
  test("the host's network: no network namespace of its own", () => {
    expect(withNetwork(spec, "host", files).linux?.namespaces).toEqual([{ type: "pid" }]);
  });
});
