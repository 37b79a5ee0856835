// tsrun behind Kubernetes' CRI: Debian's containerd 1.6 with its CRI plugin, on a private socket,
// root, state and CNI config dir, driven through the CRI v1 gRPC API (fixtures/cri/api.proto,
// @grpc/grpc-js + protobufjs) as the kubelet drives it. Two runtime handlers run the same specs:
// `tsrun` (containerd-shim-tsrun-v2) and `tsrun-as-runc` (containerd's runc shim with BinaryName =
// dist/tsrun). Images come from a private docker-registry on loopback that the test fills itself
// with the busybox image of scripts/make-image.sh and a "pause" made from it (busybox `sleep` as the
// sandbox's process: containerd stops sandboxes with SIGKILL, so no signal handling is needed).
// Pods get a network from Debian's CNI plugins: a private bridge (no gateway, no masquerade, so
// no iptables rule and no forwarding sysctl), host-local IPAM in the test's dir; containerd's CRI
// refuses a pod whose eth0 has no address, so loopback alone would not do. Nothing is fetched.
// Needs root, containerd, docker-registry, skopeo, umoci, jq (scripts/setup.sh installs them) and
// the built binaries (`bun scripts/build.ts`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

const repo = join(import.meta.dir, "../..");
const SHIM = join(repo, "dist/containerd-shim-tsrun-v2");
const TSRUN = join(repo, "dist/tsrun");
const CNI_BIN = "/usr/lib/cni";
const has = (cmd: string) => Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).success;
const requirements = {
  root: process.getuid?.() === 0,
  binaries: existsSync(SHIM) && existsSync(TSRUN),
  tools: ["containerd", "docker-registry", "skopeo", "umoci", "jq", "ip"].every(has),
  cni: ["bridge", "host-local", "loopback"].every((p) => existsSync(join(CNI_BIN, p))),
};
const canRun = Object.values(requirements).every(Boolean);

// Where the tsrun shim keeps its runtime state and sockets: fixed paths, as containerd's runc
// shim's are (containerd 1.6 gives a shim no directory; CRI passes a non-runc shim no Root).
const TSRUN_SHIM_ROOT = "/run/containerd/tsrun";
const SOCKET_DIR = "/run/containerd/s";
const NS = "k8s.io"; // the CRI plugin's containerd namespace

// Short: containerd's socket path must fit in sun_path.
const dir = canRun ? mkdtempSync("/tmp/tsrun-cri-") : "";
const sock = join(dir, "c.sock");
const tag = `${process.pid % 100000}`;
const BRIDGE = `tcri${tag}`;
const CGROUP_PARENT = `/tsrun-cri-${tag}`;
const madeHere = [TSRUN_SHIM_ROOT, SOCKET_DIR, "/run/containerd"].filter((p) => !existsSync(p));
let containerd: Bun.Subprocess | undefined;
let registry: Bun.Subprocess | undefined;
/** Every pod and container made here, with the runtime state root its handler uses (for cleanup after a failure). */
const created: { root: string; id: string }[] = [];
/** The shim sockets seen while pods ran: none may outlive the pods. */
const shimSockets = new Set<string>();
/** The socket containerd 1.6 names for a shim of ours serving `id` (sha256 of address/namespace/id, as its shim manager computes it). */
const shimSocket = (id: string) => join(SOCKET_DIR, new Bun.CryptoHasher("sha256").update(join(sock, NS, id)).digest("hex"));
const stateRootOf = (handler: string) => (handler === "tsrun" ? join(TSRUN_SHIM_ROOT, NS) : join(dir, "runc-root", NS));
let reg = "";
let BUSYBOX = "";

// ---- CRI v1 over gRPC -------------------------------------------------------------------------

const protoRoot = protobuf.parse(readFileSync(join(import.meta.dir, "fixtures/cri/api.proto"), "utf8")).root;
protoRoot.resolveAll();
const decodeOptions: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true, arrays: true, objects: true };
// biome-ignore lint: CRI messages are plain objects checked by the specs.
type Msg = Record<string, any>;

function serviceClient(name: string): Record<string, (req: Msg) => Promise<Msg>> {
  const svc = protoRoot.lookupService(`runtime.v1.${name}`);
  const defs: Record<string, grpc.MethodDefinition<Msg, Msg>> = {};
  for (const m of Object.values(svc.methods)) {
    const req = protoRoot.lookupType(m.requestType);
    const res = protoRoot.lookupType(m.responseType);
    defs[m.name] = {
      path: `/runtime.v1.${name}/${m.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: Msg) => Buffer.from(req.encode(req.fromObject(v)).finish()),
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), decodeOptions),
      responseSerialize: (v: Msg) => Buffer.from(res.encode(res.fromObject(v)).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), decodeOptions),
    };
  }
  const Ctor = grpc.makeGenericClientConstructor(defs, name);
  const client = new Ctor(`unix://${sock}`, grpc.credentials.createInsecure());
  const out: Record<string, (req: Msg) => Promise<Msg>> = {};
  for (const m of Object.keys(defs)) {
    out[m] = (req: Msg) =>
      new Promise((resolve, reject) => {
        const deadline = new Date(Date.now() + 90_000);
        // biome-ignore lint: generic client methods are untyped
        (client as any)[m](req, { deadline }, (err: grpc.ServiceError | null, res: Msg) => (err ? reject(new Error(`${m}: ${err.details || err.message}`)) : resolve(res)));
      });
  }
  closers.push(() => client.close());
  return out;
}
const closers: (() => void)[] = [];
let rt: Record<string, (req: Msg) => Promise<Msg>>;
let img: Record<string, (req: Msg) => Promise<Msg>>;

const SANDBOX_READY = 0;
const CONTAINER_RUNNING = 1;
const CONTAINER_EXITED = 2;
const POD = 0;

// ---- helpers ----------------------------------------------------------------------------------

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function run(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  if (!r.success) throw new Error(`${cmd.join(" ")}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout.toString();
}

/** Processes whose command line names our containerd socket: its shims (their -address), not containerd. */
function processesUsing(path: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === containerd?.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").some((a) => a === path || a === `unix://${path}`)) out.push(Number(e));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Unix sockets under SOCKET_DIR that the given processes listen on (their shim sockets, whatever id a shim chose). */
function socketsListenedBy(pids: number[]): string[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return readFileSync("/proc/net/unix", "utf8")
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && inodes.has(f[6]!) && f[7]!.startsWith(`${SOCKET_DIR}/`))
    .map((f) => f[7]!);
}

function mountsUnder(path: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === path || m.startsWith(`${path}/`));
}

/** Cgroup dirs named CGROUP_PARENT: at a hierarchy's root, or below our own cgroup where tsrun nests containers. */
function cgroupParents(): string[] {
  const own = new Map(
    readFileSync("/proc/self/cgroup", "utf8")
      .trim()
      .split("\n")
      .map((l) => {
        const [, ctl, path] = l.split(":");
        return [ctl === "" ? "unified" : ctl!.replace(/^name=/, ""), path!] as const;
      }),
  );
  const out: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    for (const d of [join("/sys/fs/cgroup", h, CGROUP_PARENT), join("/sys/fs/cgroup", h, own.get(h) ?? "/", CGROUP_PARENT)]) if (existsSync(d) && !out.includes(d)) out.push(d);
  }
  return out;
}

function subdirs(d: string): string[] {
  try {
    return readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name));
  } catch {
    return [];
  }
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await Bun.sleep(100);
  }
}

// ---- daemons ----------------------------------------------------------------------------------

test("requirements: root, dist/ binaries, containerd, docker-registry, skopeo, umoci, jq, ip and the CNI plugins (scripts/setup.sh installs them)", () => {
  expect(requirements).toEqual({ root: true, binaries: true, tools: true, cni: true });
});

beforeAll(async () => {
  if (!canRun) return;
  // The registry, filled with busybox and a pause made from it.
  const port = freePort();
  reg = `127.0.0.1:${port}`;
  writeFileSync(join(dir, "registry.yml"), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "registry")}\nhttp:\n  addr: ${reg}\n`);
  registry = Bun.spawn(["docker-registry", "serve", join(dir, "registry.yml")], { stdio: ["ignore", "ignore", Bun.file(join(dir, "registry.log"))] });
  await until("docker-registry", async () => ((await fetch(`http://${reg}/v2/`)).ok ? true : undefined), 20_000);
  const tar = join(dir, "bb.tar");
  run(["bash", join(repo, "scripts/make-image.sh"), tar, "bb"]);
  const layout = join(dir, "layout");
  mkdirSync(layout);
  run(["tar", "-C", layout, "-xf", tar]);
  run(["umoci", "config", "--image", `${layout}:bb`, "--tag", "pause", "--config.cmd", "sleep", "--config.cmd", "2147483647"]);
  BUSYBOX = `${reg}/tsrun-cri/busybox:1`;
  run(["skopeo", "copy", "-q", "--dest-tls-verify=false", `oci:${layout}:bb`, `docker://${BUSYBOX}`]);
  run(["skopeo", "copy", "-q", "--dest-tls-verify=false", `oci:${layout}:pause`, `docker://${reg}/tsrun-cri/pause:1`]);

  // CNI: a bridge of our own, addresses from a private host-local store.
  mkdirSync(join(dir, "cni"));
  const subnet = `10.${200 + (process.pid % 50)}.${process.pid % 250}.0/24`;
  writeFileSync(
    join(dir, "cni/10-tsrun-cri.conflist"),
    JSON.stringify({
      cniVersion: "0.4.0",
      name: "tsrun-cri",
      plugins: [{ type: "bridge", bridge: BRIDGE, isGateway: false, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: join(dir, "ipam") } }],
    }),
  );

  const bin = join(dir, "bin");
  mkdirSync(bin);
  symlinkSync(SHIM, join(bin, "containerd-shim-tsrun-v2"));
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  writeFileSync(
    join(dir, "config.toml"),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[${cri}]
  sandbox_image = "${reg}/tsrun-cri/pause:1"
  # no CAP_SYS_RESOURCE on some hosts (this one): never raise a process's oom_score_adj
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [${cri}.cni]
    bin_dir = "${CNI_BIN}"
    conf_dir = "${dir}/cni"
  [${cri}.containerd]
    default_runtime_name = "tsrun"
    [${cri}.containerd.runtimes.tsrun]
      runtime_type = "io.containerd.tsrun.v2"
    [${cri}.containerd.runtimes.tsrun-as-runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.tsrun-as-runc.options]
        BinaryName = "${TSRUN}"
        Root = "${dir}/runc-root"
  [${cri}.registry.mirrors."${reg}"]
    endpoint = ["http://${reg}"]
`,
  );
  containerd = Bun.spawn(["containerd", "--config", join(dir, "config.toml")], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    stdio: ["ignore", Bun.file(join(dir, "containerd.log")), Bun.file(join(dir, "containerd.log"))],
  });
  await until("containerd", () => (existsSync(sock) ? true : undefined), 30_000);
  rt = serviceClient("RuntimeService");
  img = serviceClient("ImageService");
  await until("the CRI plugin", () => rt.Version!({}), 60_000);
  await img.PullImage!({ image: { image: BUSYBOX } });
}, 180_000);

afterAll(async () => {
  for (const c of closers) c();
  if (containerd && containerd.exitCode === null) {
    containerd.kill("SIGTERM");
    await Promise.race([containerd.exited, Bun.sleep(10_000)]);
    if (containerd.exitCode === null) containerd.kill("SIGKILL");
    await containerd.exited;
  }
  // After a failed spec: containers whose shims are killed below, their state and processes first.
  for (const { root, id } of created.reverse()) {
    if (existsSync(join(root, id))) Bun.spawnSync([TSRUN, "--root", root, "delete", "--force", id], { stdio: ["ignore", "ignore", "ignore"] });
  }
  for (const pid of processesUsing(sock)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone.
    }
  }
  for (const p of [...shimSockets, ...created.map(({ id }) => shimSocket(id))]) rmSync(p, { force: true });
  registry?.kill("SIGTERM");
  await registry?.exited;
  if (dir) {
    for (const m of mountsUnder(dir).sort((a, b) => b.length - a.length)) Bun.spawnSync(["umount", "-l", m]);
    rmSync(dir, { recursive: true, force: true });
  }
  Bun.spawnSync(["ip", "link", "del", BRIDGE], { stdio: ["ignore", "ignore", "ignore"] });
  for (const d of cgroupParents().flatMap((p) => [...subdirs(p), p]).reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // Busy or gone: the specs say so.
    }
  }
  for (const p of [join(TSRUN_SHIM_ROOT, NS), ...madeHere]) {
    try {
      rmdirSync(p);
    } catch {
      // Not empty (someone else's) or not there.
    }
  }
}, 60_000);

// ---- the specs, per handler -------------------------------------------------------------------

for (const handler of ["tsrun", "tsrun-as-runc"] as const) {
  describe(`CRI through containerd 1.6, runtime handler ${handler} (root)`, () => {
    const podConfig: Msg = {
      metadata: { name: `pod-${handler}`, uid: `uid-${handler}-${tag}`, namespace: "tsrun-cri", attempt: 0 },
      hostname: `pod-${handler}`,
      logDirectory: "",
      linux: {
        cgroupParent: CGROUP_PARENT,
        sysctls: { "net.ipv4.ip_unprivileged_port_start": "1000" },
        securityContext: { namespaceOptions: { network: POD, pid: POD, ipc: POD } },
      },
    };
    let podId = "";
    let sandboxPid = 0;
    const pids: number[] = [];
    const containers: string[] = [];

    async function container(name: string, command: string[], linux: Msg = {}): Promise<string> {
      const { containerId } = await rt.CreateContainer!({
        podSandboxId: podId,
        config: { metadata: { name, attempt: 0 }, image: { image: BUSYBOX }, command, logPath: `${name}.log`, linux },
        sandboxConfig: podConfig,
      });
      containers.push(containerId);
      created.push({ root: stateRootOf(handler), id: containerId });
      await rt.StartContainer!({ containerId });
      const { info } = await rt.ContainerStatus!({ containerId, verbose: true });
      const pid = JSON.parse(info.info ?? "{}").pid;
      if (typeof pid === "number" && pid > 0) pids.push(pid);
      return containerId;
    }

    async function exec(containerId: string, cmd: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
      const r = await rt.ExecSync!({ containerId, cmd, timeout: 30 });
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      return { stdout: text(r.stdout), stderr: text(r.stderr), exitCode: r.exitCode };
    }

    beforeAll(() => {
      podConfig.logDirectory = join(dir, "logs", handler);
      if (canRun) mkdirSync(podConfig.logDirectory, { recursive: true });
    });

    test("RunPodSandbox: the sandbox is ready, on this handler, with an address on eth0", async () => {
      expect(canRun).toBe(true);
      podId = (await rt.RunPodSandbox!({ config: podConfig, runtimeHandler: handler })).podSandboxId;
      expect(podId).toMatch(/^[0-9a-f]{64}$/);
      created.push({ root: stateRootOf(handler), id: podId });
      const st = await rt.PodSandboxStatus!({ podSandboxId: podId, verbose: true });
      expect(st.status.state).toBe(SANDBOX_READY);
      expect(st.status.network.ip).toMatch(/^10\.\d+\.\d+\.\d+$/);
      const info = JSON.parse(st.info.info);
      expect(info.runtimeHandler).toBe(handler);
      sandboxPid = info.pid;
      expect(sandboxPid).toBeGreaterThan(0);
      pids.push(sandboxPid);
      // The handler really is tsrun: its state for the sandbox is where that handler keeps it.
      expect(existsSync(join(stateRootOf(handler), podId))).toBe(true);
      // The shim's socket, which the last spec checks is gone.
      const socks = socketsListenedBy(processesUsing(sock));
      expect(socks.length).toBeGreaterThan(0);
      for (const s of socks) shimSockets.add(s);
      expect(readFileSync(`/proc/${sandboxPid}/cmdline`, "utf8")).toBe("sleep\x002147483647\0");
    }, 120_000);

    test("CreateContainer, StartContainer, ExecSync: output and exit code", async () => {
      const id = await container("main", ["sleep", "1000"]);
      expect((await rt.ContainerStatus!({ containerId: id })).status.state).toBe(CONTAINER_RUNNING);
      expect(await exec(id, ["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({ stdout: "out\n", stderr: "err\n", exitCode: 3 });
      // One pid namespace for the pod (the containers' default): its first process is the sandbox's.
      expect(await exec(id, ["cat", "/proc/1/cmdline"])).toEqual({ stdout: "sleep\x002147483647\0", stderr: "", exitCode: 0 });
    }, 120_000);

    test("ContainerStatus after the container exits: EXITED with its exit code", async () => {
      const id = await container("exits", ["sh", "-c", "exit 7"]);
      const st = await until("the container's exit", async () => {
        const s = (await rt.ContainerStatus!({ containerId: id })).status;
        return s.state === CONTAINER_EXITED ? s : undefined;
      });
      expect(st.exitCode).toBe(7);
      expect(st.finishedAt).toBeGreaterThan(0);
    }, 120_000);

    test("capabilities dropped: absent from the container's sets, and what they allow fails", async () => {
      const id = await container("nocaps", ["sh", "-c", "cat /proc/self/status >/tmp/init-status; exec sleep 1000"], {
        securityContext: { capabilities: { dropCapabilities: ["CHOWN", "NET_RAW"] } },
      });
      // The container's own process, and a process exec'd into it.
      const init = await until("the init's status", async () => {
        const r = await exec(id, ["cat", "/tmp/init-status"]);
        return r.exitCode === 0 && r.stdout.includes("CapBnd") ? r.stdout : undefined;
      });
      const execd = (await exec(id, ["cat", "/proc/self/status"])).stdout;
      for (const [set, status] of [["CapEff", init], ["CapBnd", init], ["CapPrm", init], ["CapEff", execd], ["CapBnd", execd]] as const) {
        const v = BigInt(`0x${status.match(new RegExp(`^${set}:\\s*([0-9a-f]+)$`, "m"))![1]}`);
        expect([set, v & 1n, v & (1n << 13n)]).toEqual([set, 0n, 0n]); // CAP_CHOWN 0, CAP_NET_RAW 13
        expect([set, v & (1n << 1n)]).toEqual([set, 2n]); // CAP_DAC_OVERRIDE kept (containerd's default set)
      }
      const chown = await exec(id, ["chown", "65534", "/tmp"]);
      expect(chown.exitCode).not.toBe(0);
      expect(chown.stderr).toContain("Operation not permitted");
    }, 120_000);

    test("a read-only rootfs: writes fail with EROFS, the container runs", async () => {
      const id = await container("ro", ["sleep", "1000"], { securityContext: { readonlyRootfs: true } });
      const w = await exec(id, ["touch", "/newfile"]);
      expect(w.exitCode).not.toBe(0);
      expect(w.stderr).toContain("Read-only file system");
      expect((await exec(id, ["sh", "-c", "grep ' / ' /proc/self/mounts"])).stdout).toMatch(/ ro[, ]/);
    }, 120_000);

    test("a pod sysctl is set in the pod's network namespace, not on the host", async () => {
      const id = containers[0]!;
      expect(await exec(id, ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"])).toEqual({ stdout: "1000\n", stderr: "", exitCode: 0 });
      expect(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8")).not.toBe("1000\n");
    }, 120_000);

    test("two containers share the pod's network namespace (the sandbox's, not the host's)", async () => {
      const server = await container("web", ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"]);
      const client = containers[0]!;
      const nsOf = async (id: string) => (await exec(id, ["readlink", "/proc/self/ns/net"])).stdout.trim();
      const sandboxNet = readlinkSync(`/proc/${sandboxPid}/ns/net`);
      expect(await nsOf(server)).toBe(sandboxNet);
      expect(await nsOf(client)).toBe(sandboxNet);
      expect(sandboxNet).not.toBe(readlinkSync("/proc/self/ns/net"));
      // What one container serves on loopback the other reaches.
      const got = await until("the web server", async () => {
        const r = await exec(client, ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/passwd"]);
        return r.exitCode === 0 ? r.stdout : undefined;
      });
      expect(got).toStartWith("root:x:0:0:");
    }, 120_000);

    test("StopPodSandbox and RemovePodSandbox leave nothing: no process, shim, mount, cgroup, netns or state", async () => {
      expect(podId).not.toBe("");
      // One container stopped and removed by itself (httpd ends on SIGTERM), the rest with the pod.
      const web = containers[containers.length - 1]!;
      await rt.StopContainer!({ containerId: web, timeout: 10 });
      expect((await rt.ContainerStatus!({ containerId: web })).status.state).toBe(CONTAINER_EXITED);
      await rt.RemoveContainer!({ containerId: web });
      containers.pop();
      expect((await rt.ListContainers!({ filter: { id: web } })).containers).toEqual([]);
      await rt.StopPodSandbox!({ podSandboxId: podId });
      for (const c of containers) expect((await rt.ContainerStatus!({ containerId: c })).status.state).toBe(CONTAINER_EXITED);
      await rt.RemovePodSandbox!({ podSandboxId: podId });
      expect((await rt.ListPodSandbox!({ filter: { id: podId } })).items).toEqual([]);
      expect((await rt.ListContainers!({ filter: { podSandboxId: podId } })).containers).toEqual([]);
      // containerd deletes a shim after its connection closes: give it a moment.
      await until("the shims' exit", () => (processesUsing(sock).length === 0 ? true : undefined), 20_000).catch(() => undefined);
      expect(processesUsing(sock).map((p) => readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " "))).toEqual([]);
      expect(pids.filter((p) => existsSync(`/proc/${p}`))).toEqual([]);
      expect(mountsUnder(dir)).toEqual([]);
      for (const id of [podId, ...containers]) {
        expect(existsSync(join(stateRootOf(handler), id))).toBe(false);
        expect(existsSync(join(dir, "state/io.containerd.runtime.v2.task", NS, id))).toBe(false);
      }
      const netns = join(dir, "state/io.containerd.grpc.v1.cri/netns");
      expect(existsSync(netns) ? readdirSync(netns) : []).toEqual([]);
      expect(readdirSync(join(dir, "state/io.containerd.grpc.v1.cri/sandboxes")).filter((e) => e === podId)).toEqual([]);
      expect(cgroupParents().flatMap(subdirs)).toEqual([]);
      expect([...shimSockets, ...created.map(({ id }) => shimSocket(id))].filter((p) => existsSync(p))).toEqual([]);
    }, 120_000);
  });
}
