// One executable for tsrun and containerd's shim: dist/containerd-shim-tsrun-v2 is a link to
// dist/tsrun, and the compiled binary acts as the shim when exec'd under that name (a symlink, a
// hard link, or any argv[0] ending in it), as tsrun otherwise. `start` through the link spawns the
// daemon from the same file under the shim's name. Needs the built binaries (`bun scripts/build.ts`);
// the start test needs root (the socket goes to /run/containerd/s, as containerd 1.6 has it).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { defaultSpec } from "@tsrun/ocispec";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { LINGER_ENV, TRIM_ENV } from "../src/bin/daemon.ts";
import { TtrpcClient } from "../src/ttrpc/client.ts";
import { taskProto, TASK_SERVICE_V2 } from "../src/task/proto.ts";
import { SHIM_NAME, SHIM_VERSION } from "../src/bin/name.ts";
import { SOCKET_DIR } from "../src/bin/manager.ts";

const repo = join(import.meta.dir, "../../..");
const TSRUN = join(repo, "dist/tsrun");
const SHIM = join(repo, "dist", SHIM_NAME);
const built = existsSync(TSRUN) && existsSync(SHIM);
const work = mkdtempSync(join(tmpdir(), "tsrun-shimbin-"));
// A hard link must be on dist's filesystem: a directory beside the binary, removed afterwards.
const linkDir = built ? mkdtempSync(join(dirname(TSRUN), ".links-")) : "";
const socketDirMadeHere = !existsSync(SOCKET_DIR);
// On a fresh machine its parent, /run/containerd, is made here too.
const runDirMadeHere = !existsSync(dirname(SOCKET_DIR));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  if (linkDir) rmSync(linkDir, { recursive: true, force: true });
  for (const [made, d] of [[socketDirMadeHere, SOCKET_DIR], [runDirMadeHere, dirname(SOCKET_DIR)]] as const) {
    if (!made) continue;
    try {
      rmdirSync(d);
    } catch {
      // Not empty (someone else's sockets) or gone.
    }
  }
});

function run(argv: string[], opts: { argv0?: string; cwd?: string; env?: Record<string, string | undefined> } = {}) {
  const r = Bun.spawnSync(argv, { argv0: opts.argv0, cwd: opts.cwd, env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("requirements: dist/tsrun and dist/containerd-shim-tsrun-v2 are built", () => {
  expect(built).toBe(true);
});

describe("one binary", () => {
  test("dist/containerd-shim-tsrun-v2 is a relative symlink to tsrun: one executable in dist", () => {
    expect(lstatSync(SHIM).isSymbolicLink()).toBe(true);
    expect(readlinkSync(SHIM)).toBe("tsrun");
    expect(realpathSync(SHIM)).toBe(realpathSync(TSRUN));
  });

  test("run as tsrun it is tsrun; run as the shim (link, hard link, or argv[0]) it is the shim", () => {
    const tsrun = run([TSRUN, "--version"]);
    expect([tsrun.code, tsrun.stderr]).toEqual([0, ""]);
    expect(tsrun.stdout).toMatch(/^tsrun version /);

    const viaLink = run([SHIM, "-v"]);
    expect([viaLink.code, viaLink.stdout, viaLink.stderr]).toEqual([0, `${SHIM_VERSION}\n`, ""]);

    const hard = join(linkDir, SHIM_NAME);
    linkSync(TSRUN, hard);
    const viaHard = run([hard, "-v"]);
    expect([viaHard.code, viaHard.stdout, viaHard.stderr]).toEqual([0, `${SHIM_VERSION}\n`, ""]);

    // exec with argv[0] set, as a PATH lookup of a link gives it (no "/" in it).
    const viaArgv0 = run([TSRUN, "-v"], { argv0: SHIM_NAME });
    expect([viaArgv0.code, viaArgv0.stdout]).toEqual([0, `${SHIM_VERSION}\n`]);

    // Any other name is tsrun (its own flag parser answers the shim's flags as unknown).
    const other = join(work, "runc-like");
    symlinkSync(TSRUN, other);
    const asOther = run([other, "--version"]);
    expect([asOther.code, asOther.stdout.split("\n")[0]]).toEqual([0, tsrun.stdout.split("\n")[0]]);
    const shimFlagAsTsrun = run([TSRUN, "-v"]);
    expect(shimFlagAsTsrun.stdout).not.toBe(`${SHIM_VERSION}\n`);

    // A name that only ends like the shim's is not the shim.
    const lookalike = join(work, `x${SHIM_NAME}`);
    symlinkSync(TSRUN, lookalike);
    expect(run([lookalike, "--version"]).stdout).toMatch(/^tsrun version /);
  });

  test("the shim's unknown flags and actions are the shim's errors, not tsrun's", () => {
    const r = run([SHIM, "-nosuch"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${SHIM_NAME}: flag provided but not defined: -nosuch\n`);
  });
});

describe("start through the link (root)", () => {
  test("the daemon is the same executable, run under the shim's name, and serves the Task API", async () => {
    expect(process.getuid?.()).toBe(0);
    const bundle = join(work, "bundle");
    mkdirSync(bundle);
    const id = `shimbin-${process.pid}`;
    const flags = ["-namespace", "tsrun-shimbin", "-address", join(work, "containerd.sock"), "-publish-binary", "/bin/true", "-id", id];
    // The daemon goes with its last container, without the linger time an idle one waits by default.
    const start = run([SHIM, ...flags, "start"], { cwd: bundle, env: { ...process.env, [LINGER_ENV]: "0" } });
    expect([start.code, start.stderr]).toEqual([0, ""]);
    expect(start.stdout).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    const socket = start.stdout.slice("unix://".length);
    const client = await TtrpcClient.connect(socket);
    const p = taskProto();
    let pid = 0;
    try {
      const connected = p.connectResponse.decode(await client.call(TASK_SERVICE_V2, "Connect", p.connectRequest.encode({ id }), { timeoutMs: 10_000 }));
      pid = connected.shimPid;
      expect(connected.version).toBe(SHIM_VERSION);
      // /proc/PID/exe is dist/tsrun itself; argv[0] is the name the dispatch read.
      expect(readlinkSync(`/proc/${pid}/exe`)).toBe(realpathSync(TSRUN));
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      expect(basename(argv[0]!)).toBe(SHIM_NAME);
      expect(argv).toContain(socket);
      await client.call(TASK_SERVICE_V2, "Shutdown", p.shutdownRequest.encode({ id }), { timeoutMs: 10_000 });
    } finally {
      client.close();
    }
    const end = Date.now() + 10_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < end) await Bun.sleep(20);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(socket)).toBe(false);
    // `delete` after it, as containerd runs it: a DeleteResponse on stdout.
    const del = Bun.spawnSync([SHIM, ...flags, "-bundle", bundle, "delete"], { cwd: bundle, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    expect([del.exitCode, del.stderr.toString()]).toEqual([0, ""]);
    expect(p.deleteResponse.decode(del.stdout).exitStatus).toBe(137);
  }, 30_000);

  test("an idle daemon unmaps its executable's clean pages (RSS drops) and serves a container afterwards", async () => {
    expect(process.getuid?.()).toBe(0);
    const bundle = join(work, "trim-bundle");
    mkdirSync(bundle);
    expect(Bun.spawnSync(["bash", join(repo, "scripts/make-rootfs.sh"), join(bundle, "rootfs")]).success).toBe(true);
    const spec = defaultSpec() as any;
    spec.process.terminal = false;
    spec.process.args = ["sh", "-c", "exit 7"];
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    const id = `shimtrim-${process.pid}`;
    const ns = "tsrun-shimtrim";
    const flags = ["-namespace", ns, "-address", join(work, "containerd.sock"), "-publish-binary", "/bin/true", "-id", id];
    const start = run([SHIM, ...flags, "start"], { cwd: bundle, env: { ...process.env, [LINGER_ENV]: "0", [TRIM_ENV]: "300" } });
    expect([start.code, start.stderr]).toEqual([0, ""]);
    const client = await TtrpcClient.connect(start.stdout.slice("unix://".length));
    const p = taskProto();
    const call = (method: string, bytes: Uint8Array) => client.call(TASK_SERVICE_V2, method, bytes, { timeoutMs: 10_000 });
    let pid = 0;
    /** kB of the executable's resident pages in the daemon. */
    const exeRss = () => {
      let kb = 0;
      let ours = false;
      for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
        const head = /^[0-9a-f]+-[0-9a-f]+ \S{4} \S+ \S+ \d+\s*(.*)$/.exec(line);
        if (head) ours = head[1] === realpathSync(TSRUN);
        else if (ours && line.startsWith("Rss:")) kb += Number(/(\d+)/.exec(line)![1]);
      }
      return kb;
    };
    try {
      pid = p.connectResponse.decode(await call("Connect", p.connectRequest.encode({ id }))).shimPid;
      const busy = exeRss();
      await Bun.sleep(1500);
      const idle = exeRss();
      // Bun's code and data: tens of MB resident after start-up, most of it let go once idle.
      expect(busy).toBeGreaterThan(10_000);
      expect(idle).toBeLessThan(busy / 2);
      // The pages come back as they are used: a whole container's life works as before.
      await call("Create", p.createRequest.encode({ id, bundle, rootfs: [], stdin: "", stdout: "", stderr: "" }));
      await call("Start", p.startRequest.encode({ id }));
      expect(p.waitResponse.decode(await call("Wait", p.waitRequest.encode({ id }))).exitStatus).toBe(7);
      await call("Delete", p.deleteRequest.encode({ id }));
      await call("Shutdown", p.shutdownRequest.encode({ id }));
    } finally {
      client.close();
    }
    const end = Date.now() + 10_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < end) await Bun.sleep(20);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    rmSync(join("/run/containerd/tsrun", ns), { recursive: true, force: true });
  }, 60_000);
});
