// Many containers per shim, end to end: Debian's containerd 1.6 on a private socket and state runs
// containers through `ctr run --runtime io.containerd.tsrun.v2`, and the shim's `start` puts the
// containers of one group (the namespace by default, a runc group annotation, a pod) into one
// daemon, up to the cap (set to 8 here through containerd's environment, which the shims inherit).
// Needs root, containerd, ctr, umoci and jq (scripts/make-image.sh), and the built binaries
// (`bun scripts/build.ts`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_ROOT } from "../src/task/runtime.ts";
import { GROUP_MAX_ENV } from "../src/bin/manager.ts";
import { LINGER_ENV } from "../src/bin/daemon.ts";
import { cmdline, testContainerd } from "./private-containerd.ts";
import { alive, until } from "../../../test/wait.ts";

const NS = `tsrun-group-${process.pid}`;
const IMAGE = "localhost/tsrun-group:latest";
const CAP = 8;
/** How long an idle shim stays for its group's next container here (the default is longer). */
const LINGER_MS = 1500;
const RUNTIME = ["--runtime", "io.containerd.tsrun.v2"];

const { canRun, ctd, dir, sock, fifos, bundles, ctr } = testContainerd(NS, "/tmp/tsrun-grp-");
/** `ctr events` for the whole file: every exit containerd heard of. */
let watcher: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let events = "";
let reader: Promise<void> | undefined;

/** ctr, without blocking the test's event loop (for runs in parallel). */
const ctrAsync = (args: string[]) => ctd!.ctrAsync(args);
/** Processes whose command line names our containerd socket (shims: their -address), not containerd nor the watcher. */
const processesUsing = (path: string) => ctd!.processesUsing(path);
const mountedUnder = (path: string) => ctd!.mountedUnder(path);

/** The shim daemons of our containerd (start and delete have no -socket), with their sockets. */
function daemons(): Map<number, string> {
  const out = new Map<number, string>();
  for (const pid of processesUsing(sock)) {
    const argv = cmdline(pid);
    const i = argv.indexOf("-socket");
    if (i >= 0) out.set(pid, argv[i + 1]!);
  }
  return out;
}

/** The shim daemon serving a container, by the address its bundle holds. */
function shimOf(id: string): number {
  const address = readFileSync(join(bundles, id, "address"), "utf8").trim();
  const found = [...daemons()].filter(([, socket]) => `unix://${socket}` === address).map(([pid]) => pid);
  expect(found.length).toBe(1);
  return found[0]!;
}

/** The init exits containerd heard of for a container, as [process id, status]. */
function exitsOf(id: string): Array<[string, number]> {
  return events
    .split("\n")
    .map((l) => /^\S+ \S+ \S+ \S+ (\S+) \/tasks\/exit (\{.*\})$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === NS)
    .map((m) => JSON.parse(m[2]!) as { container_id: string; id: string; exit_status?: number })
    .filter((e) => e.container_id === id)
    .map((e) => [e.id, e.exit_status ?? 0]);
}

const taskList = () => ctd!.taskList();

/** A container that exits with `code` on SIGTERM (sh ignores TERM as pid 1 unless trapped). */
const trapping = (id: string, code: number, extra: string[] = []) => ctr(["run", "--null-io", "-d", ...extra, ...RUNTIME, IMAGE, id, "sh", "-c", `trap 'exit ${code}' TERM; sleep 1000 & wait`]);

/** Stops (SIGKILL) and deletes a container, task first. */
async function remove(id: string): Promise<void> {
  ctr(["tasks", "kill", "-s", "SIGKILL", id]);
  await until(`${id} to stop`, () => taskList().get(id)?.status !== "RUNNING");
  ctr(["tasks", "delete", id]);
  expect(ctr(["containers", "delete", id]).code).toBe(0);
}

/** Nothing of the namespace's containers is left: no shim, mount, runtime state, bundle or container. */
async function expectNothingLeft(): Promise<void> {
  await until("the shims to go", () => processesUsing(sock).length === 0);
  expect(mountedUnder(dir)).toEqual([]);
  expect(existsSync(join(DEFAULT_ROOT, NS)) ? readdirSync(join(DEFAULT_ROOT, NS)) : []).toEqual([]);
  expect(existsSync(bundles) ? readdirSync(bundles) : []).toEqual([]);
  expect(ctr(["containers", "ls", "-q"]).stdout.trim()).toBe("");
}

test("requirements: root, dist/containerd-shim-tsrun-v2, dist/tsrun, containerd, ctr, umoci and jq (scripts/setup.sh installs them)", () => {
  expect(canRun).toBe(true);
});

describe("one shim for many containers behind containerd 1.6 (root)", () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    await ctd!.start(IMAGE, { [GROUP_MAX_ENV]: String(CAP), [LINGER_ENV]: String(LINGER_MS) });
    watcher = Bun.spawn(["ctr", "--address", sock, "events"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    ctd!.ignored.add(watcher.pid);
    const stdout = watcher.stdout;
    reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stdout) events += decoder.decode(chunk);
    })();
    // Subscribed once containerd's own /containers/create of a probe shows up.
    for (let i = 0; !events.includes("/containers/create"); i++) {
      if (i === 50) throw new Error("ctr events did not subscribe");
      expect(ctr(["containers", "create", IMAGE, "probe"]).code).toBe(0);
      expect(ctr(["containers", "delete", "probe"]).code).toBe(0);
      await Bun.sleep(200);
    }
  }, 120_000);

  afterAll(async () => {
    watcher?.kill();
    await watcher?.exited;
    await reader;
    await ctd?.stop();
  }, 60_000);

  test("containers of one namespace share one shim; each keeps its IO and exit status; a failing Create disturbs no one; the shim lingers after the last Delete, takes a container then, and goes", async () => {
    try {
      await sharedShim();
    } finally {
      for (const id of ["g-a", "g-b", "g-c", "g-d", "g-e"]) if (ctr(["containers", "info", id]).code === 0) await remove(id);
    }
    await expectNothingLeft();
  }, 180_000);

  async function sharedShim(): Promise<void> {
    for (const [id, code] of [["g-a", 3], ["g-b", 4], ["g-c", 5]] as const) {
      const r = trapping(id, code);
      expect([r.stderr, r.code]).toEqual(["", 0]);
    }
    expect(daemons().size).toBe(1);
    const shim = shimOf("g-a");
    expect([shimOf("g-b"), shimOf("g-c")]).toEqual([shim, shim]);

    // Two short containers at once through the same shim, with fifo IO: each gets its own output and status.
    const [one, two] = await Promise.all([
      ctrAsync(["run", "--fifo-dir", fifos, "--rm", ...RUNTIME, IMAGE, "g-one", "sh", "-c", "for i in 1 2 3; do echo one; done; echo err-one >&2; exit 6"]),
      ctrAsync(["run", "--fifo-dir", fifos, "--rm", ...RUNTIME, IMAGE, "g-two", "sh", "-c", "for i in 1 2 3; do echo two; done; exit 7"]),
    ]);
    expect([one.stdout, one.stderr, one.code]).toEqual(["one\none\none\n", "err-one\n", 6]);
    expect([two.stdout, two.stderr, two.code]).toEqual(["two\ntwo\ntwo\n", "", 7]);

    // A Create that fails (a relative cwd) in the shared shim: an error for it, nothing for the others.
    const bad = ctr(["run", "--null-io", "--rm", "--cwd", "relative/dir", ...RUNTIME, IMAGE, "g-bad", "true"], 30_000);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("OCI runtime create failed: ");
    expect([...daemons().keys()]).toEqual([shim]);
    const tasks = taskList();
    for (const id of ["g-a", "g-b", "g-c"]) expect(tasks.get(id)?.status).toBe("RUNNING");

    // Each exits on its own, with its own status; the shim stays while any task is left.
    for (const [id, code] of [["g-b", 4], ["g-a", 3]] as const) {
      expect(ctr(["tasks", "kill", "-s", "SIGTERM", id]).code).toBe(0);
      await until(`${id} to stop`, () => taskList().get(id)?.status === "STOPPED");
      expect(ctr(["tasks", "delete", id]).code).toBe(0);
      expect(ctr(["containers", "delete", id]).code).toBe(0);
      await until(`${id}'s exit event`, () => exitsOf(id).length > 0);
      expect(exitsOf(id)).toEqual([[id, code]]);
      // containerd sent Shutdown after the Delete: the shim stays for g-c.
      await Bun.sleep(300);
      expect([...daemons().keys()]).toEqual([shim]);
      expect(taskList().get("g-c")?.status).toBe("RUNNING");
    }
    // A container started now joins the same shim.
    expect(trapping("g-d", 8).code).toBe(0);
    expect(shimOf("g-d")).toBe(shim);
    const socket = daemons().get(shim)!;
    for (const [id, code] of [["g-c", 5], ["g-d", 8]] as const) {
      expect(ctr(["tasks", "kill", "-s", "SIGTERM", id]).code).toBe(0);
      await until(`${id} to stop`, () => taskList().get(id)?.status === "STOPPED");
      expect(ctr(["tasks", "delete", id]).code).toBe(0);
      expect(ctr(["containers", "delete", id]).code).toBe(0);
      await until(`${id}'s exit event`, () => exitsOf(id).length > 0);
      expect(exitsOf(id)).toEqual([[id, code]]);
    }
    // After the last Delete and its Shutdown the shim stays idle for its linger time, and the
    // namespace's next container gets it rather than a new daemon.
    await Bun.sleep(LINGER_MS / 3);
    expect([...daemons().keys()]).toEqual([shim]);
    expect(trapping("g-e", 9).code).toBe(0);
    expect(shimOf("g-e")).toBe(shim);
    expect(ctr(["tasks", "kill", "-s", "SIGTERM", "g-e"]).code).toBe(0);
    await until("g-e to stop", () => taskList().get("g-e")?.status === "STOPPED");
    expect(ctr(["tasks", "delete", "g-e"]).code).toBe(0);
    expect(ctr(["containers", "delete", "g-e"]).code).toBe(0);
    await until("g-e's exit event", () => exitsOf("g-e").length > 0);
    expect(exitsOf("g-e")).toEqual([["g-e", 9]]);
    // Then, idle past its linger time, it exits and removes its socket.
    await Bun.sleep(LINGER_MS / 3);
    expect(existsSync(`/proc/${shim}`)).toBe(true);
    await until("the shim to exit", () => !existsSync(`/proc/${shim}`));
    expect(existsSync(socket)).toBe(false);
  }

  test("groups: the runc group annotation and a pod's sandbox id each get their own shim; a full shim spills into a new one", async () => {
    const runs: Array<[string, string[]]> = [
      ["gr-n1", []],
      ["gr-n2", []],
      ["gr-x1", ["--annotation", "io.containerd.runc.v2.group=gx"]],
      ["gr-x2", ["--annotation", "io.containerd.runc.v2.group=gx"]],
      // A pod's containers: the sandbox id wins over a group annotation.
      ["gr-p1", ["--annotation", "io.kubernetes.cri.sandbox-id=gr-p1"]],
      ["gr-p2", ["--annotation", "io.kubernetes.cri.sandbox-id=gr-p1", "--annotation", "io.containerd.runc.v2.group=gx"]],
    ];
    try {
      for (const [id, extra] of runs) expect(trapping(id, 0, extra).code).toBe(0);
      expect(daemons().size).toBe(3);
      expect(shimOf("gr-n2")).toBe(shimOf("gr-n1"));
      expect(shimOf("gr-x2")).toBe(shimOf("gr-x1"));
      expect(shimOf("gr-p2")).toBe(shimOf("gr-p1"));
      expect(new Set([shimOf("gr-n1"), shimOf("gr-x1"), shimOf("gr-p1")]).size).toBe(3);

      // The namespace's shim holds 2; CAP - 2 more fill it, and the next goes to a second shim.
      for (let i = 0; i < CAP - 2; i++) {
        const id = `gr-f${i}`;
        runs.push([id, []]);
        expect(trapping(id, 0).code).toBe(0);
        expect(shimOf(id)).toBe(shimOf("gr-n1"));
      }
      runs.push(["gr-over", []]);
      expect(trapping("gr-over", 0).code).toBe(0);
      expect(shimOf("gr-over")).not.toBe(shimOf("gr-n1"));
      expect(daemons().size).toBe(4);
      // Once a place is free, the first shim takes containers again.
      await remove("gr-f0");
      runs.splice(runs.findIndex(([id]) => id === "gr-f0"), 1);
      runs.push(["gr-again", []]);
      expect(trapping("gr-again", 0).code).toBe(0);
      expect(shimOf("gr-again")).toBe(shimOf("gr-n1"));
    } finally {
      for (const [id] of runs) await remove(id);
    }
    await expectNothingLeft();
  }, 180_000);

  test("a grouped shim killed with SIGKILL: containerd's cleanup (`shim delete` per container) leaves no mount, process or state of any of them", async () => {
    const ids = ["k-1", "k-2", "k-3"];
    for (const id of ids) expect(trapping(id, 0).code).toBe(0);
    const shim = shimOf("k-1");
    expect(ids.map(shimOf)).toEqual([shim, shim, shim]);
    const tasks = taskList();
    const inits = ids.map((id) => tasks.get(id)!.pid);
    for (const pid of inits) expect(pid).toBeGreaterThan(0);
    const socket = daemons().get(shim)!;
    process.kill(shim, "SIGKILL");
    // containerd sees each connection close and runs `delete` for each container; the tasks go.
    await until("containerd to drop the tasks", () => ids.every((id) => !taskList().has(id)), 30_000);
    for (const id of ids) expect(ctr(["containers", "delete", id]).code).toBe(0);
    // The inits are dead: gone, or zombies left to the host's init (their parent since the shim died).
    await until("the containers' processes to die", () => inits.every((pid) => !alive(pid)));
    // Once every `shim delete` has finished (containerd may list the tasks as gone before).
    await expectNothingLeft();
    expect(existsSync(socket)).toBe(false);
  }, 120_000);

  test("50 short containers in parallel: every exit code reported once and right, each output its own (ctr events)", async () => {
    const N = 50;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => ctrAsync(["run", "--fifo-dir", fifos, "--rm", ...RUNTIME, IMAGE, `p-${i}`, "sh", "-c", `echo out-${i}; exit ${i + 1}`])),
    );
    await until("every TaskDelete", () => Array.from({ length: N }, (_, i) => `/tasks/delete {"container_id":"p-${i}"`).every((s) => events.includes(s)), 30_000);
    for (let i = 0; i < N; i++) expect([`p-${i}`, results[i]!.stdout, results[i]!.stderr, results[i]!.code]).toEqual([`p-${i}`, `out-${i}\n`, "", i + 1]);
    for (let i = 0; i < N; i++) expect([`p-${i}`, exitsOf(`p-${i}`)]).toEqual([`p-${i}`, [[`p-${i}`, i + 1]]]);
    await expectNothingLeft();
  }, 300_000);
});
