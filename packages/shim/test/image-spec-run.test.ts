// Integration (root): a bundle made by specFromImage from a busybox rootfs and a hand-written image
// config runs with the built tsrun binary, with the user, HOME, cwd and env the image asks for,
// and with Docker's default seccomp profile in force (a user namespace — which needs no
// capability — is refused by the filter, and allowed without it).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateConfig, formatProblem, type ImageConfig } from "@tsrun/ocispec";
import { specFromImage, STOP_SIGNAL_ANNOTATION, type SpecFromImageOptions } from "../src/image/spec.ts";

const repo = join(import.meta.dir, "../../..");
const TSRUN = process.env.TSRUN ?? join(repo, "dist/tsrun");

const dir = mkdtempSync(join(tmpdir(), "tsrun-image-run-"));
const stateRoot = join(dir, "state");
const template = join(dir, "rootfs-template");
let seq = 0;

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("these tests run containers and need root");
  if (!existsSync(TSRUN)) {
    const b = Bun.spawnSync([process.execPath, join(repo, "scripts/build.ts")], { cwd: repo, stderr: "pipe" });
    if (!b.success) throw new Error(`building ${TSRUN} failed: ${b.stderr}`);
  }
  const r = Bun.spawnSync(["bash", join(repo, "scripts/make-rootfs.sh"), template], { stderr: "pipe" });
  if (!r.success) throw new Error(`make-rootfs failed: ${r.stderr}`);
  writeFileSync(join(template, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  writeFileSync(join(template, "etc/group"), "root:x:0:\ntty:x:5:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n");
  mkdirSync(join(template, "home/app"), { recursive: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function image(exec: NonNullable<ImageConfig["config"]>): ImageConfig {
  return { architecture: "amd64", os: "linux", config: exec, rootfs: { type: "layers", diff_ids: [] } };
}

/** Makes a bundle from the image config, runs it in the foreground, returns exit code and output. */
function runImage(config: ImageConfig, opts: Omit<SpecFromImageOptions, "rootfsDir">): { code: number; stdout: string; stderr: string; spec: ReturnType<typeof specFromImage> } {
  const id = `image-spec-${process.pid}-${seq++}`;
  const bundle = join(dir, id);
  mkdirSync(bundle);
  Bun.spawnSync(["cp", "-a", template, join(bundle, "rootfs")]);
  const spec = specFromImage(config, { ...opts, rootfsDir: join(bundle, "rootfs"), id });
  const valid = validateConfig(JSON.parse(JSON.stringify(spec)), { bundle, forCreate: true });
  if (!valid.ok) throw new Error(valid.problems.map((p) => formatProblem(p)).join("\n"));
  writeFileSync(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
  const r = Bun.spawnSync([TSRUN, "--root", stateRoot, "run", "--bundle", bundle, id], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), spec };
}

const SCRIPT = 'id -u; id -G; echo "$HOME"; pwd; echo "$GREETING"; grep ^Seccomp: /proc/self/status';

describe("bundles from an image config run with tsrun", () => {
  test("User, supplementary groups, HOME, WorkingDir, Env, Entrypoint + Cmd", () => {
    const r = runImage(image({ User: "app", Entrypoint: ["/bin/sh", "-c"], Cmd: [SCRIPT], WorkingDir: "/tmp", Env: ["GREETING=hello"], StopSignal: "SIGQUIT" }), {});
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("1000\n1000 50\n/home/app\n/tmp\nhello\nSeccomp:\t2\n");
    expect(r.spec.annotations?.[STOP_SIGNAL_ANNOTATION]).toBe("SIGQUIT");
  });

  test("the user's args, env and user override the image's", () => {
    const r = runImage(image({ User: "app", Entrypoint: ["/bin/sh", "-c"], Cmd: ["echo image-cmd"], WorkingDir: "/tmp", Env: ["GREETING=hello"] }), {
      args: [SCRIPT],
      env: ["GREETING=bonjour"],
      user: "nobody",
      cwd: "/",
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("65534\n65534\n/nonexistent\n/\nbonjour\nSeccomp:\t2\n");
  });

  test("the default seccomp profile refuses unshare(CLONE_NEWUSER) and lets ordinary commands work", () => {
    const script = "unshare -U true && echo unshare-allowed; echo still-running; ls / >/dev/null && echo ls-ok";
    const confined = runImage(image({ Entrypoint: ["/bin/sh", "-c"], Cmd: [script] }), { seccomp: "default" });
    expect(confined.code).toBe(0);
    expect(confined.stdout).toBe("still-running\nls-ok\n");
    expect(confined.stderr).toMatch(/^unshare: unshare\(0x10000000\): Operation not permitted\n$/);
    // Without the filter the same call succeeds: it was seccomp, not a missing capability.
    const unconfined = runImage(image({ Entrypoint: ["/bin/sh", "-c"], Cmd: [script] }), { seccomp: "unconfined" });
    expect(unconfined.stderr).toBe("");
    expect(unconfined.stdout).toBe("unshare-allowed\nstill-running\nls-ok\n");
  });

  test("an entrypoint override runs instead of the image's Entrypoint and Cmd", () => {
    const r = runImage(image({ Entrypoint: ["/bin/false"], Cmd: ["ignored"] }), { entrypoint: ["/bin/echo", "overridden"] });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("overridden\n");
  });
});
