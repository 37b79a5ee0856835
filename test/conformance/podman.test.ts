// tsrun behind podman: Debian's podman (4.3) with `--runtime dist/tsrun` (an absolute path, as
// podman takes a runtime it has no config entry for), on a private root, runroot, tmpdir, config
// and network config dir, the cgroupfs cgroup manager under a cgroup parent of its own, events to
// a file, no network (nothing is fetched: the busybox image of scripts/make-image.sh is loaded
// from its OCI archive). Runs, execs and stops containers, then leaves nothing: podman's storage
// mounts (overlay and the private bind mount of its graph root), conmon and its exit command,
// the cgroup parent, the directory.
//
// This machine's root has no CAP_SYS_RESOURCE, and podman as root raises every container's
// RLIMIT_NOFILE and RLIMIT_NPROC to 1048576 and more, which no runtime can set here (crun fails
// the same way): the private containers.conf lowers them by default_ulimits.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "../wait.ts";

const repo = join(import.meta.dir, "../..");
const TSRUN = process.env.TSRUN ?? join(repo, "dist/tsrun");
const IMAGE = "localhost/busybox:latest";
const has = (cmd: string) => Bun.which(cmd) !== null;
const canRun = process.getuid?.() === 0 && existsSync(TSRUN) && ["podman", "conmon", "umoci", "jq"].every(has);
const work = canRun ? mkdtempSync("/tmp/tsrun-podman-") : "";
const CGROUP_PARENT = `tsrun-podman-${process.pid}`;
// statfs f_type of a cgroup v1 and a cgroup v2 hierarchy.
const CGROUP_FS = [0x27e0eb, 0x63677270];

// The user's config dir and temporary files in the work directory too: podman makes
// $XDG_CONFIG_HOME/containers/podman, and `load` unpacks the archive under $TMPDIR (/var/tmp by default).
const env = {
  ...process.env,
  CONTAINERS_CONF: join(work, "containers.conf"),
  CONTAINERS_STORAGE_CONF: join(work, "storage.conf"),
  XDG_CONFIG_HOME: join(work, "config"),
  TMPDIR: join(work, "tmp"),
};
const GLOBAL = ["--root", join(work, "root"), "--runroot", join(work, "run"), "--tmpdir", join(work, "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", TSRUN];
const RUN = ["run", "--network", "none", "--cgroup-parent", `/${CGROUP_PARENT}`];

function podman(args: string[], timeoutMs = 60_000): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync(["podman", ...GLOBAL, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Processes whose command line names the work directory: conmon, podman's exit command (`container cleanup`). */
function processesOfWork(): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, "utf8").includes(work);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const mountsUnder = (dir: string) =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p === dir || p.startsWith(`${dir}/`));

/** The cgroup parent's directories, one per hierarchy (podman makes it in every directory under /sys/fs/cgroup, mounted or not). */
const parents = () => readdirSync("/sys/fs/cgroup").map((h) => join("/sys/fs/cgroup", h, CGROUP_PARENT)).filter((d) => existsSync(d));

test("requirements: root, dist/tsrun, podman, conmon, umoci and jq (scripts/setup.sh installs them)", () => {
  expect(canRun).toBe(true);
});

describe("podman --runtime dist/tsrun (root)", () => {
  beforeAll(async () => {
    if (!canRun) throw new Error("requirements missing (see the requirements test)");
    for (const d of ["tmp", "net"]) mkdirSync(join(work, d));
    writeFileSync(
      join(work, "containers.conf"),
      [
        "[containers]",
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        'netns = "none"',
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${join(work, "events.log")}"`,
        // File locks live in tmp_dir; the default (shm) would leave /dev/shm/libpod_lock.
        'lock_type = "file"',
        `tmp_dir = "${join(work, "tmp")}"`,
        `image_copy_tmp_dir = "${join(work, "tmp")}"`,
        `static_dir = "${join(work, "root/libpod")}"`,
        `volume_path = "${join(work, "root/volumes")}"`,
        "[network]",
        // Not /etc/cni/net.d, where podman would leave its cni.lock.
        `network_config_dir = "${join(work, "net")}"`,
        "",
      ].join("\n"),
    );
    writeFileSync(join(work, "storage.conf"), `[storage]\ndriver = "overlay"\ngraphroot = "${join(work, "root")}"\nrunroot = "${join(work, "run")}"\n`);
    const tar = join(work, "image.tar");
    const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), tar, IMAGE], { stdout: "ignore", stderr: "pipe" });
    expect(mk.stderr.toString()).not.toContain("rror");
    expect(mk.exitCode).toBe(0);
    const load = podman(["load", "-i", tar]);
    expect([load.stderr.includes("rror") ? load.stderr : "", load.code]).toEqual(["", 0]);
    expect(load.stdout).toContain(`Loaded image: ${IMAGE}`);
  }, 120_000);

  afterAll(async () => {
    if (!canRun) return;
    for (const id of podman(["ps", "-aq"]).stdout.split("\n").filter(Boolean)) podman(["rm", "-f", "-t", "0", id]);
    // Images, containers and storage, with the storage driver's own mounts.
    podman(["system", "reset", "--force"]);
    for (const pid of processesOfWork()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone.
      }
    }
    for (const m of mountsUnder(work).reverse()) Bun.spawnSync(["umount", "-l", m]);
    rmSync(work, { recursive: true, force: true });
    // In a mounted hierarchy the cgroups go by rmdir, deepest first; in a plain directory of the
    // /sys/fs/cgroup tmpfs (a controller this kernel does not mount) podman wrote a tasks file.
    for (const d of parents()) {
      if (!CGROUP_FS.includes(statfsSync(d).type)) {
        rmSync(d, { recursive: true, force: true });
        continue;
      }
      const dirs: string[] = [];
      const walk = (p: string): void => {
        for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) walk(join(p, e.name));
        dirs.push(p);
      };
      walk(d);
      for (const p of dirs) rmdirSync(p);
    }
  }, 60_000);

  test("podman run --rm busybox echo hi: the output, the exit status, nothing of the container left", async () => {
    const r = podman([...RUN, "--rm", IMAGE, "echo", "hi"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hi\n");
    expect(r.code).toBe(0);
    const failing = podman([...RUN, "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    expect([failing.stdout, failing.stderr, failing.code]).toEqual(["out\n", "err\n", 7]);
    expect(podman(["ps", "-aq"]).stdout).toBe("");
    // conmon and the exit command it started (`podman container cleanup`) end after the run.
    await until("conmon and podman's clean-up to end", () => processesOfWork().length === 0);
    // Only the storage driver's own bind mount of its directory stays while podman's storage does.
    expect(mountsUnder(work).filter((m) => m !== join(work, "root/overlay"))).toEqual([]);
    expect(readdirSync(join(work, "root/overlay-containers")).filter((n) => n !== "containers.json" && n !== "containers.lock")).toEqual([]);
  }, 60_000);

  test("the container runs under tsrun in the cgroup parent; podman exec, its exit status, stop", async () => {
    const run = podman([...RUN, "-d", "--name", "pm-exec", IMAGE, "sleep", "300"]);
    expect([run.stderr, run.code]).toEqual(["", 0]);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const pid = Number(podman(["inspect", "-f", "{{.State.Pid}}", id]).stdout.trim());
    try {
      expect(pid).toBeGreaterThan(0);
      expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\u0000300\u0000");
      expect(readFileSync(`/proc/${pid}/cgroup`, "utf8")).toMatch(new RegExp(`^\\d+:pids:/${CGROUP_PARENT}/libpod-${id}$`, "m"));
      expect(podman(["inspect", "-f", "{{.OCIRuntime}}", id]).stdout.trim()).toBe(TSRUN);

      const e = podman(["exec", id, "sh", "-c", "echo exec ok; cat /proc/1/cmdline | tr '\\0' ' '"]);
      expect([e.stdout, e.stderr, e.code]).toEqual(["exec ok\nsleep 300 ", "", 0]);
      expect(podman(["exec", id, "sh", "-c", "exit 5"]).code).toBe(5);
      const tty = podman(["exec", "-t", id, "tty"]);
      expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);

      // sleep as pid 1 ignores SIGTERM: podman stop kills it after the timeout.
      expect(podman(["stop", "-t", "1", id]).code).toBe(0);
      expect(podman(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id]).stdout.trim()).toBe("exited 137");
    } finally {
      podman(["rm", "-f", "-t", "0", id]);
    }
    expect(podman(["ps", "-aq"]).stdout).toBe("");
    await until("conmon and podman's clean-up to end", () => processesOfWork().length === 0);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  }, 60_000);
});
