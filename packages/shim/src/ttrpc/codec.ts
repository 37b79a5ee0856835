// protobufjs glue shared by the ttrpc envelope and the services behind it: .proto texts embedded
// in the binary are parsed into one Root on first use, and each message type gets a typed codec.
import protobuf from "protobufjs";

/** How messages look in TypeScript: camelCase fields, 64-bit ints as numbers, enums as numbers, defaults filled in. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true, arrays: true };

// The three well-known types the containerd messages use. Declared here rather than taken from
// protobufjs's bundled JSON, whose field names keep snake_case (`type_url`) while every other
// message here is parsed to camelCase.
const WELL_KNOWN = `
syntax = "proto3";
package google.protobuf;
message Any { string type_url = 1; bytes value = 2; }
message Empty {}
message Timestamp { int64 seconds = 1; int32 nanos = 2; }
`;

/**
 * Parses .proto texts into one Root. Their `import` lines are not followed (the texts are all
 * given here, with google.protobuf.Any, Empty and Timestamp added).
 */
export function parseProtos(texts: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  for (const text of [WELL_KNOWN, ...texts]) protobuf.parse(text, root, { keepCase: false });
  root.resolveAll();
  return root;
}

export interface Codec<T> {
  readonly type: protobuf.Type;
  encode(value: Partial<T>): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export function codec<T>(root: protobuf.Root, name: string): Codec<T> {
  const type = root.lookupType(name);
  return {
    type,
    encode(value) {
      const err = type.verify(value as Record<string, unknown>);
      if (err) throw new Error(`${name}: ${err}`);
      return type.encode(type.fromObject(value as Record<string, unknown>)).finish();
    },
    decode(bytes) {
      return type.toObject(type.decode(bytes), TO_OBJECT) as T;
    },
  };
}

/** google.protobuf.Any as decoded: the type name (bare, as containerd writes it) and the packed message. */
export interface Any {
  typeUrl: string;
  value: Uint8Array;
}

/** google.protobuf.Timestamp as decoded (seconds as a number: safe until the year 285 million). */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

export function timestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}
