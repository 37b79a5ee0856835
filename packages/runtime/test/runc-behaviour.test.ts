// Behaviour differences found by Docker, runc's bats suite and runtime-tools' validation suite
// (issue 9): each test runs a real container and pins down what runc 1.1.5 does.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { testEnv } from "./containers.ts";
import { TSRUN } from "./helpers.ts";

const env = testEnv();

/** The init's cgroup directory for a v1 controller, from /proc/<pid>/cgroup. */
function cgroupDir(pid: number, controller: string): string {
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const [, names, path] = line.split(":");
    if (names?.split(",").includes(controller)) return join("/sys/fs/cgroup", controller, path!);
  }
  throw new Error(`no ${controller} cgroup for ${pid}`);
}

function readOr(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

describe("resources that runc reads as unset", () => {
  test("Docker's zeros (blockIO.weight 0, cpu.shares 0, …) create and run, and nothing is written for them", () => {
    const id = `zeros-${process.pid}`;
    const b = env.bundle(id, (s) => {
      s.process.args = ["sleep", "30"];
      s.linux.resources = {
        ...s.linux.resources,
        // This host has no CFQ/BFQ (no blkio.weight) and no net_cls: a value written or judged
        // here would refuse the create.
        blockIO: { weight: 0, leafWeight: 0, weightDevice: [{ major: 1, minor: 3, weight: 0, leafWeight: 0 }] },
        cpu: { shares: 0, quota: 0, period: 0, realtimeRuntime: 0, realtimePeriod: 0, cpus: "", mems: "" },
        memory: { limit: 0, reservation: 0, swap: 0, kernelTCP: 0, disableOOMKiller: false },
        network: { classID: 0 },
      };
    });
    const r = env.tsrun(["run", "-d", "--bundle", b, id]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const refs: string[] = [];
    try {
      const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid as number;
      // A fresh sibling cgroup has the defaults the container's must still have.
      const files: Record<string, string[]> = {
        cpu: ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.rt_runtime_us", "cpu.rt_period_us"],
        memory: ["memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes", "memory.swappiness", "memory.oom_control"],
        blkio: ["blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"],
      };
      let compared = 0;
      for (const [ctl, names] of Object.entries(files)) {
        const dir = cgroupDir(pid, ctl);
        const ref = join(dirname(dir), `ref-${process.pid}`);
        mkdirSync(ref);
        refs.push(ref);
        for (const f of names) {
          const want = readOr(join(ref, f));
          if (want === undefined) continue;
          expect(`${f}: ${readOr(join(dir, f))}`).toBe(`${f}: ${want}`);
          compared++;
        }
      }
      expect(compared).toBeGreaterThanOrEqual(8);
      // The cpuset is the parent's, as for any container.
      const cpuset = cgroupDir(pid, "cpuset");
      expect(readOr(join(cpuset, "cpuset.cpus"))).toBe(readOr(join(dirname(cpuset), "cpuset.cpus")));
    } finally {
      for (const ref of refs) if (existsSync(ref)) rmdirSync(ref);
      expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
    }
  });
});

describe("hooks", () => {
  test("hooks run in the bundle as runc's do; createContainer in the rootfs and startContainer in process.cwd, where runc runs those", () => {
    const out = join(env.dir, "hook-cwd");
    mkdirSync(out);
    const hook = (kind: string, to = out) => ({ path: "/bin/sh", args: ["sh", "-c", `pwd > ${to}/${kind}`] });
    const b = env.bundle("hookcwd", (s) => {
      s.root.readonly = false;
      s.process.cwd = "/var";
      s.hooks = {
        prestart: [hook("prestart")],
        createRuntime: [hook("createRuntime")],
        // Before pivot_root: the host's paths are still there.
        createContainer: [hook("createContainer")],
        // Inside the container: the rootfs's /bin/sh, writing into the rootfs.
        startContainer: [hook("startContainer", "")],
        poststart: [hook("poststart")],
        poststop: [hook("poststop")],
      };
    });
    const r = env.tsrun(["run", "--bundle", b, "hookcwd"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const got = (f: string) => readOr(f);
    expect({
      prestart: got(`${out}/prestart`),
      createRuntime: got(`${out}/createRuntime`),
      createContainer: got(`${out}/createContainer`),
      startContainer: got(`${b}/rootfs/startContainer`),
      poststart: got(`${out}/poststart`),
      poststop: got(`${out}/poststop`),
    }).toEqual({ prestart: b, createRuntime: b, createContainer: `${b}/rootfs`, startContainer: "/var", poststart: b, poststop: b });
  });
});

describe("rootfsPropagation", () => {
  test("unbindable: the container runs and its / is unbindable (runc 1.1.5 fails with EINVAL)", () => {
    const b = env.bundle("unbindable", (s) => {
      s.linux.rootfsPropagation = "unbindable";
      s.process.args = ["awk", '$5 == "/"', "/proc/self/mountinfo"];
    });
    const r = env.tsrun(["run", "--bundle", b, "unbindable"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.split(" - ")[0]).toContain(" unbindable");
  });
});

describe("cgroups", () => {
  test("a container put into a non-empty cgroup runs, with runc's warning", () => {
    const path = `/tsrun-test-shared-${process.pid}`;
    const b = env.bundle("shared", (s) => {
      s.linux.cgroupsPath = path;
      s.process.args = ["sleep", "30"];
    });
    try {
      const first = env.tsrun(["run", "-d", "--bundle", b, "shared1"]);
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      const second = env.tsrun(["create", "--bundle", b, "shared2"]);
      expect(second.stderr).toBe("tsrun: warning: container's cgroup is not empty: 1 process(es) found\n");
      expect(second.code).toBe(0);
    } finally {
      env.tsrun(["delete", "--force", "shared2"]);
      env.tsrun(["delete", "--force", "shared1"]);
      for (const ctl of ["cpu", "memory", "pids", "devices", "freezer", "blkio", "cpuset", "cpuacct", "systemd", "unified"]) {
        const dir = `/sys/fs/cgroup/${ctl}${path}`;
        if (existsSync(dir)) rmdirSync(dir);
      }
    }
  });
});

describe("run in the foreground", () => {
  test("no zombie child of tsrun while its container runs (the warm-up executor is reaped)", async () => {
    const b = env.bundle("zombie", (s) => (s.process.args = ["sleep", "5"]));
    const proc = Bun.spawn([TSRUN, "--root", env.root, "run", "--bundle", b, "zombie"], { stdout: "ignore", stderr: "pipe" });
    try {
      let status = "";
      for (let i = 0; i < 200 && status !== "running"; i++) {
        await Bun.sleep(10);
        const r = env.tsrun(["state", "zombie"]);
        status = r.code === 0 ? JSON.parse(r.stdout).status : "";
      }
      expect(status).toBe("running");
      // Children of tsrun (the init is one, alive) and their state letter.
      const children = readdirSync("/proc")
        .filter((p) => /^\d+$/.test(p))
        .flatMap((p) => {
          const stat = readOr(`/proc/${p}/stat`);
          const m = stat && /^\d+ \((.*)\) (\S) (\d+)/.exec(stat);
          return m && Number(m[3]) === proc.pid ? [`${m[1]} ${m[2]}`] : [];
        });
      expect(children.length).toBeGreaterThan(0);
      expect(children.filter((c) => c.endsWith(" Z"))).toEqual([]);
    } finally {
      env.tsrun(["kill", "zombie", "KILL"]);
      await proc.exited;
      env.tsrun(["delete", "--force", "zombie"]);
    }
  });
});

describe("messages", () => {
  test("a failed unshare names its flags (not 0x10000000) and says why a chroot refuses it", () => {
    const b = env.bundle("chrooted", (s) => {
      s.linux.namespaces.push({ type: "user" });
      s.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
    // The whole host under a chroot of its own, in a private mount namespace that goes with it.
    const jail = join(env.dir, "jail");
    mkdirSync(jail);
    const r = Bun.spawnSync(
      ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --rbind / "$1" && exec chroot "$1" "$2" --root "$3" run --bundle "$4" chrooted', "sh", jail, TSRUN, env.root, b],
      { stdout: "pipe", stderr: "pipe" },
    );
    expect(r.stderr.toString()).toBe(
      "tsrun: container chrooted: unshare CLONE_NEWUSER failed: EPERM: Operation not permitted; the kernel refuses a new user namespace to a process in a chroot (run tsrun outside it)\n",
    );
    expect(r.exitCode).toBe(1);
    expect(existsSync(join(env.root, "chrooted"))).toBe(false);
  });

  test("a createContainer hook that exits non-zero: its exit status and output, no errno", () => {
    const b = env.bundle("hookfail", (s) => (s.hooks = { createContainer: [{ path: "/bin/sh", args: ["sh", "-c", "echo not today >&2; exit 3"] }] }));
    const r = env.tsrun(["run", "--bundle", b, "hookfail"]);
    expect(r.stderr).toBe("tsrun: container hookfail: error running hook #0 (createContainer /bin/sh): exit status 3: not today\n");
    expect(r.code).toBe(1);
  });
});

describe("process.cwd", () => {
  test("a cwd only root may enter works for a non-root user: entered before the user change (runc's \"create can chdir if runc has access\")", () => {
    const b = env.bundle("rootcwd", (s) => {
      s.process.cwd = "/root";
      s.process.user = { uid: 42, gid: 42 };
      s.process.args = ["sh", "-c", "pwd; ls . 2>&1 >/dev/null | grep -c 'Permission denied'"];
    });
    chmodSync(join(b, "rootfs/root"), 0o700);
    const r = env.tsrun(["run", "--bundle", b, "rootcwd"]);
    expect(r.stderr).toBe("");
    // In it, but as uid 42 still not allowed to read it.
    expect(r.stdout).toBe("/root\n1\n");
    expect(r.code).toBe(0);
  });

  test("a seccomp profile that denies getcwd (no_new_privs off: loaded before the user change) never hits tsrun's own cwd check", () => {
    const b = env.bundle("nogetcwd", (s) => {
      s.process.noNewPrivileges = false;
      s.process.args = ["true"];
      s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["getcwd"], action: "SCMP_ACT_ERRNO" }] };
    });
    const r = env.tsrun(["run", "--bundle", b, "nogetcwd"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });
});
