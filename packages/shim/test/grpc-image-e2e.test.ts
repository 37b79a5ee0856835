// The image service as a program would use it: `tsrun image serve` (the compiled binary) on a
// unix socket over a real image store; the gRPC client imports an image built here, asks for a
// bundle, and `tsrun run --bundle` runs it; then the bundle and the image are removed over gRPC.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { repo, tempDir, tsrun, TSRUN } from "@tsrun/runtime/test/helpers.ts";
import { connectImages, type ImageClient } from "../src/grpc/image-client.ts";

const work = tempDir("tsrun-grpc-e2e-");
const sock = join(work, "images.sock");
const imageRoot = join(work, "images");
let server: ReturnType<typeof Bun.spawn> | undefined;
let client: ImageClient | undefined;

beforeAll(async () => {
  const mk = Bun.spawnSync(["bash", join(repo, "scripts/make-image.sh"), join(work, "bb.tar"), "localhost/busybox:grpc"], { stderr: "pipe" });
  if (!mk.success) throw new Error(`make-image.sh: ${mk.stderr}`);
  server = Bun.spawn([TSRUN, "image", "serve", "--image-root", imageRoot, "--address", `unix://${sock}`], { stdout: "ignore", stderr: "pipe" });
  for (let i = 0; i < 200 && !existsSync(sock); i++) await Bun.sleep(10);
  if (!existsSync(sock)) throw new Error("tsrun image serve did not create its socket");
  client = connectImages(`unix://${sock}`, { timeoutMs: 30_000 });
});

afterAll(async () => {
  client?.close();
  server?.kill("SIGTERM");
  await server?.exited;
});

test("import, bundle, run, remove over gRPC against tsrun image serve", async () => {
  expect(statSync(sock).mode & 0o777).toBe(0o600);
  const imported = await client!.import(join(work, "bb.tar"));
  expect(imported.map((i) => i.name)).toEqual(["localhost/busybox:grpc"]);
  expect((await client!.list()).map((i) => i.name)).toEqual(["localhost/busybox:grpc"]);
  const details = await client!.inspect("localhost/busybox:grpc");
  expect(details.layers).toHaveLength(1);

  const dir = join(work, "bundle");
  const b = await client!.bundle({ image: "localhost/busybox:grpc", dir, args: ["sh", "-c", "echo over grpc; id -u"], user: "nobody" });
  expect(b.mode).toBe("overlay");
  expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).process.user.uid).toBe(65534);
  const r = tsrun(["--root", join(work, "state"), "run", "--bundle", dir, "g1"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("over grpc\n65534\n");

  await client!.removeBundle(dir);
  expect(existsSync(dir)).toBe(false);
  await client!.remove("localhost/busybox:grpc");
  expect(await client!.list()).toEqual([]);
  const err = await client!.inspect("localhost/busybox:grpc").catch((e) => e);
  expect(err.name).toBe("ImageNotFound");
});

test("stopping the server removes its socket", async () => {
  server!.kill("SIGTERM");
  expect(await server!.exited).toBe(0);
  expect(existsSync(sock)).toBe(false);
});
