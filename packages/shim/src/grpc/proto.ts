// The tsrun.image.v1 protocol as protobufjs reflection and grpc-js method definitions.
//
// The .proto text is embedded (a text import) rather than read from disk so that the shim works
// as one compiled binary; it is parsed on first use, not at import time, because most CLI calls
// never speak gRPC. grpc-js is given plain method definitions built from the reflection (what
// @grpc/proto-loader would produce) so the project depends only on grpc-js and protobufjs.
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";
import imagesProtoText from "../../proto/tsrun/image/v1/images.proto" with { type: "text" };

export const IMAGES_PACKAGE = "tsrun.image.v1";
export const IMAGES_SERVICE = `${IMAGES_PACKAGE}.Images`;

/** Large enough for an Inspect of an image with a big config; grpc-js's default is 4 MiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

// Message shapes as protobufjs presents them with `decodeOptions` (camelCase names, int64 as
// number, enums as numbers, absent submessages as null, absent `optional` scalars missing).
// They must follow images.proto; the tests round-trip every field to catch drift.

export interface WireStringList {
  values: string[];
}

export interface WireImageSummary {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  created: string;
  platform: string;
}

export interface WireLayerDetails {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
  chainId: string;
  unpacked: boolean;
}

export interface WireImageDetails extends WireImageSummary {
  manifestDigest: string;
  manifestJson: string;
  configDigest: string;
  configJson: string;
  layers: WireLayerDetails[];
}

export interface WireImportRequest {
  file: string;
  name?: string;
}
export interface WireImportResponse {
  images: WireImageSummary[];
}

export interface WireCredentials {
  username: string;
  password: string;
}
export interface WirePullRequest {
  ref: string;
  platform?: string;
  plainHttp?: boolean;
  credentials?: WireCredentials | null;
}
export interface WirePullResponse {
  image?: WireImageSummary | null;
}

export type WireListRequest = Record<string, never>;
export interface WireListResponse {
  images: WireImageSummary[];
}

export interface WireInspectRequest {
  ref: string;
}
export interface WireInspectResponse {
  image?: WireImageDetails | null;
}

export interface WireRemoveRequest {
  ref: string;
}
export type WireRemoveResponse = Record<string, never>;

/** enum SeccompProfile (values checked against images.proto when it is loaded). */
export const SeccompProfile = { SECCOMP_PROFILE_UNSPECIFIED: 0, SECCOMP_PROFILE_DEFAULT: 1, SECCOMP_PROFILE_UNCONFINED: 2 } as const;
/** enum RootfsMode (values checked against images.proto when it is loaded). */
export const RootfsMode = { ROOTFS_MODE_UNSPECIFIED: 0, ROOTFS_MODE_OVERLAY: 1, ROOTFS_MODE_COPY: 2 } as const;

export interface WireBundleRequest {
  image: string;
  dir: string;
  id?: string;
  args?: WireStringList | null;
  entrypoint?: WireStringList | null;
  env?: WireStringList | null;
  user?: string;
  cwd?: string;
  tty?: boolean;
  hostname?: string;
  readonlyRootfs?: boolean;
  /** A SeccompProfile value; proto3 enums are open, so a peer may send one this build does not know. */
  seccomp: number;
}

export interface WireBundleResponse {
  dir: string;
  rootfs: string;
  specJson: string;
  /** A RootfsMode value. */
  mode: number;
}

export interface WireRemoveBundleRequest {
  dir: string;
}
export type WireRemoveBundleResponse = Record<string, never>;

export interface WireCommitChanges {
  cmd?: WireStringList | null;
  entrypoint?: WireStringList | null;
  env?: WireStringList | null;
  workingDir?: string;
  user?: string;
}
export interface WireCommitRequest {
  bundle: string;
  ref: string;
  author?: string;
  message?: string;
  changes?: WireCommitChanges | null;
}
export interface WireCommitResponse {
  image?: WireImageSummary | null;
}

/** Request and response shapes of each RPC of the Images service. */
export interface ImagesRpcs {
  Import: { request: WireImportRequest; response: WireImportResponse };
  Pull: { request: WirePullRequest; response: WirePullResponse };
  List: { request: WireListRequest; response: WireListResponse };
  Inspect: { request: WireInspectRequest; response: WireInspectResponse };
  Remove: { request: WireRemoveRequest; response: WireRemoveResponse };
  Bundle: { request: WireBundleRequest; response: WireBundleResponse };
  RemoveBundle: { request: WireRemoveBundleRequest; response: WireRemoveBundleResponse };
  Commit: { request: WireCommitRequest; response: WireCommitResponse };
}
export type ImagesRpcName = keyof ImagesRpcs;

export const IMAGES_RPC_NAMES: readonly ImagesRpcName[] = ["Import", "Pull", "List", "Inspect", "Remove", "Bundle", "RemoveBundle", "Commit"];

/**
 * How decoded messages are turned into plain objects. `defaults` fills implicit-presence fields
 * (proto3 writers omit zero values, so an absent string is ""), while `optional` fields stay
 * missing when absent, which is what carries "not given" through to the ImageService.
 */
// Enums stay numbers (not names) because Type.verify, which guards encoding, only accepts numbers.
const decodeOptions: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true };

export type ImagesMethodDefinitions = { [K in ImagesRpcName]: MethodDefinition<ImagesRpcs[K]["request"], ImagesRpcs[K]["response"]> };

interface ImagesProtocol {
  root: protobuf.Root;
  service: protobuf.Service;
  methods: ImagesMethodDefinitions;
}

let loaded: ImagesProtocol | undefined;

/** The parsed images.proto (parsed once, on first use). */
export function imagesProtocol(): ImagesProtocol {
  if (loaded !== undefined) return loaded;
  const root = protobuf.parse(imagesProtoText, { keepCase: false }).root;
  root.resolveAll();
  const service = root.lookupService(IMAGES_SERVICE);
  const methods = {} as Record<ImagesRpcName, MethodDefinition<unknown, unknown>>;
  for (const name of IMAGES_RPC_NAMES) {
    const method = service.methods[name];
    if (method === undefined) throw new Error(`images.proto: service ${IMAGES_SERVICE} has no rpc ${name}`);
    if (method.requestStream === true || method.responseStream === true)
      throw new Error(`images.proto: rpc ${name} streams, but the image service only has unary calls`);
    const request = root.lookupType(method.requestType);
    const response = root.lookupType(method.responseType);
    methods[name] = {
      path: `/${IMAGES_SERVICE}/${name}`,
      originalName: name,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value) => encodeMessage(request, value),
      requestDeserialize: (bytes) => decodeMessage(request, bytes),
      responseSerialize: (value) => encodeMessage(response, value),
      responseDeserialize: (bytes) => decodeMessage(response, bytes),
    };
  }
  checkEnum(root, "SeccompProfile", SeccompProfile);
  checkEnum(root, "RootfsMode", RootfsMode);
  const extra = Object.keys(service.methods).filter((m) => !(IMAGES_RPC_NAMES as readonly string[]).includes(m));
  if (extra.length > 0) throw new Error(`images.proto: rpc ${extra.join(", ")} not served (add to IMAGES_RPC_NAMES and the server)`);
  loaded = { root, service, methods: methods as unknown as ImagesMethodDefinitions };
  return loaded;
}

/** grpc-js service definition of tsrun.image.v1.Images (for Server.addService and generic clients). */
export function imagesServiceDefinition(): ServiceDefinition & ImagesMethodDefinitions {
  return imagesProtocol().methods as ServiceDefinition & ImagesMethodDefinitions;
}

/** The protobufjs type of a message of images.proto, by its name without the package. */
export function imagesMessageType(name: string): protobuf.Type {
  return imagesProtocol().root.lookupType(`${IMAGES_PACKAGE}.${name}`);
}

function checkEnum(root: protobuf.Root, name: string, expected: Record<string, number>): void {
  const actual = root.lookupEnum(`${IMAGES_PACKAGE}.${name}`).values;
  const same = Object.keys(actual).length === Object.keys(expected).length && Object.entries(expected).every(([k, v]) => actual[k] === v);
  if (!same) throw new Error(`images.proto: enum ${name} is ${JSON.stringify(actual)}, proto.ts expects ${JSON.stringify(expected)}`);
}

function encodeMessage(type: protobuf.Type, value: unknown): Buffer {
  // fromObject quietly turns values of the wrong type into defaults (an unknown enum name into
  // 0, a string into 0); verify first so that a bug on our side fails loudly instead of
  // sending something else than it was asked to.
  const problem = type.verify(value as Record<string, unknown>);
  if (problem !== null) throw new TypeError(`${type.fullName.slice(1)}: ${problem}`);
  const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function decodeMessage(type: protobuf.Type, bytes: Buffer): never {
  return type.toObject(type.decode(bytes), decodeOptions) as never;
}
