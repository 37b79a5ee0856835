// The image service inside a `bun build --compile` binary, as the shim ships: the .proto must
// be embedded (not read from the source tree at run time), and grpc-js and protobufjs must work
// when bundled. The binary is built in a temp dir and run from there with a different cwd.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const tmp = mkdtempSync(join(tmpdir(), "tsrun-grpc-compile-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test("a compiled binary serves and calls the image service", async () => {
  const src = resolve(import.meta.dir, "../src");
  const entry = join(tmp, "entry.ts");
  writeFileSync(
    entry,
    `
import { statSync } from "node:fs";
import { serveImages } from ${JSON.stringify(join(src, "grpc/image-server.ts"))};
import { connectImages } from ${JSON.stringify(join(src, "grpc/image-client.ts"))};
import { ImageNotFound } from ${JSON.stringify(join(src, "image/service.ts"))};
const service = {
  list: async () => [{ name: "n", digest: "sha256:0", mediaType: "m", size: 2 ** 40, created: "c", platform: "linux/amd64" }],
  inspect: async (ref: string) => { throw new ImageNotFound(ref); },
};
const dir = process.argv[2]!;
const server = await serveImages(service as never, "unix://" + dir + "/s.sock");
const client = connectImages(server.address);
const list = await client.list();
const err = await client.inspect("nope").catch((e) => e);
const mode = (statSync(dir + "/s.sock").mode & 0o777).toString(8);
client.close();
await server.close();
console.log(JSON.stringify({ list, notFound: err instanceof ImageNotFound, message: err.message, mode }));
`,
  );
  const out = join(tmp, "images-bin");
  const build = Bun.spawnSync([process.execPath, "build", "--compile", entry, "--outfile", out], { cwd: resolve(import.meta.dir, "../../..") });
  expect(build.stderr.toString()).not.toContain("error");
  expect(build.exitCode).toBe(0);

  const run = Bun.spawnSync([out, tmp], { cwd: "/", env: { PATH: "/usr/bin:/bin" } });
  expect(run.stderr.toString()).toBe("");
  expect(run.exitCode).toBe(0);
  expect(JSON.parse(run.stdout.toString())).toEqual({
    list: [{ name: "n", digest: "sha256:0", mediaType: "m", size: 2 ** 40, created: "c", platform: "linux/amd64" }],
    notFound: true,
    message: "image nope not found (see `tsrun image ls`)",
    mode: "600",
  });
}, 60_000);
