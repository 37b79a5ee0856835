// The network of `tsrun run --image`, end to end as root with Debian's CNI plugins: containers on
// a bridge reach each other and the host by IP, a published port reaches busybox httpd in a
// container from the host, the container has its own /etc/hosts, /etc/hostname and resolv.conf,
// --net none has only lo and --net host the host's interfaces; and nothing of a container's
// network (veth, iptables rule or chain naming it, IP lease, namespace mount, record) is left
// after delete, nor after a kill -9 of tsrun at any of its moments then `delete --force`.
//
// The test's network is its own: a conflist written in its own image store before the first run
// (the file tsrun would otherwise write with tsrun0 and 10.89.0.0/16), with a bridge named after
// this process and a subnet of its own, so a user's tsrun network is never touched. The bridge
// and the chains the plugins make for the network as a whole stay after the containers go (as
// docker0 does); the test removes them at its end.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repo, TSRUN } from "@tsrun/runtime/test/helpers.ts";
import { defaultConflist } from "../src/network/config.ts";
import { cniContainerId } from "../src/network/paths.ts";

// Removed by this file's afterAll after its containers are deleted (their mounts are under it).
const work = mkdtempSync(join(tmpdir(), "tsrun-network-"));
const imageRoot = join(work, "images");
const stateRoot = join(work, "state");
const netDir = join(imageRoot, "networks");
const BRIDGE = `tsrt${process.pid % 100000}`;
const NET = `10.231.${process.pid % 250}`;
const SUBNET = `${NET}.0/24`;
const GATEWAY = `${NET}.1`;
const NETWORK = `tsrun-test-${process.pid}`;
const IMAGE = "localhost/busybox:net";
// Ids unique on the host: an image container's cgroup is /tsrun/<id> whatever its state root.
const A = `neta${process.pid}`;
const B = `netb${process.pid}`;
let seq = 0;

/** The environment of tsrun here: the test's image store, and the default network (the suite's preload sets none). */
function env(): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "TSRUN_NET") e[k] = v;
  return { ...e, TSRUN_IMAGE_ROOT: imageRoot };
}

/** tsrun with the test's stores; output to files (a detached container keeps a pipe open). */
function t(args: string[]): { code: number; stdout: string; stderr: string } {
  const base = join(tmpdir(), `tsrun-net-out-${process.pid}-${seq++}`);
  const out = openSync(`${base}.out`, "w+");
  const err = openSync(`${base}.err`, "w+");
  try {
    const r = Bun.spawnSync([TSRUN, "--root", stateRoot, ...args], { stdin: "ignore", stdout: out, stderr: err, env: env() });
    return { code: r.exitCode ?? -1, stdout: readFileSync(`${base}.out`, "utf8"), stderr: readFileSync(`${base}.err`, "utf8") };
  } finally {
    closeSync(out);
    closeSync(err);
    rmSync(`${base}.out`, { force: true });
    rmSync(`${base}.err`, { force: true });
  }
}

function sh(cmd: string): string {
  const r = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  return r.stdout.toString();
}

/** Every rule and chain, both families, without counters: what a container's network could leave. */
function iptables(): string[] {
  return [...sh("iptables-save").split("\n"), ...sh("ip6tables-save").split("\n")]
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.replace(/\[\d+:\d+\]/, ""));
}

/** `table chain` of every chain that exists now, per family. */
function chains(save: string): Set<string> {
  const out = new Set<string>();
  let table = "";
  for (const l of save.split("\n")) {
    if (l.startsWith("*")) table = l.slice(1);
    else if (l.startsWith(":")) out.add(`${table} ${l.slice(1).split(" ")[0]}`);
  }
  return out;
}

const before = { v4: new Set<string>(), v6: new Set<string>() };

/** What a container's attachment leaves when its removal is not complete: anything naming its CNI id or its address. */
function leftoversOf(id: string, ip?: string): string[] {
  const cid = cniContainerId(stateRoot, id);
  const out: string[] = [];
  for (const l of iptables()) if (l.includes(cid) || (ip && new RegExp(`${ip.replaceAll(".", "\\.")}[/:]`).test(l))) out.push(`iptables: ${l}`);
  const leases = join(netDir, "ipam", NETWORK);
  if (existsSync(leases)) for (const f of readdirSync(leases)) if (f === ip || readFileSync(join(leases, f), "utf8").includes(cid)) out.push(`lease: ${f}`);
  for (const f of [join(netDir, "netns", cid), join(netDir, "attachments", `${cid}.json`), join(imageRoot, "bundles", id)]) if (existsSync(f)) out.push(`file: ${f}`);
  for (const l of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (l.includes(cid) || l.split(" ")[4]?.startsWith(join(imageRoot, "bundles", id))) out.push(`mount: ${l.split(" ")[4]}`);
  for (const p of readdirSync("/proc").filter((p) => /^\d+$/.test(p)))
    try {
      if (readFileSync(`/proc/${p}/environ`, "latin1").includes(`CNI_CONTAINERID=${cid}`)) out.push(`process: ${p}`);
    } catch {
      // gone
    }
  return out;
}

/** With no container on the network: no veth on the bridge, no rule naming an address of the subnet, no lease. */
function networkIdle(): string[] {
  const out: string[] = [];
  for (const l of iptables()) if (l.includes(`${NET}.`)) out.push(`iptables: ${l}`);
  if (existsSync(`/sys/class/net/${BRIDGE}/brif`)) for (const p of readdirSync(`/sys/class/net/${BRIDGE}/brif`)) out.push(`bridge port: ${p}`);
  const leases = join(netDir, "ipam", NETWORK);
  if (existsSync(leases)) for (const f of readdirSync(leases)) if (f !== "lock" && !f.startsWith("last_reserved_ip")) out.push(`lease: ${f}`);
  for (const d of ["netns", "attachments"]) if (existsSync(join(netDir, d))) for (const f of readdirSync(join(netDir, d))) out.push(`${d}: ${f}`);
  return out;
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("these tests make network namespaces, bridges and iptables rules, and need root");
  if (!existsSync("/usr/lib/cni/bridge")) throw new Error("Debian's containernetworking-plugins is missing (scripts/setup.sh installs it)");
  before.v4 = chains(sh("iptables-save"));
  before.v6 = chains(sh("ip6tables-save"));
  const tar = join(work, "busybox.tar");
  const r = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), tar, IMAGE], { stderr: "pipe" });
  if (!r.success) throw new Error(`make-image.sh failed: ${r.stderr}`);
  const imp = t(["image", "import", "--image-root", imageRoot, tar]);
  if (imp.code !== 0) throw new Error(`import failed: ${imp.stderr}`);
  mkdirSync(netDir, { recursive: true });
  writeFileSync(join(netDir, "tsrun.conflist"), JSON.stringify(defaultConflist({ dataDir: join(netDir, "ipam"), bridge: BRIDGE, subnet: SUBNET, name: NETWORK })));
});

/** Removes the network itself: its bridge and the chains the plugins made that were not there before (with the jumps to them). */
function removeNetwork(): void {
  Bun.spawnSync(["ip", "link", "del", BRIDGE], { stderr: "ignore" });
  for (const [cmd, was] of [
    ["iptables", before.v4],
    ["ip6tables", before.v6],
  ] as const) {
    const save = sh(`${cmd}-save`);
    const made = [...chains(save)].filter((c) => !was.has(c));
    let table = "";
    for (const l of save.split("\n")) {
      if (l.startsWith("*")) table = l.slice(1);
      const m = /^-A (\S+) (.*-j (\S+).*)$/.exec(l);
      if (m && made.includes(`${table} ${m[3]}`) && !made.includes(`${table} ${m[1]}`)) Bun.spawnSync(["sh", "-c", `${cmd} -t ${table} -D ${m[1]} ${m[2]}`]);
    }
    for (const c of made) Bun.spawnSync([cmd, "-t", c.split(" ")[0]!, "-F", c.split(" ")[1]!]);
    for (const c of made) Bun.spawnSync([cmd, "-t", c.split(" ")[0]!, "-X", c.split(" ")[1]!]);
  }
}

afterAll(() => {
  if (existsSync(join(imageRoot, "bundles"))) for (const id of readdirSync(join(imageRoot, "bundles"))) t(["delete", "--force", id]);
  removeNetwork();
  rmSync(work, { recursive: true, force: true });
});

/** The container's address, from the /etc/hosts tsrun wrote for it. */
function addressOf(id: string): string {
  const hosts = readFileSync(join(imageRoot, "bundles", id, "hosts"), "utf8");
  const m = new RegExp(`^(${NET.replaceAll(".", "\\.")}\\.\\d+)\\t${id}$`, "m").exec(hosts);
  if (!m) throw new Error(`no address of ${id} in its hosts file:\n${hosts}`);
  return m[1]!;
}

/** A free TCP port on the host (bound and released; nothing else of the test takes ports). */
function freePort(): number {
  const s = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** The host's first global IPv4 address outside the test's subnet. */
function hostAddress(): string {
  const m = sh("ip -4 -o addr show scope global")
    .split("\n")
    .map((l) => /inet (\d+\.\d+\.\d+\.\d+)\//.exec(l)?.[1])
    .find((a) => a !== undefined && !a.startsWith(`${NET}.`));
  if (!m) throw new Error("the host has no global IPv4 address");
  return m;
}

describe("run --image on the bridge network", () => {
  test("two containers reach each other and the host by IP; a published port reaches httpd; the /etc files are the container's", async () => {
    const port = freePort();
    const a = t(["run", "--image", IMAGE, "-d", "-p", `${port}:80`, A, "--", "sh", "-c", "mkdir /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"]);
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    const ip = addressOf(A);
    expect(readFileSync(`/sys/class/net/${BRIDGE}/operstate`, "utf8")).toBeDefined();
    expect(sh(`ip -4 -o addr show dev ${BRIDGE}`)).toContain(`inet ${GATEWAY}/24`);

    const b = t(["run", "--image", IMAGE, "--rm", B, "--", "sh", "-c", `ping -c1 -W5 ${ip} >/dev/null && echo ping-a-ok; ping -c1 -W5 ${GATEWAY} >/dev/null && echo ping-host-ok; wget -q -O- http://${ip}/; cat /etc/hostname; hostname; grep -v '^#' /etc/hosts | tail -1; cat /etc/resolv.conf; ip -o -4 addr show eth0 | grep -o 'inet [0-9.]*'`]);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    const lines = b.stdout.split("\n");
    expect(lines.slice(0, 5)).toEqual(["ping-a-ok", "ping-host-ok", `hello-from-${A}`, B, B]);
    const bip = new RegExp(`^(\\S+)\\t${B}$`).exec(lines[5]!)?.[1];
    expect(bip).toMatch(new RegExp(`^${NET.replaceAll(".", "\\.")}\\.\\d+$`));
    expect(bip).not.toBe(ip);
    expect(b.stdout).toContain(`inet ${bip}\n`);
    // The host's resolv.conf without its loopback nameservers (none reachable from the namespace).
    const resolv = b.stdout.slice(b.stdout.indexOf(`${lines[5]}\n`) + lines[5]!.length + 1, b.stdout.lastIndexOf("inet "));
    expect(resolv).not.toMatch(/nameserver 127\./);
    for (const ns of readFileSync("/etc/resolv.conf", "utf8").split("\n").filter((l) => /^nameserver /.test(l) && !/ 127\.| ::1$/.test(l))) expect(resolv).toContain(ns);
    // netb ran in the foreground: its network went when it exited.
    expect(leftoversOf(B, bip)).toEqual([]);

    // From the host, by the loopback address (portmap's route_localnet) and by the host's own.
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe(`hello-from-${A}\n`);
    expect(await (await fetch(`http://${hostAddress()}:${port}/`)).text()).toBe(`hello-from-${A}\n`);
    // The host reaches the container by its address too.
    expect(await (await fetch(`http://${ip}/`)).text()).toBe(`hello-from-${A}\n`);

    const cid = cniContainerId(stateRoot, A);
    expect(iptables().some((l) => l.includes(cid))).toBe(true);
    expect(readdirSync(join(netDir, "ipam", NETWORK))).toContain(ip);
    const d = t(["delete", "--force", A]);
    expect(d.stderr).toBe("");
    expect(d.code).toBe(0);
    expect(leftoversOf(A, ip)).toEqual([]);
    expect(networkIdle()).toEqual([]);
  }, 60_000);

  test("--net none has only lo (up); --net host sees the host's interfaces and names", () => {
    const none = t(["run", "--image", IMAGE, "--rm", "--net", "none", `netnone${process.pid}`, "--", "sh", "-c", "ls /sys/class/net; ip -o link show lo | grep -o 'state [A-Z]*\\|LOOPBACK,UP'"]);
    expect(none.stderr).toBe("");
    expect(none.stdout).toBe("lo\nLOOPBACK,UP\n");
    expect(leftoversOf(`netnone${process.pid}`)).toEqual([]);

    const host = t(["run", "--image", IMAGE, "--rm", "--net", "host", `nethost${process.pid}`, "--", "sh", "-c", "ls /sys/class/net; echo; hostname; cat /etc/hosts"]);
    expect(host.stderr).toBe("");
    expect(host.code).toBe(0);
    // At the first blank line only: /etc/hosts may have blank lines of its own (Debian's has one).
    const cut = host.stdout.indexOf("\n\n");
    const [ifs, rest] = [host.stdout.slice(0, cut), host.stdout.slice(cut + 2)];
    const mine = readdirSync("/sys/class/net").filter((n) => !n.startsWith("veth"));
    for (const n of mine) expect(ifs.split("\n")).toContain(n);
    expect(rest).toBe(`${sh("hostname")}${readFileSync("/etc/hosts", "utf8")}`);
    expect(leftoversOf(`nethost${process.pid}`)).toEqual([]);
  }, 30_000);

  test("-p is refused with --net host or none, and in a form it does not take, before anything is made", () => {
    expect(t(["run", "--image", IMAGE, "--rm", "--net", "host", "-p", "8080:80", `netp1${process.pid}`]).stderr).toBe("tsrun: -p publishes ports of a container on the bridge network, not with --net host\n");
    const bad = t(["run", "--image", IMAGE, "--rm", "-p", "80", `netp2${process.pid}`]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('tsrun: -p "80": expected HOSTPORT:CONTAINERPORT[/tcp|udp] or IP:HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. -p 8080:80\n');
    expect(t(["run", "--bundle", work, "-p", "8080:80", `netp3${process.pid}`]).stderr).toBe("tsrun: --publish needs --image\n");
    expect(leftoversOf(`netp1${process.pid}`)).toEqual([]);
    expect(leftoversOf(`netp2${process.pid}`)).toEqual([]);
  });

  test("commit leaves out the empty /etc/hosts, hostname and resolv.conf tsrun made to mount its files on", () => {
    const id = `netcommit${process.pid}`;
    const ref = `localhost/netcommit:${process.pid}`;
    try {
      const run = t(["run", "--image", IMAGE, id, "--", "sh", "-c", "echo changed > /x; cat /etc/hostname"]);
      expect(run.stderr).toBe("");
      expect(run.stdout).toBe(`${id}\n`);
      expect(t(["commit", id, ref]).code).toBe(0);
      const layers = JSON.parse(t(["image", "inspect", "--image-root", imageRoot, ref]).stdout).manifest.layers as { digest: string }[];
      const blob = join(imageRoot, "content/blobs/sha256", layers.at(-1)!.digest.slice("sha256:".length));
      // The image has no /etc/hosts etc.: only the container's own change is in its layer.
      expect(sh(`tar tzf ${blob}`).trim().split("\n")).toEqual(["etc/", "x"]);
    } finally {
      t(["delete", "--force", id]);
      t(["image", "rm", "--image-root", imageRoot, ref]);
    }
    expect(leftoversOf(id)).toEqual([]);
  }, 30_000);
});

/** Pids of processes started for the attachment (plugins, unshare) that are running a CNI ADD. */
function pluginsRunning(cid: string): boolean {
  for (const p of readdirSync("/proc").filter((p) => /^\d+$/.test(p)))
    try {
      const env = readFileSync(`/proc/${p}/environ`, "latin1");
      if (env.includes(`CNI_CONTAINERID=${cid}`) && env.includes("CNI_COMMAND=ADD")) return true;
    } catch {
      // gone
    }
  return false;
}

describe("kill -9 of tsrun, then delete --force, leaves nothing of the network", () => {
  const moments: [string, (id: string) => boolean][] = [
    // The record is written before anything is made: the kill lands in the namespace or the first ADDs.
    ["as soon as its record exists", (id) => existsSync(join(netDir, "attachments", `${cniContainerId(stateRoot, id)}.json`))],
    // Mid-chain: a plugin is running an ADD (it goes on after tsrun dies; delete kills it first).
    ["while a CNI plugin runs an ADD", (id) => pluginsRunning(cniContainerId(stateRoot, id))],
    // Mid-run: the container is running with its network.
    ["while the container runs", (id) => existsSync(join(stateRoot, id)) && t(["state", id]).stdout.includes('"running"')],
  ];
  for (const [when, ready] of moments)
    test(when, async () => {
      const id = `netkill${process.pid}-${seq++}`;
      const port = freePort();
      const p = Bun.spawn([TSRUN, "--root", stateRoot, "run", "--image", IMAGE, "-p", `${port}:80`, id, "--", "sleep", "60"], {
        stdin: "ignore",
        stdout: "ignore",
        stderr: "ignore",
        env: env(),
      });
      const deadline = Date.now() + 20_000;
      let hit = false;
      while (!(hit = ready(id)) && Date.now() < deadline && p.exitCode === null) await Bun.sleep(1);
      p.kill("SIGKILL");
      expect(hit).toBe(true);
      await p.exited;
      const d = t(["delete", "--force", id]);
      expect(d.stderr).toBe("");
      expect(d.code).toBe(0);
      expect(leftoversOf(id)).toEqual([]);
      expect(networkIdle()).toEqual([]);
      expect(t(["state", id]).code).not.toBe(0);
    }, 60_000);
});
