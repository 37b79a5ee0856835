// The image commands of the tsrun binary, end to end as root: an image built here (no network)
// is imported, listed, inspected, run (with and without --rm), committed, bundled and removed;
// bad input fails with one line and leaves nothing (no mount, no rootfs dir, no state).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repo, tempDir, tsrun } from "@tsrun/runtime/test/helpers.ts";

const work = tempDir("tsrun-cli-image-");
const imageRoot = join(work, "images");
const stateRoot = join(work, "state");
const image = join(work, "busybox.tar");
const ir = ["--image-root", imageRoot];
const t = (args: string[]) => tsrun(["--root", stateRoot, ...args]);

function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((mp) => mp.startsWith(dir));
}

beforeAll(() => {
  const r = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), image, "localhost/busybox:1"], { stderr: "pipe" });
  if (!r.success) throw new Error(`make-image.sh failed: ${r.stderr}`);
});

afterAll(() => {
  for (const mp of mountsUnder(work).reverse()) Bun.spawnSync(["umount", "-l", mp]);
});

describe("tsrun image …", () => {
  test("import, then ls in table, json and quiet form", () => {
    const imp = t(["image", "import", ...ir, image]);
    expect(imp.stderr).toBe("");
    expect(imp.code).toBe(0);
    expect(imp.stdout).toMatch(/^imported localhost\/busybox:1 sha256:[0-9a-f]{64}\n$/);
    const table = t(["image", "ls", ...ir]);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+DIGEST\s+SIZE\s+PLATFORM\s+CREATED$/);
    expect(table.stdout).toContain("localhost/busybox:1");
    const json = JSON.parse(t(["image", "ls", ...ir, "--format", "json"]).stdout);
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ name: "localhost/busybox:1", platform: "linux/amd64" });
    expect(json[0].size).toBeGreaterThan(500_000);
    expect(t(["image", "ls", ...ir, "-q"]).stdout).toBe("localhost/busybox:1\n");
  });

  test("inspect shows manifest, config and layers; an unknown image is one line, exit 1", () => {
    const r = t(["image", "inspect", ...ir, "localhost/busybox:1"]);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.config.config.Cmd).toEqual(["sh"]);
    expect(d.layers).toHaveLength(1);
    expect(d.layers[0].diffId).toMatch(/^sha256:/);
    const bad = t(["image", "inspect", ...ir, "localhost/nope:1"]);
    expect(bad.code).toBe(1);
    // the store searched is named: a user of several stores knows which one said no
    expect(bad.stderr.trim()).toBe(`tsrun: image localhost/nope:1 not found in the image store ${imageRoot} (see \`tsrun image ls\`; --image-root or $TSRUN_IMAGE_ROOT choose another store)`);
  });

  test("run --image --rm: the image's program with ARGS, Docker's seccomp profile; nothing left after", () => {
    const r = t(["run", "--image", "localhost/busybox:1", ...ir, "--rm", "-e", "GREETING=hi", "-w", "/tmp", "r1", "--", "sh", "-c", 'echo "$GREETING from $(pwd)"; grep ^Seccomp: /proc/self/status; exit 3']);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hi from /tmp\nSeccomp:\t2\n");
    expect(r.code).toBe(3);
    expect(readdirSync(join(imageRoot, "containers"))).toEqual([]);
    expect(existsSync(join(imageRoot, "bundles", "r1"))).toBe(false);
    expect(mountsUnder(imageRoot)).toEqual([]);
    expect(existsSync(join(stateRoot, "r1"))).toBe(false);
  });

  test("run --image without --rm keeps the bundle; commit turns its changes into an image", () => {
    const r = t(["run", "--image", "localhost/busybox:1", ...ir, "c1", "--", "sh", "-c", "echo changed > /etc/motd; rm /bin/vi"]);
    expect(r.code).toBe(0);
    // kept after it exited, as docker keeps it, and listed
    expect(t(["list", "-q"]).stdout).toContain("c1\n");
    expect(JSON.parse(t(["state", "c1"]).stdout).status).toBe("stopped");
    const c = t(["commit", ...ir, "-m", "motd", "--cmd", '["cat","/etc/motd"]', "c1", "localhost/busybox:motd"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/^localhost\/busybox:motd sha256:[0-9a-f]{64}\n$/);
    // The new image runs its new Cmd and sees both changes, the deletion as a whiteout.
    const r2 = t(["run", "--image", "localhost/busybox:motd", ...ir, "--rm", "c2"]);
    expect(r2.stdout).toBe("changed\n");
    const r3 = t(["run", "--image", "localhost/busybox:motd", ...ir, "--rm", "c3", "--", "ls", "/bin/vi"]);
    expect(r3.code).not.toBe(0);
    const d = JSON.parse(t(["image", "inspect", ...ir, "localhost/busybox:motd"]).stdout);
    expect(d.layers).toHaveLength(2);
    expect(d.config.history.at(-1).comment).toBe("motd");
    // one command removes it with its writable layer and mounts
    expect(t(["delete", "c1"]).code).toBe(0);
    expect(existsSync(join(imageRoot, "bundles", "c1"))).toBe(false);
    expect(existsSync(join(stateRoot, "c1"))).toBe(false);
    expect(t(["image", "rm", ...ir, "localhost/busybox:motd"]).stdout).toBe("removed localhost/busybox:motd\n");
    expect(mountsUnder(imageRoot)).toEqual([]);
  });

  test("bundle --image makes a bundle tsrun run --bundle runs; --remove takes it away", () => {
    const dir = join(work, "b1");
    const b = t(["bundle", ...ir, "--image", "localhost/busybox:1", "-u", "nobody", dir, "--", "id", "-u"]);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(cfg.process.args).toEqual(["id", "-u"]);
    expect(cfg.process.user.uid).toBe(65534);
    expect(mountsUnder(dir)).toEqual([join(dir, "rootfs")]);
    const r = t(["run", "--bundle", dir, "b1"]);
    expect(r.stdout).toBe("65534\n");
    // a second bundle into the same directory says how to free it
    const again = t(["bundle", ...ir, "--image", "localhost/busybox:1", dir]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`tsrun: bundle directory ${dir} is not empty: give a new or empty directory, or remove a bundle tsrun made there with \`tsrun bundle --remove ${dir}\``);
    expect(t(["bundle", ...ir, "--remove", dir]).code).toBe(0);
    expect(existsSync(dir)).toBe(false);
    expect(mountsUnder(dir)).toEqual([]);
  });

  test("bundles of two directories with the same name do not collide; one removed with rm -rf is pruned", () => {
    const a = join(work, "ba", "bundle");
    const b = join(work, "bb", "bundle");
    for (const d of [a, b]) {
      const r = t(["bundle", ...ir, "--image", "localhost/busybox:1", d]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
    expect(mountsUnder(join(work, "ba"))).toEqual([join(a, "rootfs")]);
    expect(mountsUnder(join(work, "bb"))).toEqual([join(b, "rootfs")]);
    // removed the careless way: its rootfs stays mounted (rm cannot remove a mount point)
    Bun.spawnSync(["rm", "-rf", a]);
    expect(existsSync(join(a, "config.json"))).toBe(false);
    // the same directory can be bundled again: the stale rootfs is freed first
    expect(t(["bundle", ...ir, "--image", "localhost/busybox:1", a]).code).toBe(0);
    Bun.spawnSync(["rm", "-rf", a]);
    const pruned = t(["bundle", ...ir, "--prune"]);
    expect(pruned.stderr).toBe("");
    expect(pruned.stdout).toBe(`removed ${a}\n`);
    expect(mountsUnder(join(work, "ba"))).toEqual([]);
    expect(existsSync(a)).toBe(false);
    expect(t(["bundle", ...ir, "--remove", b]).code).toBe(0);
    expect(mountsUnder(join(work, "bb"))).toEqual([]);
  });

  test("bundle --remove of a bundle a container runs from is refused; --force kills it first", () => {
    const dir = join(work, "busy");
    expect(t(["bundle", ...ir, "--image", "localhost/busybox:1", dir, "--", "sleep", "300"]).code).toBe(0);
    expect(t(["run", "-d", "--bundle", dir, "busy"]).code).toBe(0);
    const pid = JSON.parse(t(["state", "busy"]).stdout).pid;
    const refused = t(["bundle", ...ir, "--remove", dir]);
    expect(refused.stderr).toBe(
      `tsrun: bundle ${dir} is in use by a running container (pid ${pid}): delete the container first (\`tsrun delete --force ID\`), or remove with --force to kill its processes\n`,
    );
    expect(refused.code).toBe(1);
    // the container's / is intact
    expect(readdirSync(join(dir, "rootfs"))).toContain("bin");
    expect(t(["bundle", ...ir, "--remove", "--force", dir]).code).toBe(0);
    expect(existsSync(dir)).toBe(false);
    expect(mountsUnder(dir)).toEqual([]);
    expect(JSON.parse(t(["state", "busy"]).stdout).status).toBe("stopped");
    expect(t(["delete", "busy"]).code).toBe(0);
  });

  test("bad input: one line, exit 1, nothing left", () => {
    const cases: [string[], RegExp][] = [
      [["run", "--image", "localhost/none:1", ...ir, "x1"], /^tsrun: image localhost\/none:1 not found/],
      [["run", "-e", "A=1", "x3"], /--env needs --image/],
      [["run", "--image", "localhost/busybox:1", ...ir, "-u", "nosuchuser", "x4"], /nosuchuser/],
      [["run", "--image", "localhost/busybox:1", ...ir, "--rm", "x5", "--", "/no/such/program"], /\/no\/such\/program/],
      [["image", "import", ...ir, join(work, "missing.tar")], /missing\.tar/],
      [["image", "frobnicate"], /unknown command "image frobnicate"/],
    ];
    for (const [args, msg] of cases) {
      const r = t(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(readdirSync(join(imageRoot, "containers"))).toEqual([]);
    expect(existsSync(join(imageRoot, "bundles")) ? readdirSync(join(imageRoot, "bundles")) : []).toEqual([]);
    expect(mountsUnder(imageRoot)).toEqual([]);
    expect(existsSync(stateRoot) ? readdirSync(stateRoot) : []).toEqual([]);
  });

  test("image with no subcommand lists the image commands", () => {
    const r = t(["image"]);
    expect(r.stdout).toContain("tsrun image import");
    expect(r.stdout).toContain("tsrun image pull");
  });
});
