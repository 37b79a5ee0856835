// commit against a container process that changes its upper dir while it is read: files and dirs
// swapped for symlinks to host files (owned by the test, holding a secret) between the walk's stat
// and its open must never bring the host file's bytes into the layer; and a running container is
// frozen for the commit and thawed after. The swaps are made deterministic through the walker's
// beforeOpen hook. Needs root (cgroups, the compiled binary's containers), like cli-image.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { cgroupManagerFromJSON, Store } from "@tsrun/runtime";
import { repo, tempDir, tsrun } from "@tsrun/runtime/test/helpers.ts";
import { layerFromUpper, tarFromUpper, UpperDirError, type LayerFromUpperOptions } from "../src/image/diff.ts";
import { ContentStore } from "../src/image/store.ts";
import { withContainerFrozen } from "../src/cli/commands/commit.ts";

const work = tempDir("tsrun-commit-race-");
const SECRET = `host-secret-${crypto.randomUUID()}`;
const hostFile = join(work, "host-secret");
const hostDir = join(work, "host-dir");

/** Every byte the store holds, blobs gunzipped where they are gzip: where a secret would show. */
function storeBytes(root: string): Buffer {
  const out: Buffer[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const b = readFileSync(p);
        out.push(b);
        if (b[0] === 0x1f && b[1] === 0x8b) out.push(gunzipSync(b));
      }
    }
  };
  if (existsSync(root)) walk(root);
  return Buffer.concat(out);
}

async function collect(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of s) chunks.push(c);
  return Buffer.concat(chunks);
}

const openFds = () => readdirSync("/proc/self/fd").length;

let n = 0;
/** A fresh upper dir with a few files, one of them `victim.txt` as long as the secret. */
function upperDir(): { upper: string; store: ContentStore; storeRoot: string } {
  const base = join(work, `case-${n++}`);
  const upper = join(base, "upper");
  mkdirSync(join(upper, "etc"), { recursive: true });
  mkdirSync(join(upper, "data"));
  writeFileSync(join(upper, "etc", "hostname"), "box\n");
  writeFileSync(join(upper, "data", "x"), "x".repeat(SECRET.length));
  // Same size as the secret: a walk that opened the swapped name by path would read all of it.
  writeFileSync(join(upper, "victim.txt"), "v".repeat(SECRET.length));
  const storeRoot = join(base, "content");
  return { upper, store: new ContentStore(storeRoot), storeRoot };
}

beforeAll(() => {
  writeFileSync(hostFile, SECRET);
  mkdirSync(hostDir);
  writeFileSync(join(hostDir, "x"), SECRET);
});

describe("the upper dir is walked by fd", () => {
  test("a file swapped for a symlink to a host file between stat and open: refused, the secret never stored", async () => {
    const { upper, store, storeRoot } = upperDir();
    const fds = openFds();
    let swapped = false;
    const opts: LayerFromUpperOptions = {
      beforeOpen: (rel) => {
        if (rel !== "victim.txt") return;
        unlinkSync(join(upper, rel));
        symlinkSync(hostFile, join(upper, rel));
        swapped = true;
      },
    };
    const err = await layerFromUpper(upper, store, opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(swapped).toBe(true);
    expect(err).toBeInstanceOf(UpperDirError);
    expect((err as Error).message).toContain("victim.txt was replaced");
    expect(storeBytes(storeRoot).includes(SECRET)).toBe(false);
    expect(readdirSync(store.ingestDir)).toEqual([]);
    expect(openFds()).toBe(fds);
  });

  test("a dir swapped for a symlink to a host dir before it is entered: refused, the secret never stored", async () => {
    const { upper, store, storeRoot } = upperDir();
    const fds = openFds();
    let swapped = false;
    const err = await layerFromUpper(upper, store, {
      beforeOpen: (rel) => {
        if (rel !== "data") return;
        renameSync(join(upper, "data"), join(upper, "..", "data-moved"));
        symlinkSync(hostDir, join(upper, "data"));
        swapped = true;
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(swapped).toBe(true);
    expect(err).toBeInstanceOf(UpperDirError);
    expect((err as Error).message).toContain("data was replaced");
    expect(storeBytes(storeRoot).includes(SECRET)).toBe(false);
    expect(openFds()).toBe(fds);
  });

  test("a file replaced by another regular file between stat and open is refused too", async () => {
    const { upper, store } = upperDir();
    const err = await layerFromUpper(upper, store, {
      beforeOpen: (rel) => {
        if (rel === "victim.txt") renameSync(join(upper, "etc", "hostname"), join(upper, "victim.txt"));
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UpperDirError);
    expect((err as Error).message).toContain("victim.txt was replaced by another file");
  });

  test("symlinks in the upper dir to host files and dirs are stored as symlinks, never followed", async () => {
    const { upper } = upperDir();
    symlinkSync(hostFile, join(upper, "link"));
    symlinkSync(hostDir, join(upper, "dirlink"));
    symlinkSync(hostFile, join(upper, "data", "deep-link"));
    const tar = await collect(tarFromUpper(upper));
    expect(tar.includes(SECRET)).toBe(false);
    expect(tar.includes(Buffer.from(hostFile))).toBe(true);
    expect(tar.includes(Buffer.from(hostDir))).toBe(true);
  });
});

// ---- freezing a running container for the commit ----

const imageRoot = join(work, "images");
const stateRoot = join(work, "state");
const ir = ["--image-root", imageRoot];
const t = (args: string[]) => tsrun(["--root", stateRoot, ...args]);

/** "FROZEN" / "THAWED" for v1's freezer, "1" / "0" for cgroup2's frozen flag. */
function freezerState(cgroup: unknown): string {
  const paths = cgroupManagerFromJSON(cgroup).paths();
  if (paths.freezer !== undefined) return readFileSync(join(paths.freezer, "freezer.state"), "utf8").trim();
  return /^frozen (\d)$/m.exec(readFileSync(join(paths[""]!, "cgroup.events"), "utf8"))![1]!;
}
const FROZEN = new Set(["FROZEN", "1"]);

describe("commit of a running container", () => {
  beforeAll(() => {
    const image = join(work, "busybox.tar");
    const r = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), image, "localhost/busybox:1"], { stderr: "pipe" });
    if (!r.success) throw new Error(`make-image.sh failed: ${r.stderr}`);
    expect(t(["image", "import", ...ir, image]).code).toBe(0);
    const run = t(["run", "--image", "localhost/busybox:1", ...ir, "-d", "live", "--", "sh", "-c", "echo changed > /etc/motd; exec sleep 1000"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
  });

  afterAll(() => {
    t(["delete", "--force", "live"]);
    t(["bundle", ...ir, "--remove", join(imageRoot, "bundles", "live")]);
  });

  test("is frozen during the walk and thawed after, also when the commit fails", async () => {
    const rec = new Store(stateRoot).read("live");
    const upper = join(imageRoot, "containers", "live", "upper");
    // The container's first write may still be on its way.
    for (let i = 0; i < 100 && !existsSync(join(upper, "etc", "motd")); i++) await Bun.sleep(10);
    expect(freezerState(rec.cgroup)).not.toMatch(/^(FROZEN|1)$/);
    const seen: string[] = [];
    const store = new ContentStore(join(work, "freeze-content"));
    const layer = await withContainerFrozen(rec, () => layerFromUpper(upper, store, { beforeOpen: () => void seen.push(freezerState(rec.cgroup)) }));
    expect(layer.diffId).toMatch(/^sha256:/);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => FROZEN.has(s))).toBe(true);
    expect(FROZEN.has(freezerState(rec.cgroup))).toBe(false);

    const failed = await withContainerFrozen(rec, async () => {
      expect(FROZEN.has(freezerState(rec.cgroup))).toBe(true);
      throw new Error("commit failed");
    }).catch((e: Error) => e.message);
    expect(failed).toBe("commit failed");
    expect(FROZEN.has(freezerState(rec.cgroup))).toBe(false);
    rmSync(join(work, "freeze-content"), { recursive: true, force: true });
  });

  test("a container paused before the commit stays paused", async () => {
    const rec = new Store(stateRoot).read("live");
    const cg = cgroupManagerFromJSON(rec.cgroup);
    cg.freeze();
    try {
      await withContainerFrozen(rec, async () => {});
      expect(FROZEN.has(freezerState(rec.cgroup))).toBe(true);
    } finally {
      cg.thaw();
    }
  });

  test("tsrun commit of the running container: the layer has its change, the container runs on", () => {
    const c = t(["commit", ...ir, "live", "localhost/busybox:live"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const rec = new Store(stateRoot).read("live");
    expect(FROZEN.has(freezerState(rec.cgroup))).toBe(false);
    expect(JSON.parse(t(["state", "live"]).stdout).status).toBe("running");
    const r = t(["run", "--image", "localhost/busybox:live", ...ir, "--rm", "check", "--", "cat", "/etc/motd"]);
    expect(r.stdout).toBe("changed\n");
  });
});
