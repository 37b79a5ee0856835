// The attach socket's frames, both ways: a type byte, a 4-byte big-endian length, the payload.
//   client → monitor: STDIN bytes, STDIN_EOF, RESIZE (rows, cols: two big-endian uint16)
//   monitor → client: STDOUT bytes, STDERR bytes, EXIT (the status as decimal text), then it closes
export const FRAME = { STDIN: 0, STDOUT: 1, STDERR: 2, EXIT: 3, STDIN_EOF: 4, RESIZE: 5 } as const;

export function frame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.allocUnsafe(5 + payload.length);
  b[0] = type;
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, 5);
  return b;
}

export function resizeFrame(rows: number, cols: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt16BE(rows & 0xffff, 0);
  p.writeUInt16BE(cols & 0xffff, 2);
  return frame(FRAME.RESIZE, p);
}

/** Collects bytes from a stream socket and hands out whole frames. */
export class FrameReader {
  private buf = Buffer.alloc(0);

  constructor(private onFrame: (type: number, payload: Buffer) => void) {}

  push(chunk: Uint8Array): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) return;
      const type = this.buf[0]!;
      const payload = this.buf.subarray(5, 5 + len);
      this.buf = this.buf.subarray(5 + len);
      this.onFrame(type, payload);
    }
  }
}

/** Short enough for sun_path (108 bytes) wherever the bundle is: reached through the monitor's or our open directory. */
export const SOCKET_NAME = "attach.sock";
