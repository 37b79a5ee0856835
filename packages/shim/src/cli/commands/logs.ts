// `tsrun logs`: a container's output from its CRI log (monitor/cri.ts), as `docker logs` shows
// it: stdout records to stdout, stderr records to stderr, a partial record's text joined to
// the next one's; --tail N the last N lines, --since a time or a duration back from now,
// --timestamps each line's time first, -f on until the container exits.
import { closeSync, openSync, readSync, fstatSync, writeSync } from "node:fs";
import { defineCommand, CliError } from "@tsrun/runtime/cli";
import { parseDuration, Store } from "@tsrun/runtime";
import { imageRootFlag, images } from "./common.ts";
import { parseRecord, type CriRecord } from "../../monitor/cri.ts";
import { imageContainerBundle, monitorAlive, monitorFiles, readExitRecord, readMonitorRecord } from "../../monitor/files.ts";

/** Docker's --since: an RFC 3339 time (or date), a Unix time (seconds[.fraction]), or a Go duration back from now. In ns since the epoch. */
export function parseSince(text: string, nowMs = Date.now()): bigint {
  if (/^\d+(\.\d{1,9})?$/.test(text)) {
    const [s, f = ""] = text.split(".");
    return BigInt(s!) * 1_000_000_000n + BigInt(f.padEnd(9, "0"));
  }
  // A Go duration, as `events --interval` reads one (a bare number was a Unix time above).
  let back: number | undefined;
  try {
    back = parseDuration(text);
  } catch {
    // Not a duration: a time, below.
  }
  if (back !== undefined) return BigInt(Math.round((nowMs - back) * 1e6));
  const m = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d{1,9})?)?(Z|[+-]\d\d:?\d\d)?$/.exec(text);
  if (m) {
    const ms = Date.parse(`${m[1]}T${m[2] ?? "00:00:00"}${m[4] ?? "Z"}`);
    if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n + BigInt((m[3] ?? ".").slice(1).padEnd(9, "0"));
  }
  throw new CliError(`invalid --since ${JSON.stringify(text)}: give a time (2026-01-02T15:04:05Z, or a Unix time in seconds) or a duration back from now (10m, 1h30m)`);
}

/** A log line: its records (P… F), joined. */
interface Line {
  ns: bigint;
  time: string;
  stream: "stdout" | "stderr";
  text: Buffer;
  complete: boolean;
}

/** Reads whole record lines from the log as it grows; a record not yet ended by its newline waits. */
class LogReader {
  private rest = Buffer.alloc(0);
  private pos = 0;
  private open: Partial<Record<"stdout" | "stderr", Line>> = {};

  constructor(private fd: number) {}

  /** The lines completed by what was appended since the last call (with `flush`, partial ones too). */
  read(flush = false): Line[] {
    const size = fstatSync(this.fd).size;
    const chunks: Buffer[] = [this.rest];
    while (this.pos < size) {
      const b = Buffer.allocUnsafe(Math.min(1 << 20, size - this.pos));
      const n = readSync(this.fd, b, 0, b.length, this.pos);
      if (n <= 0) break;
      this.pos += n;
      chunks.push(b.subarray(0, n));
    }
    const buf = Buffer.concat(chunks);
    const out: Line[] = [];
    let at = 0;
    for (let nl = buf.indexOf(10, at); nl >= 0; nl = buf.indexOf(10, at)) {
      const r = parseRecord(buf.subarray(at, nl));
      at = nl + 1;
      if (r) this.add(r, out);
    }
    this.rest = Buffer.from(buf.subarray(at));
    if (flush)
      for (const s of ["stdout", "stderr"] as const) {
        if (this.open[s]) out.push(this.open[s]!);
        delete this.open[s];
      }
    return out;
  }

  private add(r: CriRecord, out: Line[]): void {
    const cur = this.open[r.stream];
    const line = cur ? { ...cur, text: Buffer.concat([cur.text, r.text]) } : { ns: r.ns, time: r.time, stream: r.stream, text: r.text, complete: false };
    if (r.partial) {
      this.open[r.stream] = line;
      return;
    }
    delete this.open[r.stream];
    out.push({ ...line, complete: true });
  }
}

export default defineCommand({
  summary: "show the output of a container of `run --image` (its CRI log)",
  description:
    "Shows what the container wrote to its stdout (here on stdout) and its stderr (on stderr), from its log: the file its monitor writes in containerd's CRI log format (each record `TIMESTAMP STREAM P|F TEXT`, P for a part of a longer line), container.log in its bundle. Works while the container runs and after it exits, until `tsrun delete` removes it. As `docker logs`: --tail N shows the last N lines, --since a time or a duration back from now, -f follows the output until the container exits.",
  examples: ["tsrun logs web", "tsrun logs -f --tail 10 web", "tsrun logs --since 5m -t web", "tsrun logs --since 2026-12-07T10:00:00Z web"],
  flags: {
    ...imageRootFlag,
    follow: { type: "boolean", char: "f", description: "follow the output until the container exits" },
    since: { type: "string", description: "only lines since TIME (RFC 3339, or Unix seconds) or DURATION back from now (10m, 1h)" },
    tail: { type: "string", char: "n", description: "the number of lines to show from the end (default all)", default: "all" },
    timestamps: { type: "boolean", char: "t", description: "each line's time (RFC 3339 with nanoseconds) first" },
  },
  args: [{ name: "id", description: "the container id", required: true }],
  async run(ctx, flags, args) {
    const id = args[0]!;
    const tail = flags.tail === "all" ? Infinity : /^\d+$/.test(flags.tail) ? Number(flags.tail) : NaN;
    if (Number.isNaN(tail)) throw new CliError(`invalid --tail ${JSON.stringify(flags.tail)}: a number of lines, or all`);
    const since = flags.since === undefined ? undefined : parseSince(flags.since);
    let recordBundle: string | undefined;
    try {
      recordBundle = new Store(ctx.globals.root).read(id).bundle;
    } catch {
      // no runtime state: the image store's bundle may still be there
    }
    const bundle = imageContainerBundle(recordBundle, images(flags).root, id);
    if (!bundle) throw new CliError(`container ${id} has no log: only containers of \`tsrun run --image\` have one${recordBundle ? "" : ` (and there is no container ${id})`}`);
    const files = monitorFiles(bundle);
    let fd: number;
    try {
      fd = openSync(files.log, "r");
    } catch (e) {
      throw new CliError(`cannot read the log of ${id}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      const reader = new LogReader(fd);
      const show = (lines: Line[]) => {
        for (const l of lines) {
          if (since !== undefined && l.ns < since) continue;
          const text = l.complete ? Buffer.concat([l.text, Buffer.from("\n")]) : l.text;
          const out = flags.timestamps ? Buffer.concat([Buffer.from(`${l.time} `), text]) : text;
          writeAllSync(l.stream === "stdout" ? 1 : 2, out);
        }
      };
      const running = () => {
        if (readExitRecord(bundle)) return false;
        const m = readMonitorRecord(bundle);
        return m !== undefined && monitorAlive(m);
      };
      // Decided before the first read: what the container writes after it is followed, all of it.
      const follow = flags.follow && running();
      let first = reader.read(!follow).filter((l) => since === undefined || l.ns >= since);
      if (tail !== Infinity) first = tail === 0 ? [] : first.slice(-tail);
      show(first);
      if (!follow) return 0;
      for (;;) {
        await Bun.sleep(100);
        const alive = running();
        show(reader.read(!alive));
        if (!alive) return 0;
      }
    } finally {
      closeSync(fd);
    }
  },
});

function writeAllSync(fd: number, b: Buffer): void {
  for (let at = 0; at < b.length; ) at += writeSync(fd, b, at);
}
