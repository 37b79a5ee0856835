// End to end: Debian's containerd 1.6 on a private socket and state, with
// dist/containerd-shim-tsrun-v2 and dist/tsrun on its PATH, runs containers of a locally made
// busybox image through `ctr run --runtime io.containerd.tsrun.v2`. Needs root, containerd, ctr,
// umoci and jq (scripts/make-image.sh), and the built binaries (`bun scripts/build.ts`).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_ROOT } from "../src/task/runtime.ts";
import { LINGER_ENV } from "../src/bin/daemon.ts";
import { BUILT, testContainerd } from "./private-containerd.ts";
import { BinaryTransport, Publisher } from "../src/events/publisher.ts";
import { shellSession } from "../../../test/conformance/pty.ts";

const TSRUN = BUILT.tsrun;
// Per run: the runtime state root and the cgroup parents are host-wide, and another checkout may
// run this test at the same time (its clean-up sweeps its namespace's state).
const NS = `tsrun-e2e-${process.pid}`;
const IMAGE = "localhost/tsrun-e2e:latest";

const { canRun, ctd, dir, sock, fifos, ctr } = testContainerd(NS, "/tmp/tsrun-ctd-");
/** The state root of containerd's own runc shim when it drives dist/tsrun (its BinaryName). */
const runcRoot = join(dir, "runc-root");
const processesUsing = (path: string) => ctd!.processesUsing(path);
const mountedUnder = (path: string) => ctd!.mountedUnder(path);

/** Nothing of a finished container may survive: no shim, no mount, no runtime state, no task bundle. */
async function expectNothingLeft(id: string): Promise<void> {
  // containerd runs `shim delete` after the shim's connection closes; give it a moment.
  const end = Date.now() + 10_000;
  while (processesUsing(sock).length > 0 && Date.now() < end) await Bun.sleep(50);
  expect(processesUsing(sock)).toEqual([]);
  expect(mountedUnder(dir)).toEqual([]);
  expect(existsSync(join(DEFAULT_ROOT, NS, id))).toBe(false);
  expect(existsSync(join(dir, "state/io.containerd.runtime.v2.task", NS, id))).toBe(false);
  expect(ctr(["containers", "ls", "-q"]).stdout.trim()).toBe("");
}

// Not skipped when something is missing: a missing requirement is a failure to see.
test("requirements: root, dist/containerd-shim-tsrun-v2, dist/tsrun, containerd, ctr, umoci and jq (scripts/setup.sh installs them)", () => {
  expect(canRun).toBe(true);
});

describe("containerd 1.6 runs containers through containerd-shim-tsrun-v2 (root)", () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    // Each test's daemon goes with its last container (no linger: shim-group.test.ts tests that).
    await ctd!.start(IMAGE, { [LINGER_ENV]: "0" });
  }, 120_000);

  afterAll(async () => {
    await ctd?.stop([[TSRUN, join(runcRoot, NS)]]);
  }, 60_000);

  test("ctr run -t on a terminal: the shell's prompt, a typed command's output and size, its exit status", async () => {
    const argv = ["ctr", "--address", sock, "--namespace", NS, "run", "-t", "--fifo-dir", fifos, "--rm", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-tty", "sh"];
    // ctr passes its size on through ResizePty after Start: the shell asks until it is there.
    const typed = 'for i in $(seq 100); do s=$(stty size); test "$s" = "19 83" && break; sleep 0.05; done; tty; echo "size $s"; echo typed-$((6 * 7))\n';
    const session = await shellSession(argv, { rows: 19, cols: 83 }, typed, /typed-42\n/, 9);
    expect(session.code).toBe(9);
    // Echoed by the container's terminal, then the output.
    expect(session.text).toContain("echo typed-$((6 * 7))\n");
    expect(session.text).toMatch(/\n\/dev\/pts\/\d+\nsize 19 83\ntyped-42\n/);
    await expectNothingLeft("e2e-tty");
  }, 60_000);

  test("containerd's own runc shim with BinaryName = dist/tsrun (ctr --runc-binary): run --rm, exit status, task exec, kill, delete", async () => {
    const rt = ["--runtime", "io.containerd.runc.v2", "--runc-binary", TSRUN, "--runc-root", runcRoot];
    const r = ctr(["run", "--fifo-dir", fifos, "--rm", ...rt, IMAGE, "e2e-runc-echo", "sh", "-c", "echo hi; echo err >&2; exit 3"]);
    expect([r.stdout, r.stderr, r.code]).toEqual(["hi\n", "err\n", 3]);
    expect(existsSync(join(runcRoot, NS, "e2e-runc-echo"))).toBe(false);

    const d = ctr(["run", "--null-io", "-d", ...rt, IMAGE, "e2e-runc", "sleep", "100"]);
    expect([d.stderr, d.code]).toEqual(["", 0]);
    try {
      // The container is tsrun's: its state is in the runc shim's root, in tsrun's own form.
      const state = Bun.spawnSync([TSRUN, "--root", join(runcRoot, NS), "state", "e2e-runc"], { stdout: "pipe", stderr: "pipe" });
      expect(state.stderr.toString()).toBe("");
      expect(JSON.parse(state.stdout.toString())).toMatchObject({ id: "e2e-runc", status: "running" });
      expect(ctr(["tasks", "ls"]).stdout).toMatch(/e2e-runc\s+\d+\s+RUNNING/);
      const exec = ctr(["task", "exec", "--fifo-dir", fifos, "--exec-id", "x1", "e2e-runc", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 4"]);
      expect([exec.stdout, exec.stderr, exec.code]).toEqual(["sleep 100 ", "", 4]);
      expect(ctr(["task", "kill", "-s", "SIGKILL", "e2e-runc"]).code).toBe(0);
      const stopped = Date.now() + 10_000;
      while (!/e2e-runc\s+\d+\s+STOPPED/.test(ctr(["tasks", "ls"]).stdout) && Date.now() < stopped) await Bun.sleep(50);
      expect(ctr(["tasks", "ls"]).stdout).toMatch(/e2e-runc\s+\d+\s+STOPPED/);
    } finally {
      ctr(["task", "kill", "-s", "SIGKILL", "e2e-runc"]);
      ctr(["tasks", "delete", "e2e-runc"]);
      ctr(["containers", "delete", "e2e-runc"]);
    }
    expect(existsSync(join(runcRoot, NS, "e2e-runc"))).toBe(false);
    await expectNothingLeft("e2e-runc");
  }, 60_000);

  test("ctr run --rm … echo hi prints hi and leaves nothing behind", async () => {
    const r = ctr(["run", "--fifo-dir", fifos, "--rm", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-echo", "echo", "hi"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hi\n");
    expect(r.code).toBe(0);
    await expectNothingLeft("e2e-echo");
  }, 60_000);

  test("the exit status and stderr come back through ctr", async () => {
    const r = ctr(["run", "--fifo-dir", fifos, "--rm", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-exit", "sh", "-c", "echo out; echo err >&2; exit 4"]);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect(r.code).toBe(4);
    await expectNothingLeft("e2e-exit");
  }, 60_000);

  test("the container gets only its stdio from the shim (no leaked sockets or fifos)", async () => {
    // ls's own directory fd is the 3.
    const r = ctr(["run", "--fifo-dir", fifos, "--rm", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-fds", "ls", "/proc/self/fd"]);
    expect(r.stdout.split("\n").filter(Boolean)).toEqual(["0", "1", "2", "3"]);
    expect(r.code).toBe(0);
    await expectNothingLeft("e2e-fds");
  }, 60_000);

  test("ctr run --null-io completes (Create does not wait on the container's stdio) and reports the exit status", async () => {
    const r = ctr(["run", "--null-io", "--rm", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-nullio", "sh", "-c", "echo lost; exit 6"], 30_000);
    expect(r.stdout).toBe("");
    expect(r.code).toBe(6);
    await expectNothingLeft("e2e-nullio");
  }, 60_000);

  test("a failing create with null IO reports tsrun's own error through containerd", async () => {
    const r = ctr(["run", "--null-io", "--rm", "--cwd", "relative/dir", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-badcwd", "true"], 30_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("OCI runtime create failed: ");
    expect(r.stderr).toContain("relative/dir");
    await expectNothingLeft("e2e-badcwd");
  }, 60_000);

  test("ctr task exec: output, exit status, a terminal (-t), ps with exec ids, and a killed exec's status", async () => {
    const run = ctr(["run", "--null-io", "-d", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-exec", "sleep", "100"]);
    expect([run.stderr, run.code]).toEqual(["", 0]);
    const echo = ctr(["task", "exec", "--fifo-dir", fifos, "--exec-id", "x1", "e2e-exec", "echo", "from exec"]);
    expect([echo.stdout, echo.stderr, echo.code]).toEqual(["from exec\n", "", 0]);
    const failing = ctr(["task", "exec", "--fifo-dir", fifos, "--exec-id", "x2", "e2e-exec", "sh", "-c", "echo err >&2; exit 3"]);
    expect([failing.stderr, failing.code]).toEqual(["err\n", 3]);

    // -t needs ctr's own stdin to be a terminal: script(1) gives it one, sized here so that ctr
    // has a size to pass on through ResizePty (it does so after Start: the exec polls for it).
    const cmd = ["ctr", "--address", sock, "--namespace", NS, "task", "exec", "-t", "--fifo-dir", fifos, "--exec-id", "x3", "e2e-exec", "sh", "-c", 'tty; for i in $(seq 100); do s=$(stty size); test "$s" = "17 91" && break; sleep 0.05; done; echo "size $s"; exit 4'];
    const script = `stty rows 17 cols 91 && exec ${cmd.map((a) => `'${a.replaceAll("'", `'"'"'`)}'`).join(" ")}`;
    // script's stdin stays open (a pipe nobody writes to): at EOF script would send its
    // terminal's EOF character, which ctr, raw, forwards into the exec's pty, where it is echoed
    // (as ^@) before the output whenever it arrives first.
    const tty = Bun.spawn(["script", "-qec", script, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const ttyTimer = setTimeout(() => tty.kill(9), 60_000);
    const [ttyText] = await Promise.all([new Response(tty.stdout).text(), tty.exited]);
    clearTimeout(ttyTimer);
    tty.stdin.end();
    // Both ptys (the exec's, then script's) turn \n into \r\n.
    const ttyOut = ttyText.replaceAll("\r", "");
    expect(ttyOut).toMatch(/^\/dev\/pts\/\d+\n/);
    expect(ttyOut).toContain("size 17 91\n");
    expect(tty.exitCode).toBe(4);

    const sleeper = Bun.spawn(["ctr", "--address", sock, "--namespace", NS, "task", "exec", "--fifo-dir", fifos, "--exec-id", "x4", "e2e-exec", "sleep", "100"], { stdio: ["ignore", "pipe", "pipe"] });
    let ps = "";
    const end = Date.now() + 10_000;
    while (!/x4/.test(ps) && Date.now() < end) {
      await Bun.sleep(50);
      ps = ctr(["task", "ps", "e2e-exec"]).stdout;
    }
    expect(ps).toMatch(/ExecID:x4/);
    expect(ctr(["task", "kill", "--exec-id", "x4", "-s", "SIGKILL", "e2e-exec"]).code).toBe(0);
    expect(await sleeper.exited).toBe(137);

    expect(ctr(["task", "kill", "-s", "SIGKILL", "e2e-exec"]).code).toBe(0);
    const stopped = Date.now() + 10_000;
    while (!/STOPPED/.test(ctr(["tasks", "ls"]).stdout) && Date.now() < stopped) await Bun.sleep(50);
    expect(ctr(["tasks", "delete", "e2e-exec"]).code).toBe(0);
    expect(ctr(["containers", "delete", "e2e-exec"]).code).toBe(0);
    await expectNothingLeft("e2e-exec");
  }, 120_000);

  // containerd 1.6's ctr has no `task update`; Update is tested over ttrpc in task.test.ts.
  test("ctr task pause/resume and metrics", async () => {
    const run = ctr(["run", "--null-io", "-d", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-ctl", "sleep", "100"]);
    expect([run.stderr, run.code]).toEqual(["", 0]);
    expect(ctr(["task", "pause", "e2e-ctl"]).code).toBe(0);
    expect(ctr(["tasks", "ls"]).stdout).toMatch(/e2e-ctl\s+\d+\s+PAUSED/);
    expect(ctr(["task", "resume", "e2e-ctl"]).code).toBe(0);
    expect(ctr(["tasks", "ls"]).stdout).toMatch(/e2e-ctl\s+\d+\s+RUNNING/);

    const metrics = ctr(["task", "metrics", "e2e-ctl"]);
    expect([metrics.stderr, metrics.code]).toEqual(["", 0]);
    const table = Object.fromEntries(metrics.stdout.split("\n").slice(1).filter(Boolean).map((l) => l.trim().split(/\s+/, 2)));
    expect(Number(table["memory.limit_in_bytes"])).toBeGreaterThan(0);
    expect(Number(table["memory.usage_in_bytes"])).toBeGreaterThan(0);
    expect(Number(table["pids.current"])).toBeGreaterThanOrEqual(1);
    expect(Number(table["cpuacct.usage"])).toBeGreaterThan(0);

    expect(ctr(["task", "kill", "-s", "SIGKILL", "e2e-ctl"]).code).toBe(0);
    const stopped = Date.now() + 10_000;
    while (!/STOPPED/.test(ctr(["tasks", "ls"]).stdout) && Date.now() < stopped) await Bun.sleep(50);
    expect(ctr(["tasks", "delete", "e2e-ctl"]).code).toBe(0);
    expect(ctr(["containers", "delete", "e2e-ctl"]).code).toBe(0);
    await expectNothingLeft("e2e-ctl");
  }, 120_000);

  test("a detached task is listed as running, killed, and deleted", async () => {
    expect(ctr(["run", "--fifo-dir", fifos, "-d", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-detach", "sleep", "100"]).code).toBe(0);
    expect(ctr(["tasks", "ls"]).stdout).toMatch(/e2e-detach\s+\d+\s+RUNNING/);
    expect(ctr(["tasks", "kill", "-s", "SIGKILL", "e2e-detach"]).code).toBe(0);
    const end = Date.now() + 10_000;
    while (!/STOPPED/.test(ctr(["tasks", "ls"]).stdout) && Date.now() < end) await Bun.sleep(50);
    expect(ctr(["tasks", "ls"]).stdout).toMatch(/e2e-detach\s+\d+\s+STOPPED/);
    expect(ctr(["tasks", "delete", "e2e-detach"]).code).toBe(0);
    expect(ctr(["containers", "delete", "e2e-detach"]).code).toBe(0);
    await expectNothingLeft("e2e-detach");
  }, 60_000);

  test("events: containerd hears TaskCreate, Start, ExecAdded, ExecStarted, Paused, Resumed, OOM, Exit and Delete from the shim, in order, each exit once (ctr events)", async () => {
    const watcher = Bun.spawn(["ctr", "--address", sock, "events"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    let text = "";
    const reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of watcher.stdout) text += decoder.decode(chunk);
    })();
    try {
      // Subscribed once containerd's own /containers/create of a probe shows up.
      expect(ctr(["containers", "create", IMAGE, "e2e-ev-probe"]).code).toBe(0);
      const subscribed = Date.now() + 10_000;
      while (!text.includes("/containers/create") && Date.now() < subscribed) await Bun.sleep(20);
      expect(text).toContain("/containers/create");
      expect(ctr(["containers", "delete", "e2e-ev-probe"]).code).toBe(0);

      const run = ctr(["run", "--fifo-dir", fifos, "--rm", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-ev-run", "sh", "-c", "exit 3"]);
      expect([run.stderr, run.code]).toEqual(["", 3]);

      const d = ctr(["run", "--null-io", "-d", "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-ev-exec", "sleep", "100"]);
      expect([d.stderr, d.code]).toEqual(["", 0]);
      const exec = ctr(["task", "exec", "--fifo-dir", fifos, "--exec-id", "x1", "e2e-ev-exec", "sh", "-c", "exit 5"]);
      expect([exec.stderr, exec.code]).toEqual(["", 5]);
      expect(ctr(["task", "pause", "e2e-ev-exec"]).code).toBe(0);
      expect(ctr(["task", "resume", "e2e-ev-exec"]).code).toBe(0);
      expect(ctr(["task", "kill", "-s", "SIGKILL", "e2e-ev-exec"]).code).toBe(0);
      const stopped = Date.now() + 10_000;
      while (!/e2e-ev-exec\s+\d+\s+STOPPED/.test(ctr(["tasks", "ls"]).stdout) && Date.now() < stopped) await Bun.sleep(50);
      expect(ctr(["tasks", "delete", "e2e-ev-exec"]).code).toBe(0);
      expect(ctr(["containers", "delete", "e2e-ev-exec"]).code).toBe(0);

      // 32 MiB of memory and a 64 MiB buffer to fill: the kernel's OOM killer ends it.
      const oom = ctr(["run", "--null-io", "--rm", "--memory-limit", String(32 << 20), "--runtime", "io.containerd.tsrun.v2", IMAGE, "e2e-ev-oom", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
      expect(oom.code).toBe(137);

      // The last TaskDelete may still be on its way.
      const end = Date.now() + 10_000;
      while (!/\/tasks\/delete \{"container_id":"e2e-ev-oom"/.test(text) && Date.now() < end) await Bun.sleep(50);
    } finally {
      watcher.kill();
      await watcher.exited;
      await reader;
    }
    // (ctr events names our socket too: it is gone before this looks for leftover processes.)
    for (const id of ["e2e-ev-run", "e2e-ev-exec", "e2e-ev-oom"]) await expectNothingLeft(id);
    // "<Go time: 4 words> <namespace> <topic> <event JSON>"
    const events = text
      .split("\n")
      .map((l) => /^\S+ \S+ \S+ \S+ (\S+) (\/tasks\/\S+) (\{.*\})$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null && m[1] === NS)
      .map((m) => ({ topic: m[2]!, e: JSON.parse(m[3]!) as Record<string, unknown> }));
    const of = (id: string) => events.filter((x) => x.e.container_id === id).map((x) => (x.topic === "/tasks/exit" ? `exit ${x.e.id} ${x.e.exit_status ?? 0}` : x.topic.slice("/tasks/".length)));

    expect(of("e2e-ev-run")).toEqual(["create", "start", "exit e2e-ev-run 3", "delete"]);
    expect(of("e2e-ev-exec")).toEqual(["create", "start", "exec-added", "exec-started", "exit x1 5", "paused", "resumed", "exit e2e-ev-exec 137", "delete"]);
    const oomSeq = of("e2e-ev-oom");
    // One OOM event or more (the kernel may report several), all before the exit.
    expect(oomSeq.filter((t) => t !== "oom")).toEqual(["create", "start", "exit e2e-ev-oom 137", "delete"]);
    expect(oomSeq.slice(2, oomSeq.indexOf("exit e2e-ev-oom 137")).every((t) => t === "oom")).toBe(true);
    expect(oomSeq.filter((t) => t === "oom").length).toBeGreaterThanOrEqual(1);

    // The payloads: pids, the bundle, the exec id, exit times.
    const create = events.find((x) => x.topic === "/tasks/create" && x.e.container_id === "e2e-ev-run")!.e;
    const start = events.find((x) => x.topic === "/tasks/start" && x.e.container_id === "e2e-ev-run")!.e;
    expect(create.bundle).toBe(join(dir, "state/io.containerd.runtime.v2.task", NS, "e2e-ev-run"));
    expect((create.rootfs as unknown[]).length).toBeGreaterThan(0);
    expect(create.pid).toBeGreaterThan(0);
    expect(start.pid).toBe(create.pid);
    const execStarted = events.find((x) => x.topic === "/tasks/exec-started")!.e;
    expect([execStarted.container_id, execStarted.exec_id]).toEqual(["e2e-ev-exec", "x1"]);
    expect(execStarted.pid).toBeGreaterThan(0);
    const exit = events.find((x) => x.topic === "/tasks/exit" && x.e.id === "x1")!.e;
    expect(exit.pid).toBe(execStarted.pid);
    expect(typeof exit.exited_at).toBe("string");
  }, 120_000);

  test("events through the publish binary (`containerd publish`, used when there is no TTRPC_ADDRESS) reach ctr events too", async () => {
    const watcher = Bun.spawn(["ctr", "--address", sock, "events"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    let text = "";
    const reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of watcher.stdout) text += decoder.decode(chunk);
    })();
    const logs: string[] = [];
    try {
      // Subscribed once containerd's own /containers/create of a probe shows up.
      expect(ctr(["containers", "create", IMAGE, "e2e-pub-probe"]).code).toBe(0);
      const subscribed = Date.now() + 10_000;
      while (!text.includes("/containers/create") && Date.now() < subscribed) await Bun.sleep(20);
      expect(ctr(["containers", "delete", "e2e-pub-probe"]).code).toBe(0);
      const containerd = Bun.spawnSync(["sh", "-c", "command -v containerd"]).stdout.toString().trim();
      const p = new Publisher({ namespace: NS, transport: new BinaryTransport(containerd, sock), log: (l) => logs.push(l) });
      p.publish("/tasks/paused", { containerId: "e2e-pub" });
      p.publish("/tasks/exit", { containerId: "e2e-pub", id: "e2e-pub", pid: 42, exitStatus: 7, exitedAt: { seconds: 1_700_000_000, nanos: 0 } });
      await p.flush(20_000);
      const end = Date.now() + 10_000;
      while (!text.includes('"container_id":"e2e-pub","id"') && Date.now() < end) await Bun.sleep(20);
    } finally {
      watcher.kill();
      await watcher.exited;
      await reader;
    }
    expect(logs).toEqual([]);
    const lines = text.split("\n").filter((l) => l.includes('"e2e-pub"'));
    expect(lines.map((l) => l.split(" ").slice(4).join(" "))).toEqual([
      `${NS} /tasks/paused {"container_id":"e2e-pub"}`,
      `${NS} /tasks/exit {"container_id":"e2e-pub","id":"e2e-pub","pid":42,"exit_status":7,"exited_at":"2023-11-14T22:13:20Z"}`,
    ]);
  }, 60_000);
});
