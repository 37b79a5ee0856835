// Differences from runc found by runc's bats suite that live in the plan and the executor: each
// test runs a real container with tsrun and, where Debian's runc is installed, the same bundle
// with runc, and pins down the behaviour both share.
import { describe, expect, test } from "bun:test";
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { leftovers, testEnv } from "./containers.ts";
import { hasCommand, TSRUN, type Run } from "./helpers.ts";

const env = testEnv();
const haveRunc = hasCommand("runc");
const runcRoot = join(env.dir, "runc-state");

/** Runs Debian's runc; output to files, not pipes, which a created container would hold open. */
function runc(args: string[]): Run {
  const [out, err] = [join(env.dir, "runc.out"), join(env.dir, "runc.err")];
  const [o, e] = [openSync(out, "w+"), openSync(err, "w+")];
  try {
    const r = Bun.spawnSync(["runc", "--root", runcRoot, ...args], { stdin: "ignore", stdout: o, stderr: e });
    return { code: r.exitCode ?? -1, stdout: readFileSync(out, "utf8"), stderr: readFileSync(err, "utf8") };
  } finally {
    closeSync(o);
    closeSync(e);
  }
}

/** Runs a command on a fresh pty (util-linux script): `run` with a terminal wants one. */
function onPty(argv: string[]): Run {
  const cmd = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const r = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe("terminal", () => {
  test("the pty is owned by the process user, its group stays tty (5), as with runc", () => {
    expect(hasCommand("script")).toBe(true); // bsdutils, installed by scripts/setup.sh
    const b = env.bundle("ttyowner", (s) => {
      s.process.terminal = true;
      s.process.user = { uid: 1000, gid: 100 };
      s.process.args = ["sh", "-c", "stat -c owner=%u:%g $(tty)"];
    });
    const r = onPty([TSRUN, "--root", env.root, "run", "--bundle", b, "ttyowner"]);
    expect(r.stdout).toContain("owner=1000:5");
    expect(r.code).toBe(0);
    if (haveRunc) expect(onPty(["runc", "--root", runcRoot, "run", "--bundle", b, "ttyowner"]).stdout).toContain("owner=1000:5");
  });
});

describe("proc and sysfs mount points", () => {
  for (const [dir, fstype] of [
    ["proc", "proc"],
    ["sys", "sysfs"],
  ] as const) {
    test(`a rootfs whose /${dir} is a symlink is refused (${fstype} is not mounted where it points), as with runc`, () => {
      const id = `link${dir}`;
      const b = env.bundle(id);
      rmSync(join(b, "rootfs", dir), { recursive: true, force: true });
      mkdirSync(join(b, "rootfs", "elsewhere"));
      symlinkSync("elsewhere", join(b, "rootfs", dir));
      const r = env.tsrun(["run", "--bundle", b, id]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`filesystem "${fstype}" must be mounted on ordinary directory: /${dir} is a symlink`);
      expect(leftovers(env, id, b)).toEqual([]);
      if (haveRunc) {
        const rr = runc(["run", "--bundle", b, id]);
        expect(rr.code).toBe(1);
        expect(rr.stderr).toContain(`filesystem \\"${fstype}\\" must be mounted on ordinary directory`);
      }
    });
  }
});

describe("--no-pivot", () => {
  test("the host's proc is not left for a nested user namespace to mount a fresh procfs, as with runc", () => {
    const b = env.bundle("nopivotproc", (s) => {
      s.process.args = ["unshare", "-mrpf", "sh", "-c", "mount -t proc none /proc && echo mounted"];
      s.process.capabilities.bounding.push("CAP_SETFCAP");
      s.process.capabilities.permitted.push("CAP_SETFCAP");
    });
    const r = env.tsrun(["run", "--no-pivot", "--bundle", b, "nopivotproc"]);
    expect(r.stdout).not.toContain("mounted");
    expect(r.stderr).toContain("mount: permission denied");
    expect(r.code).toBe(1);
    if (haveRunc) expect(runc(["run", "--no-pivot", "--bundle", b, "nopivotproc"]).stderr).toContain("mount: permission denied");
  });

  test("a --no-pivot container still runs, with the container's own proc and sysfs, and the host keeps its", () => {
    const hostMounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => / - (proc|sysfs) /.test(l)).length;
    const before = hostMounts();
    const b = env.bundle("nopivot", (s) => {
      s.process.args = ["sh", "-c", "read pid rest < /proc/self/stat; echo pid=$pid sys=$(ls /sys/kernel | grep -c .)"];
    });
    const r = env.tsrun(["run", "--no-pivot", "--bundle", b, "nopivot"]);
    expect(r.stderr).toBe("");
    // its own proc (pid namespace) and sysfs
    expect(r.stdout).toMatch(/^pid=1 sys=[1-9]\d*\n$/);
    expect(r.code).toBe(0);
    expect(hostMounts()).toBe(before);
  });
});

describe("start reports what failed in the init", () => {
  const failingHook = (s: any) => {
    s.hooks = { startContainer: [{ path: "/bin/sh", args: ["sh", "-c", "echo out; echo err >&2; exit 3"] }] };
  };

  test("a failing startContainer hook: start prints the hook, its exit status and its output (runc: error running hook #0)", () => {
    const b = env.bundle("hookfail", failingHook);
    expect(env.tsrun(["create", "--bundle", b, "hookfail"]).code).toBe(0);
    const r = env.tsrun(["start", "hookfail"]);
    expect(r.stderr).toContain("container hookfail: error running hook #0 (startContainer /bin/sh): exit status 3: out\nerr");
    expect(r.code).toBe(1);
    expect(JSON.parse(env.tsrun(["state", "hookfail"]).stdout).status).toBe("stopped");
    expect(env.tsrun(["delete", "hookfail"]).code).toBe(0);
    expect(leftovers(env, "hookfail", b)).toEqual([]);
    if (haveRunc) {
      expect(runc(["create", "--bundle", b, "hookfail"]).code).toBe(0);
      // runc 1.1 prints the same facts (and exits 0 nevertheless)
      expect(runc(["start", "hookfail"]).stderr).toMatch(/error running hook #0: .*exit status 3, stdout: out\n, stderr: err/);
      runc(["delete", "-f", "hookfail"]);
    }
  });

  test("run prints it too", () => {
    const b = env.bundle("hookfailrun", failingHook);
    const r = env.tsrun(["run", "--bundle", b, "hookfailrun"]);
    expect(r.stderr).toContain("container hookfailrun: error running hook #0 (startContainer /bin/sh): exit status 3: out\nerr");
    expect(r.code).not.toBe(0);
    expect(leftovers(env, "hookfailrun", b)).toEqual([]);
  });

  test("a program gone between create and start: start prints the exec's error", () => {
    const b = env.bundle("execgone", (s) => (s.process.args = ["/bin/gone"]));
    copyFileSync(join(b, "rootfs/bin/busybox"), join(b, "rootfs/bin/gone"));
    expect(env.tsrun(["create", "--bundle", b, "execgone"]).code).toBe(0);
    rmSync(join(b, "rootfs/bin/gone"));
    const r = env.tsrun(["start", "execgone"]);
    expect(r.stderr).toContain("container execgone: exec /bin/gone (searched PATH=");
    expect(r.stderr).toContain("ENOENT: No such file or directory");
    expect(r.code).toBe(1);
    expect(env.tsrun(["delete", "execgone"]).code).toBe(0);
  });
});
