// ttrpc framing: a 10-byte big-endian header (data length u32, stream id u32, type u8, flags u8)
// followed by the data. Pure: bytes in, frames out; the socket code lives in server.ts/client.ts.

export const HEADER_LENGTH = 10;
/** ttrpc's limit on one frame's data (4 MiB); larger frames are skipped and answered with an error. */
export const MAX_DATA_LENGTH = 4 << 20;

export const FrameType = { Request: 0x01, Response: 0x02, Data: 0x03 } as const;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  data: Uint8Array;
}

export class FrameTooLarge extends Error {
  override name = "FrameTooLarge";
  constructor(readonly length: number) {
    super(`ttrpc frame of ${length} bytes exceeds the ${MAX_DATA_LENGTH}-byte limit`);
  }
}

export function encodeFrame(frame: Frame): Uint8Array {
  const { data } = frame;
  if (data.length > MAX_DATA_LENGTH) throw new FrameTooLarge(data.length);
  if (!Number.isInteger(frame.streamId) || frame.streamId < 0 || frame.streamId > 0xffffffff) throw new RangeError(`ttrpc stream id out of range: ${frame.streamId}`);
  const out = new Uint8Array(HEADER_LENGTH + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  view.setUint32(4, frame.streamId);
  view.setUint8(8, frame.type & 0xff);
  view.setUint8(9, frame.flags & 0xff);
  out.set(data, HEADER_LENGTH);
  return out;
}

/**
 * What the decoder found: a whole frame, or the header of an oversized one whose data it skips
 * (the peer gets an error for that stream, and the connection stays usable, as in ttrpc).
 */
export type Decoded = { kind: "frame"; frame: Frame } | { kind: "oversized"; streamId: number; type: number; length: number };

/**
 * Reassembles frames from chunks as a stream socket delivers them: split anywhere, several
 * frames per chunk. Oversized frames are never buffered, only counted off.
 */
export class FrameDecoder {
  /** Received bytes not yet returned as frames, kept as chunks until a whole frame is there. */
  private chunks: Uint8Array[] = [];
  private size = 0;
  /** Bytes needed before decoding can progress: a header, or a header and its data. */
  private needed = HEADER_LENGTH;
  /** Bytes of an oversized frame's data still to drop. */
  private skipping = 0;

  push(chunk: Uint8Array): Decoded[] {
    const out: Decoded[] = [];
    let input = chunk;
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, input.length);
      this.skipping -= n;
      input = input.subarray(n);
    }
    if (input.length === 0) return out;
    this.chunks.push(input);
    this.size += input.length;
    // Waiting for the rest of a frame costs no copy: a 4 MiB frame in 64 KiB chunks is joined once.
    if (this.size < this.needed) return out;
    const buf = this.chunks.length === 1 ? this.chunks[0]! : concat(this.chunks, this.size);
    let off = 0;
    this.needed = HEADER_LENGTH;
    while (buf.length - off >= HEADER_LENGTH) {
      const view = new DataView(buf.buffer, buf.byteOffset + off, HEADER_LENGTH);
      const length = view.getUint32(0);
      const streamId = view.getUint32(4);
      const type = view.getUint8(8);
      const flags = view.getUint8(9);
      if (length > MAX_DATA_LENGTH) {
        out.push({ kind: "oversized", streamId, type, length });
        off += HEADER_LENGTH;
        const n = Math.min(length, buf.length - off);
        off += n;
        this.skipping = length - n;
        continue;
      }
      if (buf.length - off - HEADER_LENGTH < length) {
        this.needed = HEADER_LENGTH + length;
        break;
      }
      const start = off + HEADER_LENGTH;
      // A copy: the frame must not alias a buffer the socket may reuse.
      out.push({ kind: "frame", frame: { streamId, type, flags, data: buf.slice(start, start + length) } });
      off = start + length;
    }
    const rest = buf.subarray(off);
    this.chunks = rest.length === 0 ? [] : [rest.slice()];
    this.size = rest.length;
    return out;
  }

  /** Bytes held for an incomplete frame (a connection that closes with some is truncated). */
  get pending(): number {
    return this.size + this.skipping;
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
