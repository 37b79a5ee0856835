// containerd's CRI log format, one line per record:
//   <timestamp RFC3339Nano> <stdout|stderr> <P|F> <text>\n
// F ends a line of the container's output (its newline is the record's), P is a part of a
// longer line (containerd cuts lines at 16 KiB, its max_container_log_line_size) whose rest
// follows in the next records of the same stream. Output that ends without a newline is written
// as an F record when the stream ends, as containerd does. The timestamp is Go's RFC3339Nano
// in UTC: nanoseconds with trailing zeros dropped.

export type Stream = "stdout" | "stderr";

export const MAX_LINE = 16 * 1024;

/** Go's time.RFC3339Nano of an instant given in nanoseconds since the epoch, in UTC. */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${base}${frac ? `.${frac}` : ""}Z`;
}

let lastNs = 0n;
/** Now in nanoseconds since the epoch, never going backwards within this process. */
export function nowNs(): bigint {
  const ns = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  lastNs = ns > lastNs ? ns : lastNs + 1n;
  return lastNs;
}

/** Turns a stream's chunks into CRI records; `emit` gets each whole record line. */
export class CriLineWriter {
  private pending: Buffer[] = [];
  private pendingLen = 0;

  constructor(
    private stream: Stream,
    private emit: (line: Buffer) => void,
    private max = MAX_LINE,
  ) {}

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(10, at);
      const end = nl < 0 ? chunk.length : nl;
      let piece = chunk.subarray(at, end);
      // A line longer than max goes out in P records of max bytes.
      while (this.pendingLen + piece.length >= this.max && (nl < 0 || this.pendingLen + piece.length > this.max)) {
        const take = this.max - this.pendingLen;
        this.record("P", [...this.pending, piece.subarray(0, take)]);
        this.pending = [];
        this.pendingLen = 0;
        piece = piece.subarray(take);
      }
      if (nl < 0) {
        if (piece.length) {
          this.pending.push(Buffer.from(piece));
          this.pendingLen += piece.length;
        }
        return;
      }
      this.record("F", [...this.pending, piece]);
      this.pending = [];
      this.pendingLen = 0;
      at = nl + 1;
    }
  }

  /** The stream ended: a line left without its newline is written as a full one. */
  end(): void {
    if (this.pendingLen) this.record("F", this.pending);
    this.pending = [];
    this.pendingLen = 0;
  }

  private record(tag: "P" | "F", parts: Buffer[]): void {
    this.emit(Buffer.concat([Buffer.from(`${rfc3339Nano(nowNs())} ${this.stream} ${tag} `), ...parts, Buffer.from("\n")]));
  }
}

export interface CriRecord {
  /** The timestamp as written, and as nanoseconds since the epoch. */
  time: string;
  ns: bigint;
  stream: Stream;
  partial: boolean;
  text: Buffer;
}

const RECORD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d) (stdout|stderr) ([PF]) /;

/** Parses one record line (without its newline); undefined for a line that is not one. */
export function parseRecord(line: Buffer): CriRecord | undefined {
  const head = line.subarray(0, 64).toString("latin1");
  const m = RECORD.exec(head);
  if (!m) return undefined;
  const secs = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(secs)) return undefined;
  const frac = BigInt((m[2] ?? ".").slice(1).padEnd(9, "0"));
  return { time: `${m[1]}${m[2] ?? ""}${m[3]}`, ns: BigInt(secs) * 1_000_000n + frac, stream: m[4] as Stream, partial: m[5] === "P", text: line.subarray(m[0].length) };
}
