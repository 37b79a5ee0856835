// Publishing task events to containerd without ever holding up a Task call: publish() only
// queues; one loop sends the queue in order (containerd needs Create → Start → Exit → Delete of a
// process in that order), retries a failed send a few times with a growing pause, and then drops
// the event with a line in the shim log. The queue is bounded; when it is full the oldest event goes.
//
// Transports, as containerd 1.6/1.7 accept them:
// - ttrpc (what containerd's own shims use): containerd.services.events.ttrpc.v1.Events/Forward
//   on containerd's ttrpc socket, which containerd passes as TTRPC_ADDRESS (a path; `unix://`
//   is accepted too), over one connection opened on first use and again after a failure;
// - the publish binary (`-publish-binary`, containerd itself): `<bin> --address <grpc> publish
//   --topic T --namespace NS` with the event's Any on stdin; used when there is no TTRPC_ADDRESS.
import { TtrpcClient } from "../ttrpc/client.ts";
import { timestamp } from "../ttrpc/codec.ts";
import { eventAny, eventsProtoCodecs, EVENTS_SERVICE, type Envelope, type Publish, type Topic, type TopicEvents } from "./proto.ts";

/** A way to hand one envelope to containerd; rejects on failure. */
export interface Transport {
  send(envelope: Envelope): Promise<void>;
  close(): void;
}

export interface PublisherOptions {
  namespace: string;
  transport: Transport | undefined;
  /** Where failures are reported (the shim log). */
  log: (line: string) => void;
  /** Tries per event (the first included). Default 5. */
  attempts?: number;
  /** Pause before try n+1 (n from 1). Default n × 500 ms. */
  retryDelayMs?: (n: number) => number;
  /** Most events waiting. Default 2048. */
  maxQueue?: number;
}

export class Publisher {
  private queue: Envelope[] = [];
  private sending: Promise<void> | undefined;
  private closed = false;

  constructor(private opts: PublisherOptions) {}

  /** The hook for the Task service: queues the event and returns. */
  readonly publish: Publish = <T extends Topic>(topic: T, event: TopicEvents[T]) => {
    if (this.closed || !this.opts.transport) return;
    let envelope: Envelope;
    try {
      envelope = { timestamp: timestamp(Date.now()), namespace: this.opts.namespace, topic, event: eventAny(topic, event) };
    } catch (err) {
      this.opts.log(`event ${topic} not published: it does not encode: ${(err as Error).message}`);
      return;
    }
    if (this.queue.length >= (this.opts.maxQueue ?? 2048)) {
      const dropped = this.queue.shift()!;
      this.opts.log(`event queue full: dropped ${dropped.topic}`);
    }
    this.queue.push(envelope);
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
    });
  };

  private async drain(): Promise<void> {
    const transport = this.opts.transport!;
    const attempts = this.opts.attempts ?? 5;
    const delay = this.opts.retryDelayMs ?? ((n: number) => n * 500);
    for (let envelope = this.queue.shift(); envelope; envelope = this.queue.shift()) {
      for (let n = 1; ; n++) {
        try {
          await transport.send(envelope);
          break;
        } catch (err) {
          if (n >= attempts || this.closed) {
            this.opts.log(`event ${envelope.topic} dropped after ${n} tries: ${(err as Error).message}`);
            break;
          }
          await Bun.sleep(delay(n));
        }
      }
    }
  }

  /** Waits until the queue is sent (or `ms` passed): before the shim exits. */
  async flush(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (this.sending && Date.now() < end) {
      await Promise.race([this.sending, Bun.sleep(Math.max(0, end - Date.now()))]);
    }
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.opts.transport?.close();
  }
}

/** ttrpc Forward to containerd's events service. */
export class TtrpcTransport implements Transport {
  private client: Promise<TtrpcClient> | undefined;

  constructor(
    private address: string,
    private timeoutMs = 5000,
  ) {}

  async send(envelope: Envelope): Promise<void> {
    const path = this.address.replace(/^unix:\/\//, "");
    this.client ??= TtrpcClient.connect(path);
    let client: TtrpcClient;
    try {
      client = await this.client;
    } catch (err) {
      this.client = undefined;
      throw new Error(`connecting to ${path}: ${(err as Error).message}`);
    }
    const payload = eventsProtoCodecs().forwardRequest.encode({ envelope });
    try {
      await client.call(EVENTS_SERVICE, "Forward", payload, { metadata: { "containerd-namespace-ttrpc": envelope.namespace }, timeoutMs: this.timeoutMs });
    } catch (err) {
      // The next try opens a new connection (this one may be broken or stuck).
      client.close();
      this.client = undefined;
      throw err;
    }
  }

  close(): void {
    void this.client?.then((c) => c.close(), () => {});
    this.client = undefined;
  }
}

/** containerd's `publish` command, the event's Any on stdin. */
export class BinaryTransport implements Transport {
  constructor(
    private binary: string,
    private grpcAddress: string,
    private timeoutMs = 5000,
  ) {}

  async send(envelope: Envelope): Promise<void> {
    const argv = [this.binary, "--address", this.grpcAddress, "publish", "--topic", envelope.topic, "--namespace", envelope.namespace];
    const proc = Bun.spawn(argv, { stdin: eventsProtoCodecs().any.encode(envelope.event), stdout: "ignore", stderr: "pipe", timeout: this.timeoutMs, killSignal: "SIGKILL" });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (code !== 0) throw new Error(`${argv.join(" ")} exited with ${proc.signalCode ?? code}: ${stderr.trim()}`);
  }

  close(): void {}
}

/** The transport containerd's launch gives: TTRPC_ADDRESS first, else the publish binary, else none. */
export function transportFromEnvironment(env: Record<string, string | undefined>, publishBinary: string, grpcAddress: string): Transport | undefined {
  if (env.TTRPC_ADDRESS) return new TtrpcTransport(env.TTRPC_ADDRESS);
  if (publishBinary && grpcAddress) return new BinaryTransport(publishBinary, grpcAddress);
  return undefined;
}
