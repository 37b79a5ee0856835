// The wire format is images.proto, not something private to our client: requests are encoded
// here with protobufjs from the .proto file on disk (plus a few bytes written by hand) and sent
// with grpc-js's generic client, which knows nothing of tsrun; responses are decoded the same
// way, and status codes and trailers are read off the raw call.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { ERROR_NAME_TRAILER, IMAGE_REF_TRAILER } from "../src/grpc/errors.ts";
import { serveImages, type ImageServer } from "../src/grpc/image-server.ts";
import { IMAGES_RPC_NAMES, imagesServiceDefinition } from "../src/grpc/proto.ts";
import { ImageNotFound, type BundleRequest } from "../src/image/service.ts";
import { DETAILS, FakeImageService, namedError, SPEC, SUMMARY_A, SUMMARY_B } from "./grpc-image-fake.ts";

const PROTO_PATH = join(import.meta.dir, "../proto/tsrun/image/v1/images.proto");
const root = protobuf.parse(readFileSync(PROTO_PATH, "utf8")).root;
const T = (name: string) => root.lookupType(`tsrun.image.v1.${name}`);

const tmp = mkdtempSync(join(tmpdir(), "tsrun-grpc-wire-"));
const fake = new FakeImageService();
let server: ImageServer;
let raw: Client;

beforeAll(async () => {
  server = await serveImages(fake, `unix://${join(tmp, "images.sock")}`);
  raw = new Client(server.address, credentials.createInsecure());
});
afterAll(async () => {
  raw.close();
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface RawResult {
  bytes?: Buffer;
  error?: ServiceError;
}

/** One unary call with the request's bytes exactly as given, the response's bytes as received. */
function call(rpc: string, request: Uint8Array): Promise<RawResult> {
  return new Promise((resolve) => {
    raw.makeUnaryRequest(
      `/tsrun.image.v1.Images/${rpc}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(request),
      new Metadata(),
      {},
      (error, bytes) => resolve(error !== null ? { error } : { bytes: bytes! }),
    );
  });
}

function encode(type: string, value: Record<string, unknown>): Uint8Array {
  const t = T(type);
  const problem = t.verify(value);
  if (problem !== null) throw new Error(`test bug: ${type}: ${problem}`);
  return t.encode(t.fromObject(value)).finish();
}

function decode(type: string, bytes: Buffer | undefined): Record<string, any> {
  if (bytes === undefined) throw new Error("no response bytes");
  return T(type).toObject(T(type).decode(bytes), { longs: Number, enums: String, defaults: true });
}

describe("the service as the .proto describes it", () => {
  test("the embedded definition has the .proto's methods and paths", () => {
    const svc = root.lookupService("tsrun.image.v1.Images");
    expect(Object.keys(svc.methods).sort()).toEqual([...IMAGES_RPC_NAMES].sort());
    const def = imagesServiceDefinition();
    for (const name of IMAGES_RPC_NAMES) {
      expect(def[name].path).toBe(`/tsrun.image.v1.Images/${name}`);
      expect(svc.methods[name]!.requestType).toBe(`${name}Request`);
      expect(svc.methods[name]!.responseType).toBe(`${name}Response`);
    }
  });
});

describe("raw requests", () => {
  test("Inspect from hand-written bytes: field 1, length-delimited", async () => {
    fake.calls = [];
    // InspectRequest { ref = 1: "busybox" }: tag (1 << 3 | 2) = 0x0a, length 7, the UTF-8 bytes.
    const bytes = Uint8Array.from([0x0a, 0x07, ...Buffer.from("busybox")]);
    expect(Buffer.from(encode("InspectRequest", { ref: "busybox" }))).toEqual(Buffer.from(bytes));
    const r = await call("Inspect", bytes);
    expect(r.error).toBeUndefined();
    expect(fake.calls).toEqual([{ method: "inspect", args: ["busybox"] }]);

    const res = decode("InspectResponse", r.bytes);
    const img = res.image;
    expect(img.name).toBe(DETAILS.name);
    expect(img.size).toBe(DETAILS.size);
    expect(img.mediaType).toBe(DETAILS.mediaType);
    expect(img.manifestDigest).toBe(DETAILS.manifestDigest);
    expect(img.configDigest).toBe(DETAILS.configDigest);
    // Only the OCI documents are JSON text; everything else is proto fields.
    expect(typeof img.manifestJson).toBe("string");
    expect(JSON.parse(img.manifestJson)).toEqual(DETAILS.manifest);
    expect(JSON.parse(img.configJson)).toEqual(DETAILS.config);
    expect(img.layers).toEqual(DETAILS.layers.map((l) => ({ ...l })));
  });

  test("an ImageDetails decodes as an ImageSummary (fields 1-6 shared)", async () => {
    const r = await call("Inspect", encode("InspectRequest", { ref: "x" }));
    const outer = T("InspectResponse").decode(r.bytes!) as unknown as { image: protobuf.Message };
    const detailsBytes = T("ImageDetails").encode(outer.image).finish();
    const asSummary = T("ImageSummary").toObject(T("ImageSummary").decode(detailsBytes), { longs: Number });
    const { name, digest, mediaType, size, created, platform } = DETAILS;
    expect(asSummary).toEqual({ name, digest, mediaType, size, created, platform });
  });

  test("List: a repeated message field, int64 sizes past 2^32", async () => {
    const r = await call("List", new Uint8Array());
    expect(r.error).toBeUndefined();
    // ListResponse.images is field 1, length-delimited.
    expect(r.bytes![0]).toBe(0x0a);
    expect(decode("ListResponse", r.bytes).images).toEqual([SUMMARY_A, SUMMARY_B]);
  });

  test("Bundle: wrapped lists, optional scalars and the enum as the .proto defines them", async () => {
    fake.calls = [];
    const bytes = encode("BundleRequest", {
      image: "busybox",
      dir: "/b/raw",
      args: { values: [] },
      env: { values: ["A=1"] },
      tty: false,
      readonlyRootfs: true,
      seccomp: 2, // SECCOMP_PROFILE_UNCONFINED
    });
    const r = await call("Bundle", bytes);
    expect(r.error).toBeUndefined();
    const expected: BundleRequest = { image: "busybox", dir: "/b/raw", args: [], env: ["A=1"], tty: false, readonlyRootfs: true, seccomp: "unconfined" };
    expect(fake.calls).toEqual([{ method: "bundle", args: [expected] }]);
    const res = decode("BundleResponse", r.bytes);
    expect(res.dir).toBe("/b/raw");
    expect(res.rootfs).toBe("/b/raw/rootfs");
    expect(res.mode).toBe("ROOTFS_MODE_OVERLAY");
    expect(JSON.parse(res.specJson)).toEqual(SPEC);
  });

  test("Bundle: a seccomp value this server does not know is INVALID_ARGUMENT", async () => {
    fake.calls = [];
    const r = await call("Bundle", encode("BundleRequest", { image: "i", dir: "/d", seccomp: 7 }));
    expect(r.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(r.error?.details).toContain("seccomp");
    expect(fake.calls).toEqual([]);
  });

  test("Pull, Import, Remove, RemoveBundle, Commit from protobufjs-encoded requests", async () => {
    fake.calls = [];
    const pull = decode("PullResponse", (await call("Pull", encode("PullRequest", { ref: "r", plainHttp: false, credentials: { username: "u", password: "p" } }))).bytes);
    expect(pull.image.name).toBe("r");
    const imp = decode("ImportResponse", (await call("Import", encode("ImportRequest", { file: "/f.tar", name: "n" }))).bytes);
    expect(imp.images.map((i: { name: string }) => i.name)).toEqual(["n"]);
    expect((await call("Remove", encode("RemoveRequest", { ref: "gone" }))).bytes!.length).toBe(0);
    expect((await call("RemoveBundle", encode("RemoveBundleRequest", { dir: "/b" }))).bytes!.length).toBe(0);
    const commit = decode(
      "CommitResponse",
      (await call("Commit", encode("CommitRequest", { bundle: "/b", ref: "new", changes: { entrypoint: { values: [] }, workingDir: "" } }))).bytes,
    );
    expect(commit.image.name).toBe("new");
    expect(fake.calls).toEqual([
      { method: "pull", args: [{ ref: "r", plainHttp: false, credentials: { username: "u", password: "p" } }] },
      { method: "import", args: ["/f.tar", { name: "n" }] },
      { method: "remove", args: ["gone"] },
      { method: "removeBundle", args: ["/b"] },
      { method: "commit", args: [{ bundle: "/b", ref: "new", changes: { entrypoint: [], workingDir: "" } }] },
    ]);
  });
});

describe("status codes and trailers on the raw call", () => {
  test("NOT_FOUND with the error's name and the reference", async () => {
    fake.failNext.set("inspect", new ImageNotFound("docker.io/library/nope:latest"));
    const { error } = await call("Inspect", encode("InspectRequest", { ref: "nope" }));
    expect(error?.code).toBe(status.NOT_FOUND);
    expect(error?.details).toBe(new ImageNotFound("docker.io/library/nope:latest").message);
    expect(error?.metadata.get(ERROR_NAME_TRAILER)).toEqual(["ImageNotFound"]);
    expect(error?.metadata.get(IMAGE_REF_TRAILER)).toEqual(["docker.io/library/nope:latest"]);
  });

  const cases: [string, Error, status][] = [
    ["List", namedError("DigestMismatchError", "blob sha256:1: digest mismatch"), status.DATA_LOSS],
    ["List", namedError("ImageReferenceError", "invalid reference format"), status.INVALID_ARGUMENT],
    ["List", namedError("ImageSpecError", "no command specified"), status.INVALID_ARGUMENT],
    ["List", new TypeError("bad"), status.INVALID_ARGUMENT],
    ["List", new Error("invalid layer media type"), status.INVALID_ARGUMENT],
    ["List", new Error("something broke"), status.INTERNAL],
  ];
  for (const [rpc, err, code] of cases) {
    test(`${err.name}: ${err.message} -> ${status[code]}`, async () => {
      fake.failNext.set("list", err);
      const { error } = await call(rpc, new Uint8Array());
      expect(error?.code).toBe(code);
      // Exactly the message: no stack, no prefix.
      expect(error?.details).toBe(err.message);
      expect(error?.metadata.get(ERROR_NAME_TRAILER)).toEqual([err.name]);
    });
  }

  test("an empty required field: INVALID_ARGUMENT naming it", async () => {
    const { error } = await call("Inspect", new Uint8Array());
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toBe("invalid Inspect request: ref is required");
  });

  test("bytes that are not an InspectRequest are refused, and the server keeps serving", async () => {
    // Field 1 declared length-delimited with a length running past the end.
    const { error } = await call("Inspect", Uint8Array.from([0x0a, 0x50, 0x41]));
    expect(error).toBeDefined();
    expect(error?.code).not.toBe(status.OK);
    expect((await call("List", new Uint8Array())).error).toBeUndefined();
  });

  test("a method the service does not have: UNIMPLEMENTED", async () => {
    const { error } = await call("Frobnicate", new Uint8Array());
    expect(error?.code).toBe(status.UNIMPLEMENTED);
  });
});
