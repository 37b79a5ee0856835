// containerd restarted while containers run on containerd-shim-tsrun-v2: containerd 1.6 on a
// private socket and state is killed (SIGKILL, as a crash) and started again on the same root,
// state and socket. The shim and its containers live on; the new containerd finds the tasks
// again through the bundles' addresses, lists them with their state, execs in them, kills and
// deletes them, hears their exits, and a container that exited while containerd was away has
// its exit status kept for it. Needs root, containerd, ctr, umoci and jq, and the built binaries.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_ROOT } from "../src/task/runtime.ts";
import { cmdline, testContainerd } from "./private-containerd.ts";
import { alive, until } from "../../../test/wait.ts";

const NS = `tsrun-restart-${process.pid}`;
const IMAGE = "localhost/tsrun-restart:latest";
const RUNTIME = ["--runtime", "io.containerd.tsrun.v2"];

const { canRun, ctd, dir, sock, fifos, bundles, ctr } = testContainerd(NS, "/tmp/tsrun-rst-");
const taskList = () => ctd!.taskList();

/** The shim daemons of our containerd (those with a -socket argument). */
function daemons(): number[] {
  return ctd!.processesUsing(sock).filter((pid) => cmdline(pid).includes("-socket"));
}

/** `ctr events` from now on; stop() ends it and returns what it printed. */
function watchEvents(): { stop: () => Promise<string>; seen: () => string } {
  const watcher = Bun.spawn(["ctr", "--address", sock, "events"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  ctd!.ignored.add(watcher.pid);
  let text = "";
  const reader = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of watcher.stdout) text += decoder.decode(chunk);
  })();
  return {
    seen: () => text,
    stop: async () => {
      watcher.kill();
      await watcher.exited;
      await reader;
      return text;
    },
  };
}

/** A container that exits with `code` on SIGTERM (sh ignores TERM as pid 1 unless trapped). */
const trapping = (id: string, code: number) => ctr(["run", "--null-io", "-d", ...RUNTIME, IMAGE, id, "sh", "-c", `trap 'exit ${code}' TERM; sleep 1000 & wait`]);

test("requirements: root, dist/containerd-shim-tsrun-v2, dist/tsrun, containerd, ctr, umoci and jq (scripts/setup.sh installs them)", () => {
  expect(canRun).toBe(true);
});

describe("containerd restarted while containers run on the tsrun shim (root)", () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    await ctd!.start(IMAGE);
  }, 120_000);

  afterAll(async () => {
    for (const id of ["r-a", "r-b"]) {
      ctr(["tasks", "kill", "-s", "SIGKILL", id]);
      ctr(["tasks", "delete", id]);
      ctr(["containers", "delete", id]);
    }
    await ctd?.stop();
  }, 60_000);

  test("the tasks stay alive, are listed RUNNING again, exec, exit (one while containerd was away) and delete; nothing is left", async () => {
    for (const [id, code] of [["r-a", 3], ["r-b", 4]] as const) {
      const r = trapping(id, code);
      expect([r.stderr, r.code]).toEqual(["", 0]);
    }
    const before = taskList();
    const inits = { a: before.get("r-a")!.pid, b: before.get("r-b")!.pid };
    expect(before.get("r-a")?.status).toBe("RUNNING");
    expect(before.get("r-b")?.status).toBe("RUNNING");
    const shims = daemons();
    expect(shims.length).toBeGreaterThan(0);

    // containerd dies; the shim and the containers do not.
    const old = ctd!.pid;
    await ctd!.restart("SIGKILL");
    expect(ctd!.pid).not.toBe(old);
    expect(alive(inits.a) && alive(inits.b)).toBe(true);
    for (const pid of shims) expect(alive(pid)).toBe(true);

    const after = taskList();
    expect(after.get("r-a")).toEqual({ pid: inits.a, status: "RUNNING" });
    expect(after.get("r-b")).toEqual({ pid: inits.b, status: "RUNNING" });

    // containerd away again, and r-b ends meanwhile: its exit is kept for the next containerd.
    const old2 = ctd!.pid;
    process.kill(old2, "SIGKILL");
    await until("containerd to die", () => !alive(old2));
    process.kill(inits.b, "SIGTERM");
    await until("r-b's init to exit", () => !alive(inits.b));
    await ctd!.restart("SIGKILL");
    expect(alive(inits.a)).toBe(true);
    await until("r-b to be listed STOPPED", () => taskList().get("r-b")?.status === "STOPPED");
    expect(taskList().get("r-a")).toEqual({ pid: inits.a, status: "RUNNING" });
    // ctr tasks delete warns of a nonzero exit status (from the shim's Delete).
    const delB = ctr(["tasks", "delete", "r-b"]);
    expect([delB.stderr, delB.code]).toEqual([expect.stringContaining('msg="task r-b exit with non-zero exit code 4"'), 0]);
    expect(ctr(["containers", "delete", "r-b"]).code).toBe(0);

    // The new containerd execs in r-a and hears the shim's events (the shim reconnected).
    const events = watchEvents();
    try {
      const subscribed = Date.now() + 10_000;
      for (let i = 0; !events.seen().includes("/containers/create") && Date.now() < subscribed; i++) {
        expect(ctr(["containers", "create", IMAGE, `r-probe-${i}`]).code).toBe(0);
        expect(ctr(["containers", "delete", `r-probe-${i}`]).code).toBe(0);
        await Bun.sleep(200);
      }
      expect(events.seen()).toContain("/containers/create");
      const exec = ctr(["task", "exec", "--fifo-dir", fifos, "--exec-id", "x1", "r-a", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 5"]);
      expect([exec.stdout, exec.stderr, exec.code]).toEqual(["sh -c trap 'exit 3' TERM; sleep 1000 & wait ", "", 5]);
      expect(ctr(["tasks", "kill", "-s", "SIGTERM", "r-a"]).code).toBe(0);
      await until("r-a to stop", () => taskList().get("r-a")?.status === "STOPPED");
      const delA = ctr(["tasks", "delete", "r-a"]);
      expect([delA.stderr, delA.code]).toEqual([expect.stringContaining('msg="task r-a exit with non-zero exit code 3"'), 0]);
      expect(ctr(["containers", "delete", "r-a"]).code).toBe(0);
      await until("r-a's delete event", () => events.seen().includes('/tasks/delete {"container_id":"r-a"'));
    } finally {
      await events.stop();
    }
    const exits = events
      .seen()
      .split("\n")
      .filter((l) => l.includes(` ${NS} /tasks/exit `))
      .map((l) => JSON.parse(l.slice(l.indexOf("{"))) as { container_id: string; id: string; exit_status?: number });
    expect(exits.filter((e) => e.container_id === "r-a").map((e) => [e.id, e.exit_status ?? 0])).toEqual([
      ["x1", 5],
      ["r-a", 3],
    ]);
    // r-b's exit, sent while no containerd listened, is retried by the shim's publisher and may
    // reach the new containerd before or after the watcher subscribed: once at most, and right.
    expect(exits.filter((e) => e.container_id === "r-b").map((e) => [e.id, e.exit_status ?? 0])).toEqual(exits.some((e) => e.container_id === "r-b") ? [["r-b", 4]] : []);

    // Nothing is left: the shim goes after the last Delete, with its mounts and state.
    await until("the shims to go", () => ctd!.processesUsing(sock).length === 0);
    expect(ctd!.mountedUnder(dir)).toEqual([]);
    expect(existsSync(join(DEFAULT_ROOT, NS)) ? readdirSync(join(DEFAULT_ROOT, NS)) : []).toEqual([]);
    expect(existsSync(bundles) ? readdirSync(bundles) : []).toEqual([]);
    expect(ctr(["containers", "ls", "-q"]).stdout.trim()).toBe("");
  }, 180_000);
});
