// A small ttrpc client: unary calls over one unix-socket connection, any number in flight.
// Used by the tests to drive the Task service as containerd does.
import type { Socket } from "bun";
import { FrameConn } from "./conn.ts";
import { FrameType } from "./frame.ts";
import { requestCodec, responseCodec, type KeyValue } from "./messages.ts";
import { Code, TtrpcError } from "./status.ts";

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(err: Error): void;
}

export interface CallOptions {
  metadata?: Record<string, string>;
  /** Sent as timeout_nano (the server may use it); the client itself gives up after it too. */
  timeoutMs?: number;
}

export class TtrpcClient {
  private nextStream = 1;
  private pending = new Map<number, Pending>();

  private constructor(private conn: FrameConn) {}

  /** Connects to a socket path, or an abstract socket when `path` starts with "\0". */
  static async connect(path: string): Promise<TtrpcClient> {
    let client: TtrpcClient | undefined;
    const socket = await Bun.connect({
      unix: path,
      socket: {
        data: (_s, chunk) => client?.onData(chunk),
        drain: () => client?.conn.flush(),
        close: () => client?.fail(new TtrpcError(Code.UNAVAILABLE, `ttrpc connection to ${path} closed`)),
        error: (_s, err) => client?.fail(new TtrpcError(Code.UNAVAILABLE, `ttrpc connection to ${path}: ${err.message}`)),
      },
    });
    client = new TtrpcClient(new FrameConn(socket as Socket<unknown>));
    return client;
  }

  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.conn.closed) return Promise.reject(new TtrpcError(Code.UNAVAILABLE, "ttrpc connection is closed"));
    const streamId = this.nextStream;
    this.nextStream += 2;
    const metadata: KeyValue[] = Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value }));
    const data = requestCodec().encode({ service, method, payload, timeoutNano: (opts.timeoutMs ?? 0) * 1e6, metadata });
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        this.pending.delete(streamId);
      };
      this.pending.set(streamId, {
        resolve: (p) => (done(), resolve(p)),
        reject: (e) => (done(), reject(e)),
      });
      if (opts.timeoutMs) {
        timer = setTimeout(() => this.pending.get(streamId)?.reject(new TtrpcError(Code.DEADLINE_EXCEEDED, `${service}/${method}: no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      }
      this.conn.send({ streamId, type: FrameType.Request, flags: 0, data });
    });
  }

  close(): void {
    if (this.conn.closed) return;
    this.conn.closed = true;
    this.conn.socket.end();
    this.fail(new TtrpcError(Code.UNAVAILABLE, "ttrpc client closed"));
  }

  private fail(err: Error): void {
    this.conn.closed = true;
    for (const p of [...this.pending.values()]) p.reject(err);
  }

  private onData(chunk: Uint8Array): void {
    for (const d of this.conn.receive(chunk)) {
      if (d.kind === "oversized") {
        this.pending.get(d.streamId)?.reject(new TtrpcError(Code.RESOURCE_EXHAUSTED, `response of ${d.length} bytes exceeds the maximum`));
        continue;
      }
      const { frame } = d;
      if (frame.type !== FrameType.Response) continue;
      const p = this.pending.get(frame.streamId);
      if (!p) continue;
      try {
        const res = responseCodec().decode(frame.data);
        if (res.status && res.status.code !== Code.OK) p.reject(new TtrpcError(res.status.code, res.status.message));
        else p.resolve(res.payload);
      } catch (err) {
        p.reject(new TtrpcError(Code.INTERNAL, `malformed ttrpc response: ${(err as Error).message}`));
      }
    }
  }
}
