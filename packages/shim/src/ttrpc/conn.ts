// The socket half shared by server and client: ordered writes that survive backpressure, and
// frames decoded from whatever chunks arrive.
import type { Socket } from "bun";
import { encodeFrame, FrameDecoder, type Decoded, type Frame } from "./frame.ts";

/**
 * One end of a ttrpc connection over a Bun socket. Bun's `write` may take only part of a buffer
 * when the kernel's send buffer is full; the rest waits here, in order, until `drain`.
 */
export class FrameConn {
  readonly decoder = new FrameDecoder();
  private queue: Uint8Array[] = [];
  closed = false;

  constructor(readonly socket: Socket<unknown>) {}

  send(frame: Frame): void {
    if (this.closed) return;
    const bytes = encodeFrame(frame);
    if (this.queue.length > 0) {
      this.queue.push(bytes);
      return;
    }
    const n = this.socket.write(bytes);
    if (n < bytes.length) this.queue.push(bytes.subarray(Math.max(n, 0)));
  }

  /** Called from the socket's drain handler. */
  flush(): void {
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      const n = this.socket.write(head);
      if (n < head.length) {
        this.queue[0] = head.subarray(Math.max(n, 0));
        return;
      }
      this.queue.shift();
    }
  }

  receive(chunk: Uint8Array): Decoded[] {
    return this.decoder.push(chunk);
  }

  /** Everything handed to send has reached the kernel. */
  get idle(): boolean {
    return this.queue.length === 0;
  }
}
