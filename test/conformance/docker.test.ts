// tsrun behind Docker: Debian's dockerd (20.10) with tsrun as an added runtime, on its own
// socket, data and exec roots and cgroup parent, runs, execs, pauses, updates and stops
// containers of a locally made busybox image (no network). Everything dockerd made is removed
// after: its dirs, /run/docker when it was not there before, the cgroup parent.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shellSession } from "./pty.ts";

const repo = join(import.meta.dir, "../..");
const TSRUN = process.env.TSRUN ?? join(repo, "dist/tsrun");
const work = mkdtempSync(join(tmpdir(), "tsrun-docker-"));
const sock = join(work, "docker.sock");
const CGROUP_PARENT = `tsrun-docker-e2e-${process.pid}`;
const hadRunDocker = existsSync("/run/docker");
// dockerd's containerd puts the runc shim's sockets in /run/containerd/s.
const hadRunContainerd = existsSync("/run/containerd");
let daemon: ReturnType<typeof Bun.spawn> | undefined;

function docker(args: string[], opts: { stdin?: "ignore" } = {}): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync(["docker", "-H", `unix://${sock}`, ...args], { stdout: "pipe", stderr: "pipe", stdin: opts.stdin ?? "ignore" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

beforeAll(async () => {
  expect(Bun.which("dockerd")).not.toBeNull(); // docker.io, installed by scripts/setup.sh
  daemon = Bun.spawn(
    [
      "dockerd",
      "--host", `unix://${sock}`,
      "--data-root", join(work, "data"),
      "--exec-root", join(work, "exec"),
      "--pidfile", join(work, "docker.pid"),
      "--bridge", "none",
      "--iptables=false",
      "--ip-masq=false",
      "--userland-proxy=false",
      "--storage-driver", "vfs",
      "--cgroup-parent", CGROUP_PARENT,
      "--add-runtime", `tsrun=${TSRUN}`,
    ],
    { stdout: Bun.file(join(work, "dockerd.log")), stderr: Bun.file(join(work, "dockerd.log")) },
  );
  for (let i = 0; i < 300 && docker(["version"]).code !== 0; i++) await Bun.sleep(50);
  expect(docker(["version"]).code).toBe(0);
  // The image: the busybox root filesystem as an OCI layout, converted for `docker load`.
  const oci = join(work, "img.tar");
  const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), oci, "localhost/busybox:latest"], { stdout: "ignore", stderr: "pipe" });
  expect(mk.stderr.toString()).not.toContain("rror");
  expect(mk.exitCode).toBe(0);
  const cp = Bun.spawnSync(["skopeo", "copy", "-q", `oci-archive:${oci}:localhost/busybox:latest`, `docker-archive:${join(work, "docker.tar")}:localhost/busybox:latest`], { stderr: "pipe" });
  expect(cp.stderr.toString()).toBe("");
  expect(docker(["load", "-i", join(work, "docker.tar")]).code).toBe(0);
}, 60_000);

afterAll(async () => {
  if (daemon) {
    for (const id of docker(["ps", "-aq"]).stdout.split("\n").filter(Boolean)) docker(["rm", "-f", id]);
    daemon.kill("SIGTERM");
    await daemon.exited;
  }
  const mounts = readFileSync("/proc/self/mountinfo", "utf8");
  for (const line of mounts.split("\n").reverse()) {
    const point = line.split(" ")[4];
    if (point?.startsWith(work)) Bun.spawnSync(["umount", "-l", point]);
  }
  rmSync(work, { recursive: true, force: true });
  if (!hadRunDocker) rmSync("/run/docker", { recursive: true, force: true });
  if (!hadRunContainerd) removeEmptyDirs("/run/containerd/s", "/run/containerd");
  // The cgroup parent is at a hierarchy's root, or below tsrun's own cgroup where tsrun nests
  // containers (this machine's memory hierarchy).
  const own = new Map(readFileSync("/proc/self/cgroup", "utf8").trim().split("\n").map((l) => {
    const [, ctl, path] = l.split(":");
    return [ctl === "" ? "unified" : ctl!.replace(/^name=/, ""), path!] as const;
  }));
  for (const h of readdirSync("/sys/fs/cgroup")) {
    for (const d of [join("/sys/fs/cgroup", h, CGROUP_PARENT), join("/sys/fs/cgroup", h, own.get(h) ?? "/", CGROUP_PARENT)])
      if (existsSync(d)) rmdirSync(d);
  }
}, 60_000);

const RUN = ["run", "--runtime", "tsrun", "--network", "none"];

describe("docker with --runtime tsrun", () => {
  test("docker run: output, exit status, the container in its cgroup under the cgroup parent", () => {
    const r = docker([...RUN, "--rm", "localhost/busybox:latest", "sh", "-c", "echo hello from docker; grep pids /proc/self/cgroup; exit 3"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(new RegExp(`^hello from docker\\n\\d+:pids:/${CGROUP_PARENT}/[0-9a-f]{64}\\n$`));
    expect(r.code).toBe(3);
    // --rm: the container is gone once the run returns.
    expect(docker(["ps", "-aq"]).stdout).toBe("");
  });

  test("docker run -it on a terminal: the shell's prompt, a typed command's output, its exit status", async () => {
    const argv = ["docker", "-H", `unix://${sock}`, ...RUN, "-it", "--rm", "localhost/busybox:latest", "sh"];
    const session = await shellSession(argv, { rows: 21, cols: 77 }, "tty; stty size; echo typed-$((6 * 7))\n", /typed-42\n/, 9);
    expect(session.code).toBe(9);
    // The typed line comes back echoed by the container's terminal, then its output: the
    // terminal's name, the size the client passed on, the shell's arithmetic.
    expect(session.text).toContain("echo typed-$((6 * 7))\n");
    expect(session.text).toMatch(/\n\/dev\/pts\/\d+\n21 77\ntyped-42\n/);
    expect(docker(["ps", "-aq"]).stdout).toBe("");
  }, 60_000);

  test("docker exec, exec -t, top, pause and unpause, update, stop", () => {
    const id = docker([...RUN, "-d", "localhost/busybox:latest", "sleep", "300"]).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const e = docker(["exec", id, "sh", "-c", "echo exec ok; id -u; cat /proc/1/cmdline | tr '\\0' ' '"]);
    expect(e.stderr).toBe("");
    expect(e.stdout).toBe("exec ok\n0\nsleep 300 ");
    expect(docker(["exec", id, "sh", "-c", "exit 5"]).code).toBe(5);
    const tty = docker(["exec", "-t", id, "tty"]);
    expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
    expect(docker(["top", id]).stdout).toMatch(/sleep 300/);
    expect(docker(["pause", id]).code).toBe(0);
    expect(docker(["inspect", "-f", "{{.State.Status}}", id]).stdout.trim()).toBe("paused");
    expect(docker(["unpause", id]).code).toBe(0);
    expect(docker(["inspect", "-f", "{{.State.Status}}", id]).stdout.trim()).toBe("running");
    expect(docker(["update", "--memory", "64m", "--memory-swap", "128m", id]).code).toBe(0);
    const pid = Number(docker(["inspect", "-f", "{{.State.Pid}}", id]).stdout.trim());
    const mem = readFileSync(`/proc/${pid}/cgroup`, "utf8").match(/^\d+:memory:(.*)$/m)![1];
    expect(readFileSync(`/sys/fs/cgroup/memory${mem}/memory.limit_in_bytes`, "utf8").trim()).toBe(String(64 * 1024 * 1024));
    // sleep as pid 1 ignores SIGTERM: docker stop kills it after the timeout, as with runc
    expect(docker(["stop", "-t", "1", id]).code).toBe(0);
    expect(docker(["inspect", "-f", "{{.State.ExitCode}}", id]).stdout.trim()).toBe("137");
    expect(docker(["rm", id]).code).toBe(0);
  }, 30_000);
});

/** Removes each directory if it is empty (a socket another process still has would keep it). */
function removeEmptyDirs(...dirs: string[]): void {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch {
      // Missing, or not empty: left as it is.
    }
  }
}
