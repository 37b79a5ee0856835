// Image containers with a monitor (src/monitor), end to end as root: `run --image -d` returns
// while the container runs on, its output is in a CRI log that `tsrun logs` reads (while it runs
// and after, --tail, --since, -f), an interactive shell is driven through a pty (typed, echoed,
// detached with ctrl-p ctrl-q, attached again, resized, exited with a status), `container ls`
// lists them, `delete` removes each with its monitor, and a monitor killed with -9 leaves a
// container that is reaped and removed like any other. TSRUN_NET=none (.env.test): no network.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repo, tsrun, TSRUN } from "@tsrun/runtime/test/helpers.ts";
import { CriLineWriter, parseRecord, rfc3339Nano } from "../src/monitor/cri.ts";
import { DetachMatcher, parseDetachKeys } from "../src/monitor/attach.ts";
import { parseSince } from "../src/cli/commands/logs.ts";

// Removed by this file's afterAll, after its containers (their mounts are under it).
const work = mkdtempSync(join(tmpdir(), "tsrun-monitor-"));
const imageRoot = join(work, "images");
const stateRoot = join(work, "state");
const ir = ["--image-root", imageRoot];
const t = (args: string[], stdin?: string) => tsrun(["--root", stateRoot, ...args], stdin === undefined ? {} : { stdin });
const bundleOf = (id: string) => join(imageRoot, "bundles", id);
const CRI_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z (stdout|stderr) [PF] /;

function monitorPids(): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      if (cmd.includes("__monitor") && cmd.includes(stateRoot)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((mp) => mp.startsWith(dir));
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !ok(); await Bun.sleep(50)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

/** Nothing of a container is left: no runtime state, no bundle (layer, log), no monitor, no mount. */
function expectGone(id: string): void {
  expect(existsSync(join(stateRoot, id))).toBe(false);
  expect(existsSync(bundleOf(id))).toBe(false);
  expect(monitorPids()).toEqual([]);
  expect(mountsUnder(bundleOf(id))).toEqual([]);
}

/** A command under script(1), which gives it a pty: what we write is typed, what it prints is read. */
class Pty {
  out = "";
  proc: ReturnType<typeof Bun.spawn>;
  constructor(cmd: string) {
    const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    this.proc = proc;
    void (async () => {
      for await (const c of proc.stdout as ReadableStream<Uint8Array>) this.out += new TextDecoder().decode(c);
    })();
  }
  type(text: string): void {
    const w = this.proc.stdin as import("bun").FileSink;
    w.write(text);
    w.flush();
  }
  async expect(re: RegExp, ms = 10_000): Promise<void> {
    await until(`${re} in ${JSON.stringify(this.out)}`, () => re.test(this.out), ms);
  }
}

beforeAll(() => {
  const image = join(work, "busybox.tar");
  const r = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), image, "localhost/busybox:1"], { stderr: "pipe" });
  if (!r.success) throw new Error(`make-image.sh failed: ${r.stderr}`);
  const imp = t(["image", "import", ...ir, image]);
  if (imp.code !== 0) throw new Error(imp.stderr);
});

afterAll(() => {
  if (existsSync(stateRoot)) for (const id of readdirSync(stateRoot, { withFileTypes: true }).filter((d) => d.isDirectory())) t(["delete", "--force", id.name]);
  for (const mp of mountsUnder(work).reverse()) Bun.spawnSync(["umount", "-l", mp]);
  rmSync(work, { recursive: true, force: true });
});

describe("CRI log format", () => {
  test("records: RFC3339Nano UTC time, stream, F for a line, P for each 16 KiB part of a longer one, F at the end for a last line without newline", () => {
    const lines: string[] = [];
    const w = new CriLineWriter("stdout", (b) => lines.push(b.toString()), 8);
    w.write(Buffer.from("ab\ncd"));
    w.write(Buffer.from("ef\n0123456789abcdefXY\nlast"));
    w.end();
    const parsed = lines.map((l) => {
      expect(l).toMatch(CRI_LINE);
      expect(l.endsWith("\n")).toBe(true);
      const r = parseRecord(Buffer.from(l.slice(0, -1)))!;
      return `${r.stream} ${r.partial ? "P" : "F"} ${r.text}`;
    });
    expect(parsed).toEqual(["stdout F ab", "stdout F cdef", "stdout P 01234567", "stdout P 89abcdef", "stdout F XY", "stdout F last"]);
    expect(rfc3339Nano(1_700_000_000_123_400_000n)).toBe("2023-11-14T22:13:20.1234Z");
    expect(rfc3339Nano(1_700_000_000_000_000_000n)).toBe("2023-11-14T22:13:20Z");
    expect(parseRecord(Buffer.from("2023-11-14T22:13:20.1234Z stderr F x"))!.ns).toBe(1_700_000_000_123_400_000n);
  });

  test("--since takes Docker's forms; detach keys are Docker's", () => {
    expect(parseSince("2023-11-14T22:13:20.5Z")).toBe(1_700_000_000_500_000_000n);
    expect(parseSince("1700000000.25")).toBe(1_700_000_000_250_000_000n);
    expect(parseSince("1m30s", 1_700_000_090_000)).toBe(1_700_000_000_000_000_000n);
    expect(() => parseSince("yesterday")).toThrow(/invalid --since "yesterday"/);
    expect(parseDetachKeys("ctrl-p,ctrl-q")).toEqual([16, 17]);
    expect(parseDetachKeys("ctrl-@,ctrl-_,x")).toEqual([0, 31, 120]);
    expect(() => parseDetachKeys("ctrl-1")).toThrow(/invalid detach keys/);
    const m = new DetachMatcher([16, 17]);
    expect(m.feed(Buffer.from("a\x10b"))).toEqual({ pass: Buffer.from("a\x10b"), detach: false });
    expect(m.feed(Buffer.from("c\x10"))).toEqual({ pass: Buffer.from("c"), detach: false });
    expect(m.feed(Buffer.from("\x11rest"))).toEqual({ pass: Buffer.from(""), detach: true });
  });
});

describe("run --image -d, logs", () => {
  test("-d prints the id and returns while the container runs; logs while it runs and after it exits, in the exact CRI format", async () => {
    const script = "echo one; echo err-one >&2; sleep 1.5; echo two; printf 'no newline'; exit 3";
    const started = Date.now();
    const r = t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "d1", "--", "sh", "-c", script]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("d1\n");
    expect(Date.now() - started).toBeLessThan(1500);
    expect(monitorPids()).toHaveLength(1);
    await until("the first lines", () => t(["logs", "d1"]).stdout === "one\n");
    const running = t(["logs", "d1"]);
    expect(running.stderr).toBe("err-one\n");
    expect(t(["container", "ls"]).stdout).toMatch(/\nd1\s+localhost\/busybox:1\s+"sh -c 'echo one; ec…"\s+.* ago\s+Up /);
    // -f from a running container ends when it exits, with everything it wrote.
    const f = t(["logs", "-f", "d1"]);
    expect(f.code).toBe(0);
    expect(f.stdout).toBe("one\ntwo\nno newline\n");
    expect(f.stderr).toBe("err-one\n");
    await until("the monitor's exit", () => monitorPids().length === 0);
    const log = readFileSync(join(bundleOf("d1"), "container.log"), "utf8");
    const lines = log.trimEnd().split("\n");
    for (const l of lines) expect(l).toMatch(CRI_LINE);
    expect(lines.map((l) => l.replace(CRI_LINE, (m) => m.replace(/^\S+ /, "")))).toEqual(
      expect.arrayContaining(["stdout F one", "stderr F err-one", "stdout F two", "stdout F no newline"]),
    );
    expect(lines).toHaveLength(4);
    // timestamps go forward
    const times = lines.map((l) => parseRecord(Buffer.from(l))!.ns);
    expect([...times].sort((a, b) => (a < b ? -1 : 1))).toEqual(times);
    expect(t(["logs", "d1"]).stdout).toBe("one\ntwo\nno newline\n");
    expect(t(["logs", "--tail", "2", "d1"]).stdout).toBe("two\nno newline\n");
    expect(t(["logs", "--tail", "0", "d1"]).stdout).toBe("");
    const ts = t(["logs", "-t", "--tail", "1", "d1"]).stdout;
    expect(ts).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z no newline\n$/);
    // --since: a time between the first and the second output, and durations.
    const second = lines.find((l) => l.includes("stdout F two"))!.split(" ")[0]!;
    expect(t(["logs", "--since", second, "d1"]).stdout).toBe("two\nno newline\n");
    expect(t(["logs", "--since", "1h", "d1"]).stdout).toBe("one\ntwo\nno newline\n");
    expect(t(["logs", "--since", "2999-01-01T00:00:00Z", "d1"]).stdout).toBe("");
    // Kept after it exits, with its status, until deleted.
    expect(t(["container", "ls"]).stdout).not.toContain("d1");
    expect(t(["container", "ls", "-a"]).stdout).toMatch(/\nd1\s+.*Exited \(3\) .* ago/);
    expect(JSON.parse(t(["container", "ls", "-a", "--format", "json"]).stdout)).toEqual([expect.objectContaining({ id: "d1", image: "localhost/busybox:1", state: "stopped", exitCode: 3, ports: "" })]);
    const del = t(["delete", "d1"]);
    expect(del.stderr).toBe("");
    expect(del.code).toBe(0);
    expectGone("d1");
    expect(t(["logs", "d1"]).stderr).toMatch(/^tsrun: container d1 has no log/);
  }, 30_000);

  test("a line longer than 16 KiB is logged in P records and shown whole", async () => {
    const r = t(["run", "--image", "localhost/busybox:1", ...ir, "long", "--", "sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo; echo after"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${"x".repeat(40000)}\nafter\n`);
    const lines = readFileSync(join(bundleOf("long"), "container.log"), "utf8").trimEnd().split("\n");
    expect(lines.map((l) => l.split(" ")[2])).toEqual(["P", "P", "F", "F"]);
    expect(lines.map((l) => l.length - l.indexOf(" ", l.indexOf(" ", l.indexOf(" ") + 1) + 1) - 1)).toEqual([16384, 16384, 40000 - 32768, 5]);
    expect(t(["logs", "long"]).stdout).toBe(`${"x".repeat(40000)}\nafter\n`);
    expect(t(["logs", "--tail", "1", "long"]).stdout).toBe("after\n");
    expect(t(["delete", "long"]).code).toBe(0);
    expectGone("long");
  });

  test("in the foreground: output here and in the log, the exit status is the container's (128+n for a signal), --rm leaves nothing, -i feeds stdin", async () => {
    const r = t(["run", "--image", "localhost/busybox:1", ...ir, "fg", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    expect(r).toEqual({ code: 7, stdout: "out\n", stderr: "err\n" });
    expect(t(["logs", "fg"])).toEqual({ code: 0, stdout: "out\n", stderr: "err\n" });
    expect(t(["delete", "fg"]).code).toBe(0);
    expectGone("fg");
    // Killed by a signal (the init, pid 1 of its namespace, takes no signal it does not handle but SIGKILL from outside).
    const fg = Bun.spawn([TSRUN, "--root", stateRoot, "run", "--image", "localhost/busybox:1", ...ir, "--rm", "sig", "--", "sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    await until("sig running", () => t(["state", "sig"]).stdout.includes('"running"'));
    expect(t(["kill", "sig", "KILL"]).code).toBe(0);
    expect(await fg.exited).toBe(137);
    expectGone("sig");
    const i = t(["run", "--image", "localhost/busybox:1", ...ir, "--rm", "-i", "in", "--", "sh", "-c", "tr a-z A-Z; echo eof"], "piped input\n");
    expect(i).toEqual({ code: 0, stdout: "PIPED INPUT\neof\n", stderr: "" });
    expectGone("in");
  });

  test("--rm with -d: the monitor removes the container when it exits; signals to a foreground tsrun go to the container", async () => {
    expect(t(["run", "--image", "localhost/busybox:1", ...ir, "--rm", "-d", "rmd", "--", "sh", "-c", "sleep 0.5; echo bye"]).stdout).toBe("rmd\n");
    expect(existsSync(bundleOf("rmd"))).toBe(true);
    await until("its removal", () => !existsSync(bundleOf("rmd")) && monitorPids().length === 0);
    expectGone("rmd");
    // pid 1 of its namespace gets only the signals it handles: this one exits 42 on SIGTERM.
    const fg = Bun.spawn([TSRUN, "--root", stateRoot, "run", "--image", "localhost/busybox:1", ...ir, "--rm", "trap", "--", "sh", "-c", 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done'], { stdout: "pipe", stderr: "ignore" });
    await until("the trap set", () => existsSync(join(bundleOf("trap"), "container.log")) && readFileSync(join(bundleOf("trap"), "container.log"), "utf8").includes("ready"));
    fg.kill("SIGTERM");
    expect(await fg.exited).toBe(42);
    expect(await new Response(fg.stdout).text()).toBe("ready\ngot TERM\n");
    expectGone("trap");
  });

  test("bad input: one line, nothing left", () => {
    expect(t(["logs", "nosuch"]).stderr).toMatch(/^tsrun: container nosuch has no log.*\n$/);
    expect(t(["attach", "nosuch"]).stderr).toBe("tsrun: container nosuch does not exist\n");
    const bad = t(["run", "--image", "localhost/busybox:1", ...ir, "--detach-keys", "ctrl-1", "bk"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^tsrun: invalid detach keys "ctrl-1"/);
    const missing = t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "np", "--", "/no/such/program"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\/no\/such\/program/);
    expectGone("np");
    expectGone("bk");
  });
});

describe("attach, -it, detach keys", () => {
  test("an interactive shell through a pty: typed and echoed, detached with ctrl-p ctrl-q, attached again, resized, exited with its status", async () => {
    const run = new Pty(`stty rows 33 cols 99; ${TSRUN} --root ${stateRoot} run --image localhost/busybox:1 ${ir.join(" ")} -it sh1 -- sh`);
    await run.expect(/# /);
    run.type("echo $((6*7)); stty size\n");
    // the echo of what was typed, then its output
    await run.expect(/echo \$\(\(6\*7\)\); stty size\r*\n42\r*\n33 99\r*\n/);
    run.type("\x10\x11");
    expect(await run.proc.exited).toBe(0);
    expect(run.out).toContain("detached from sh1");
    expect(t(["container", "ls"]).stdout).toMatch(/\nsh1\s+localhost\/busybox:1\s+"sh"\s+.*Up /);
    expect(monitorPids()).toHaveLength(1);
    // Again, from a terminal of another size that changes while attached (SIGWINCH).
    const again = new Pty(`stty rows 20 cols 70; (sleep 1; stty rows 44 cols 111 </dev/tty) & ${TSRUN} --root ${stateRoot} attach ${ir.join(" ")} sh1`);
    await Bun.sleep(1500);
    again.type("stty size; exit 5\n");
    expect(await again.proc.exited).toBe(5);
    expect(again.out).toMatch(/44 111/);
    expect(t(["container", "ls", "-a"]).stdout).toMatch(/\nsh1\s+.*Exited \(5\)/);
    // The session is in its log.
    const logs = t(["logs", "sh1"]).stdout;
    expect(logs).toContain("42\r\n33 99\r\n");
    expect(logs).toContain("44 111");
    expect(t(["attach", "sh1"]).stderr).toMatch(/^tsrun: cannot attach to container sh1: it has exited/);
    expect(t(["delete", "sh1"]).code).toBe(0);
    expectGone("sh1");
  }, 30_000);

  test("-d -i then attach without a terminal: piped stdin in, output out, the exit status", async () => {
    expect(t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "-i", "cat1", "--", "sh", "-c", "while read l; do echo got $l; done; exit 9"]).stdout).toBe("cat1\n");
    const a = t(["attach", "cat1"], "a\nb\n");
    expect(a).toEqual({ code: 9, stdout: "got a\ngot b\n", stderr: "" });
    expect(t(["delete", "cat1"]).code).toBe(0);
    expectGone("cat1");
  });
});

describe("the monitor's end", () => {
  test("delete --force of a running container ends its monitor and leaves nothing", () => {
    expect(t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "s1", "--", "sleep", "250"]).code).toBe(0);
    expect(monitorPids()).toHaveLength(1);
    expect(t(["delete", "s1"]).stderr).toMatch(/not stopped: running/);
    expect(monitorPids()).toHaveLength(1);
    const del = t(["delete", "--force", "s1"]);
    expect(del).toEqual({ code: 0, stdout: "", stderr: "" });
    expectGone("s1");
  });

  test("kill -9 of the monitor: the container runs on (its writes fail: it is pid 1 of its namespace, SIGPIPE does not kill it), is listed so, and delete --force removes it; one that exits is reaped by the host and listed with an unknown status", async () => {
    expect(t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "k1", "--", "sh", "-c", "echo before; sleep 1.5; echo after; exit 3"]).code).toBe(0);
    const [m] = monitorPids();
    await until("the first line", () => t(["logs", "k1"]).stdout === "before\n");
    process.kill(m!, "SIGKILL");
    await until("the container's end", () => JSON.parse(t(["state", "k1"]).stdout).status === "stopped", 10_000);
    expect(t(["container", "ls", "-a"]).stdout).toMatch(/\nk1\s+.*Exited \(status unknown: its monitor was killed\)/);
    expect(t(["logs", "k1"]).stdout).toBe("before\n");
    expect(t(["delete", "k1"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expectGone("k1");
    // A container that does not write runs on without its monitor until delete --force.
    expect(t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "k2", "--", "sh", "-c", "while :; do echo tick; sleep 0.1; done"]).code).toBe(0);
    process.kill(monitorPids()[0]!, "SIGKILL");
    await until("the monitor's end", () => monitorPids().length === 0);
    expect(t(["container", "ls"]).stdout).toMatch(/\nk2\s+.*Up .*\(its monitor is gone: no log, no attach\)/);
    expect(t(["attach", "k2"]).stderr).toMatch(/^tsrun: container k2 is not running: nothing to attach to/);
    expect(t(["delete", "--force", "k2"]).code).toBe(0);
    expectGone("k2");
  }, 30_000);
});
