// `-info`: the shim describes itself as containerd 2.x asks (`ctr plugins inspect-runtime`; 2.1
// before a Create with idmapped mounts, 2.2+ before the first Create of a runtime): the runtime
// options' Any on stdin (or nothing), a protobuf containerd.types.RuntimeInfo on stdout
// {name = 1, RuntimeVersion version = 2 {version = 1, revision = 2}, Any options = 3,
// Any features = 4 (the runtime-spec Features document, JSON, as containerd's typeurl encodes
// non-proto types), map annotations = 5}. The features are tsrun's own, or, with a BinaryName
// naming another runtime, what that binary's `features` prints (left out if it has none, as
// containerd's runc shim does).
import protobuf from "protobufjs/minimal.js";
import { COMMIT, features, VERSION } from "@tsrun/runtime";
import { namesTsrun } from "../task/options.ts";
import { RUNC_OPTIONS_TYPE, taskProto } from "../task/proto.ts";

export const RUNTIME_NAME = "io.containerd.tsrun.v2";
/** containerd's type URL for runtime-spec's features.Features (core/runtime/typeurl.go). */
export const FEATURES_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/** The BinaryName of runc options on stdin, "" without them; throws on bytes that are no Any. */
function binaryName(stdin: Uint8Array): string {
  if (stdin.length === 0) return "";
  const p = taskProto();
  let any;
  try {
    any = p.any.decode(stdin);
  } catch (err) {
    throw new Error(`-info: stdin is not a protobuf Any of runtime options: ${(err as Error).message}`);
  }
  if (any.typeUrl !== RUNC_OPTIONS_TYPE && !any.typeUrl.endsWith(`/${RUNC_OPTIONS_TYPE}`)) return "";
  return p.runcOptions.decode(any.value).binaryName;
}

function featuresJson(binary: string): Uint8Array | undefined {
  if (namesTsrun(binary)) return new TextEncoder().encode(JSON.stringify(features()));
  const r = Bun.spawnSync([binary, "features"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) return undefined;
  try {
    JSON.parse(r.stdout.toString());
  } catch {
    return undefined;
  }
  return new Uint8Array(r.stdout);
}

export function runtimeInfo(stdin: Uint8Array): Uint8Array {
  const binary = binaryName(stdin);
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string(RUNTIME_NAME);
  w.uint32((2 << 3) | 2).fork().uint32((1 << 3) | 2).string(VERSION).uint32((2 << 3) | 2).string(COMMIT).ldelim();
  // The options as given (an Any's bytes are the submessage's bytes).
  if (stdin.length > 0) w.uint32((3 << 3) | 2).bytes(stdin);
  const json = featuresJson(binary);
  if (json) w.uint32((4 << 3) | 2).fork().uint32((1 << 3) | 2).string(FEATURES_TYPE).uint32((2 << 3) | 2).bytes(json).ldelim();
  return w.finish();
}
