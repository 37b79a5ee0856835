// The ttrpc envelope messages (ttrpc.Request, ttrpc.Response, google.rpc.Status).
import type protobuf from "protobufjs";
import requestProto from "../../proto/containerd/ttrpc/request.proto" with { type: "text" };
import statusProto from "../../proto/containerd/rpc/status.proto" with { type: "text" };
import { codec, parseProtos, type Any, type Codec } from "./codec.ts";

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

interface Envelope {
  root: protobuf.Root;
  request: Codec<Request>;
  response: Codec<Response>;
}

let envelope: Envelope | undefined;

function load(): Envelope {
  if (!envelope) {
    const root = parseProtos([statusProto, requestProto]);
    envelope = { root, request: codec<Request>(root, "ttrpc.Request"), response: codec<Response>(root, "ttrpc.Response") };
  }
  return envelope;
}

export const requestCodec = (): Codec<Request> => load().request;
export const responseCodec = (): Codec<Response> => load().response;
