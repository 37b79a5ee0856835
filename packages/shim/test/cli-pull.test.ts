// `tsrun image pull` end to end: Debian's docker-registry on loopback, the image of
// scripts/make-image.sh pushed to it with skopeo, pulled by the compiled binary and run.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { repo, tempDir, tsrun } from "@tsrun/runtime/test/helpers.ts";

const work = tempDir("tsrun-cli-pull-");
let registry: ReturnType<typeof Bun.spawn> | undefined;
let addr = "";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  addr = `127.0.0.1:${await freePort()}`;
  writeFileSync(join(work, "registry.yml"), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, "registry")}\nhttp:\n  addr: ${addr}\n`);
  registry = Bun.spawn(["docker-registry", "serve", join(work, "registry.yml")], { stdout: "ignore", stderr: "ignore" });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://${addr}/v2/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 200) throw new Error(`docker-registry did not answer on ${addr}`);
    await Bun.sleep(25);
  }
  const tar = join(work, "bb.tar");
  const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), tar, "localhost/busybox:pull"], { stderr: "pipe" });
  if (!mk.success) throw new Error(`make-image.sh: ${mk.stderr}`);
  const push = Bun.spawnSync(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", `oci-archive:${tar}:localhost/busybox:pull`, `docker://${addr}/demo/busybox:1`], { stderr: "pipe" });
  if (!push.success) throw new Error(`skopeo copy: ${push.stderr}`);
});

afterAll(async () => {
  registry?.kill();
  await registry?.exited;
});

test("tsrun image pull from a registry, then run the pulled image", () => {
  const ir = ["--image-root", join(work, "images")];
  const ref = `${addr}/demo/busybox:1`;
  const p = tsrun(["image", "pull", ...ir, ref]);
  expect(p.stderr).toBe("");
  expect(p.code).toBe(0);
  expect(p.stdout).toMatch(new RegExp(`^pulled ${ref.replace(/[.]/g, "\\.")} sha256:[0-9a-f]{64}\\n$`));
  expect(tsrun(["image", "ls", ...ir, "-q"]).stdout).toBe(`${ref}\n`);
  const r = tsrun(["--root", join(work, "state"), "run", "--image", ref, ...ir, "--rm", "p1", "--", "echo", "pulled and running"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("pulled and running\n");
  const missing = tsrun(["image", "pull", ...ir, `${addr}/demo/busybox:nope`]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/manifest unknown \(404\)/);
});
