// A bundle made from an image, attacked by a second host user (the class of CVE-2021-41103): the
// image carries a setuid-root program; uid 65534 tries to run it through the bundle's rootfs, the
// store's unpacked snapshot and the container's upper dir, and must get EACCES everywhere, while
// root still runs a container from the bundle in which the setuid bit works. Runs the compiled
// binary as root, like cli-image.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repo, tempDir, tsrun } from "@tsrun/runtime/test/helpers.ts";

// Registered before tempDir's removal, so that it runs first: no mount is left under the dir.
afterAll(() => {
  for (const l of mountsUnder(work).reverse()) Bun.spawnSync(["umount", "-l", l.split(" ")[4]!]);
});
const work = tempDir("tsrun-bundle-access-");
const imageRoot = join(work, "images");
const stateRoot = join(work, "state");
const ir = ["--image-root", imageRoot];
const t = (args: string[]) => tsrun(["--root", stateRoot, ...args]);
const NOBODY = 65534;

function sh(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Runs `cmd` as uid/gid 65534 without supplementary groups: the other local user. */
function asNobody(cmd: string[]): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync(["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--", ...cmd], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** The other user can neither look at `path` nor execute it: both fail with EACCES. */
function unreachable(path: string): void {
  const st = asNobody(["stat", "-c", "%a", path]);
  expect({ path, code: st.code, denied: st.stderr.includes("Permission denied") }).toEqual({ path, code: 1, denied: true });
  // Through a shell: setpriv itself may open the program before it changes its ids.
  const ex = asNobody(["sh", "-c", 'exec "$0"', path]);
  expect({ path, stdout: ex.stdout, denied: ex.stderr.includes("Permission denied") }).toEqual({ path, stdout: "", denied: true });
}

const mode = (p: string) => statSync(p).mode & 0o7777;

function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => (l.split(" ")[4] ?? "").startsWith(dir));
}

/** Where the setuid program of the committed layer lies among the store's snapshots. */
function snapshotCopy(): string {
  const base = join(imageRoot, "snapshots", "sha256");
  const found = readdirSync(base)
    .map((hex) => join(base, hex, "fs", "bin", "euid"))
    .filter((p) => existsSync(p));
  expect(found).toHaveLength(1);
  return found[0]!;
}

beforeAll(() => {
  // The temp dir and the path to it are open, as /var/lib is: only the store's own modes may
  // stand between the other user and the image's files.
  chmodSync(work, 0o755);
  const image = join(work, "busybox.tar");
  sh(["bash", join(repo, "scripts/make-image.sh"), image, "localhost/busybox:1"]);
  // busybox drops set-id privileges for its applets, so the setuid program is a tiny C one that
  // prints its effective uid.
  writeFileSync(join(work, "euid.c"), '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("%d\\n", (int)geteuid()); return 0; }\n');
  sh(["gcc", "-static", "-O2", "-o", join(work, "euid"), join(work, "euid.c")]);
  expect(t(["image", "import", ...ir, image]).code).toBe(0);
  // The setuid-root program goes into an image layer through commit.
  const r = t(["run", "--image", "localhost/busybox:1", ...ir, "mk", "--", "true"]);
  expect(r.stderr).toBe("");
  const prog = join(imageRoot, "bundles", "mk", "rootfs", "bin", "euid");
  copyFileSync(join(work, "euid"), prog);
  chownSync(prog, 0, 0);
  chmodSync(prog, 0o4755);
  const c = t(["commit", ...ir, "mk", "localhost/suid:1"]);
  expect(c.stderr).toBe("");
  // kept after it exited, as docker keeps it: delete takes its bundle with it
  expect(t(["delete", "mk"]).code).toBe(0);
  expect(existsSync(join(imageRoot, "bundles", "mk"))).toBe(false);
  // A store as an older tsrun left it: every directory open to all.
  sh(["find", imageRoot, "-type", "d", "-exec", "chmod", "go+rx", "{}", "+"]);
});

describe("a bundle from an image against another local user", () => {
  const dir = join(work, "b1");

  test("bundle --image: the bundle, rootfs, snapshots and upper dir are out of reach of uid 65534", () => {
    const b = t(["bundle", ...ir, "--image", "localhost/suid:1", "--id", "b1", "-u", "nobody", dir, "--", "/bin/euid"]);
    expect(b.stderr).toBe("");
    expect(b.code).toBe(0);
    // A setuid file the container made: it lives in the upper dir.
    copyFileSync(join(work, "euid"), join(dir, "rootfs", "tmp", "euid"));
    chmodSync(join(dir, "rootfs", "tmp", "euid"), 0o4755);
    const upper = join(imageRoot, "containers", "b1", "upper");
    expect(existsSync(join(upper, "tmp", "euid"))).toBe(true);

    unreachable(join(dir, "rootfs", "bin", "euid"));
    unreachable(join(dir, "rootfs", "tmp", "euid"));
    unreachable(snapshotCopy());
    unreachable(join(upper, "tmp", "euid"));
    expect(asNobody(["ls", upper]).stderr).toContain("Permission denied");
    expect(mode(dir)).toBe(0o700);
    // The store opened by this version has been closed again, whatever the older one left.
    for (const d of ["", "content", "images", "snapshots", "containers", "bundles"]) {
      if (existsSync(join(imageRoot, d))) expect({ d, open: (mode(join(imageRoot, d)) & 0o077) !== 0 }).toEqual({ d, open: false });
    }
    // Root itself still sees the program, setuid.
    expect(mode(join(dir, "rootfs", "bin", "euid"))).toBe(0o4755);
  });

  test("root runs a container from the bundle, and setuid works inside it (no nosuid on the rootfs)", () => {
    const cfgPath = join(dir, "config.json");
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    // The image path asks for no_new_privs, which would ignore the setuid bit; Docker does not.
    cfg.process.noNewPrivileges = false;
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const root = mountsUnder(join(dir, "rootfs"));
    expect(root).toHaveLength(1);
    expect(root[0]!.split(" ")[5]!.split(",")).not.toContain("nosuid");
    const r = t(["run", "--bundle", dir, "b1"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("0\n");
    expect(t(["bundle", ...ir, "--remove", dir]).code).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
  });

  test("run --image keeps its bundle under the store's bundles/, 0700", () => {
    const r = t(["run", "--image", "localhost/suid:1", ...ir, "r1", "--", "true"]);
    expect(r.code).toBe(0);
    const b = join(imageRoot, "bundles", "r1");
    // The store root is closed by now; opened, only the bundle dir itself would stand in the way.
    chmodSync(imageRoot, 0o755);
    chmodSync(join(imageRoot, "bundles"), 0o755);
    unreachable(join(b, "rootfs", "bin", "euid"));
    expect(mode(b)).toBe(0o700);
    expect(t(["delete", "r1"]).code).toBe(0);
    expect(existsSync(b)).toBe(false);
  });

  test("an existing empty bundle dir is made 0700; one of another user is refused, nothing made", () => {
    const mine = join(work, "b2");
    mkdirSync(mine, { mode: 0o755 });
    chmodSync(mine, 0o755);
    expect(t(["bundle", ...ir, "--image", "localhost/suid:1", mine]).code).toBe(0);
    unreachable(join(mine, "rootfs", "bin", "euid"));
    expect(mode(mine)).toBe(0o700);
    expect(t(["bundle", ...ir, "--remove", mine]).code).toBe(0);

    const theirs = join(work, "b3");
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, NOBODY, NOBODY);
    const r = t(["bundle", ...ir, "--image", "localhost/suid:1", theirs]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`belongs to uid ${NOBODY}`);
    expect(readdirSync(theirs)).toEqual([]);
    expect(readdirSync(join(imageRoot, "containers"))).toEqual([]);
    expect(mountsUnder(work)).toEqual([]);
  });
});
