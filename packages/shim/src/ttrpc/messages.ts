// The ttrpc envelope messages (ttrpc.Request, ttrpc.Response, google.rpc.Status), as protobufjs
// static code (the shape `pbjs -t static` gives: the minimal runtime's Writer and Reader, no
// reflection). Every call on either side goes through them, and `start` makes one call in a
// fresh process, where parsing .proto texts and compiling reflection codecs cost more than the
// call itself. proto/containerd/ttrpc/request.proto and rpc/status.proto are the definitions;
// the ttrpc tests check these codecs against codecs built from those files.
import protobuf from "protobufjs/minimal.js";
import type { Any } from "./codec.ts";

export interface KeyValue {
  key: string;
  value: string;
}

export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano: number;
  metadata: KeyValue[];
}

export interface Status {
  code: number;
  message: string;
  details: Any[];
}

export interface Response {
  status: Status | null;
  payload: Uint8Array;
}

export interface EnvelopeCodec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

type Writer = protobuf.Writer;
type Reader = protobuf.Reader;
const { Reader, Writer } = protobuf;

// Wire types.
const VARINT = 0;
const LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;

function writeString(w: Writer, field: number, s: string): void {
  if (s) w.uint32(tag(field, LEN)).string(s);
}

function writeBytes(w: Writer, field: number, b: Uint8Array): void {
  if (b.length) w.uint32(tag(field, LEN)).bytes(b);
}

/** Reads a length-delimited sub-message with `read`. */
function sub<T>(r: Reader, read: (r: Reader, end: number) => T): T {
  const len = r.uint32();
  return read(r, r.pos + len);
}

/** The fields of a message up to `end`, each handed to `field`, which returns false for a field it does not know (skipped). */
function fields(r: Reader, end: number, field: (no: number) => boolean): void {
  while (r.pos < end) {
    const t = r.uint32();
    if (!field(t >>> 3)) r.skipType(t & 7);
  }
}

/** int64 as a number (safe to 2^53, beyond any timeout in nanoseconds a client sends). */
function int64(r: Reader): number {
  const v = r.int64();
  return typeof v === "number" ? v : protobuf.util.LongBits.from(v).toNumber(false);
}

function readKeyValue(r: Reader, end: number): KeyValue {
  const kv: KeyValue = { key: "", value: "" };
  fields(r, end, (no) => {
    if (no === 1) kv.key = r.string();
    else if (no === 2) kv.value = r.string();
    else return false;
    return true;
  });
  return kv;
}

function readAny(r: Reader, end: number): Any {
  const a: Any = { typeUrl: "", value: new Uint8Array(0) };
  fields(r, end, (no) => {
    if (no === 1) a.typeUrl = r.string();
    else if (no === 2) a.value = r.bytes();
    else return false;
    return true;
  });
  return a;
}

function readStatus(r: Reader, end: number): Status {
  const s: Status = { code: 0, message: "", details: [] };
  fields(r, end, (no) => {
    if (no === 1) s.code = r.int32();
    else if (no === 2) s.message = r.string();
    else if (no === 3) s.details.push(sub(r, readAny));
    else return false;
    return true;
  });
  return s;
}

/** ttrpc.Request { string service = 1; string method = 2; bytes payload = 3; int64 timeout_nano = 4; repeated KeyValue metadata = 5 } */
const request: EnvelopeCodec<Request> = {
  encode(v) {
    const w = Writer.create();
    writeString(w, 1, v.service);
    writeString(w, 2, v.method);
    writeBytes(w, 3, v.payload);
    if (v.timeoutNano) w.uint32(tag(4, VARINT)).int64(v.timeoutNano);
    for (const kv of v.metadata) {
      w.uint32(tag(5, LEN)).fork();
      writeString(w, 1, kv.key);
      writeString(w, 2, kv.value);
      w.ldelim();
    }
    return w.finish();
  },
  decode(bytes) {
    const r = Reader.create(bytes);
    const v: Request = { service: "", method: "", payload: new Uint8Array(0), timeoutNano: 0, metadata: [] };
    fields(r, r.len, (no) => {
      if (no === 1) v.service = r.string();
      else if (no === 2) v.method = r.string();
      else if (no === 3) v.payload = r.bytes();
      else if (no === 4) v.timeoutNano = int64(r);
      else if (no === 5) v.metadata.push(sub(r, readKeyValue));
      else return false;
      return true;
    });
    return v;
  },
};

/** ttrpc.Response { google.rpc.Status status = 1; bytes payload = 2 }, Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3 } */
const response: EnvelopeCodec<Response> = {
  encode(v) {
    const w = Writer.create();
    if (v.status) {
      w.uint32(tag(1, LEN)).fork();
      if (v.status.code) w.uint32(tag(1, VARINT)).int32(v.status.code);
      writeString(w, 2, v.status.message);
      for (const d of v.status.details) {
        w.uint32(tag(3, LEN)).fork();
        writeString(w, 1, d.typeUrl);
        writeBytes(w, 2, d.value);
        w.ldelim();
      }
      w.ldelim();
    }
    writeBytes(w, 2, v.payload);
    return w.finish();
  },
  decode(bytes) {
    const r = Reader.create(bytes);
    const v: Response = { status: null, payload: new Uint8Array(0) };
    fields(r, r.len, (no) => {
      if (no === 1) v.status = sub(r, readStatus);
      else if (no === 2) v.payload = r.bytes();
      else return false;
      return true;
    });
    return v;
  },
};

export const requestCodec = (): EnvelopeCodec<Request> => request;
export const responseCodec = (): EnvelopeCodec<Response> => response;
