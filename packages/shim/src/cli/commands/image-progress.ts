// Per-blob progress of pull, push and import, drawn on stderr while it is a terminal: one line a
// layer (bytes done of total, rate), redrawn in place. Off a terminal nothing is drawn: logs and
// scripts get the command's one result line on stdout and nothing else.
import { humanSize } from "./common.ts";

/** What pull, push and import report about one blob (the shape of their "blob" events). */
export interface BlobEvent {
  what: string;
  digest?: string;
  completed: number;
  total: number;
  /** cached/exists: nothing to move; start/resume/data/retry: moving; done: stored or uploaded. */
  state: "cached" | "exists" | "start" | "resume" | "data" | "retry" | "done";
}

export interface ProgressRow {
  label: string;
  completed: number;
  total: number;
  state: BlobEvent["state"];
  /** When bytes began to move (ms), and how many were there already (a resumed download). */
  startedAt: number;
  startBytes: number;
  /** When it finished (ms), so the rate of a finished row stops changing. */
  endedAt?: number;
}

const BAR = 20;

/** 1500000 bytes in 1 s → "1.50 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${humanSize(Math.round(bytesPerSecond))}/s`;
}

function shortDigest(digest: string): string {
  const i = digest.indexOf(":");
  return digest.slice(i + 1, i + 13);
}

/** The label of a blob: its role and short digest, or (import) the archive path, shortened from the left. */
export function blobLabel(e: Pick<BlobEvent, "what" | "digest">): string {
  const m = /^blobs\/[a-z0-9]+\/([0-9a-f]{12})[0-9a-f]*$/.exec(e.what);
  if (m) return m[1]!;
  const label = e.digest ? `${e.what} ${shortDigest(e.digest)}` : e.what;
  return label.length > 40 ? `…${label.slice(-39)}` : label;
}

/** One row as text at time `now` (ms): "layer 1 of 2 3f2a…  [=====>     ]  1.2 MB / 3.4 MB  800 kB/s". */
export function renderRow(row: ProgressRow, now: number, labelWidth = row.label.length): string {
  const label = row.label.padEnd(labelWidth);
  switch (row.state) {
    case "cached":
      return `${label}  already in the store`;
    case "exists":
      return `${label}  already in the registry`;
    default: {
      const elapsed = ((row.endedAt ?? now) - row.startedAt) / 1000;
      const moved = row.completed - row.startBytes;
      const rate = elapsed > 0 && moved > 0 ? `  ${formatRate(moved / elapsed)}` : "";
      const size = `${humanSize(row.completed)} / ${humanSize(row.total)}`;
      if (row.state === "done") return `${label}  done  ${humanSize(row.total)}${rate}`;
      const frac = row.total > 0 ? Math.min(1, row.completed / row.total) : 0;
      const full = Math.floor(frac * BAR);
      const bar = `[${"=".repeat(full)}${full < BAR ? ">" : ""}${" ".repeat(Math.max(0, BAR - full - 1))}]`;
      return `${label}  ${bar}  ${size}${rate}${row.state === "retry" ? "  (retrying)" : ""}`;
    }
  }
}

/** Every row as lines, labels aligned. */
export function renderProgress(rows: readonly ProgressRow[], now: number): string[] {
  const width = rows.reduce((w, r) => Math.max(w, r.label.length), 0);
  return rows.map((r) => renderRow(r, now, width));
}

/** The rows of one command, redrawn in place through `write` (a terminal). */
export class ProgressDisplay {
  private readonly rows = new Map<string, ProgressRow>();
  private drawn = 0;
  private lastDraw = -Infinity;

  constructor(
    private readonly write: (text: string) => void,
    private readonly now: () => number = () => performance.now(),
    /** Least time between redraws (ms): a fast loopback transfer sends thousands of events. */
    private readonly interval = 100,
  ) {}

  update(e: BlobEvent): void {
    const key = e.digest ?? e.what;
    const t = this.now();
    let row = this.rows.get(key);
    if (!row) {
      row = { label: blobLabel(e), completed: e.completed, total: e.total, state: e.state, startedAt: t, startBytes: e.completed };
      this.rows.set(key, row);
    }
    if (e.state === "start" || e.state === "resume") {
      row.startedAt = t;
      row.startBytes = e.completed;
    }
    row.completed = e.completed;
    row.total = e.total;
    row.state = e.state;
    const final = e.state === "done" || e.state === "cached" || e.state === "exists";
    if (final) row.endedAt = t;
    if (final || t - this.lastDraw >= this.interval) this.draw(t);
  }

  /** A line printed above the rows (and kept). */
  note(line: string): void {
    this.clear();
    this.write(`${line}\n`);
    this.draw(this.now());
  }

  /** The last state of every row, left on the terminal. */
  finish(): void {
    if (this.rows.size) this.draw(this.now());
  }

  private clear(): void {
    if (this.drawn > 0) this.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(t: number): void {
    this.lastDraw = t;
    const lines = renderProgress([...this.rows.values()], t);
    // Back to the first row, then each line rewritten whole (\x1b[2K: a shorter line leaves no tail).
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const l of lines) out += `\r\x1b[2K${l}\n`;
    this.write(out);
    this.drawn = lines.length;
  }
}

/** A display on `stream` when it is a terminal, else undefined: quiet off a terminal. */
export function progressDisplay(stream: { isTTY?: boolean; write(text: string): unknown } = process.stderr, env: Record<string, string | undefined> = process.env): ProgressDisplay | undefined {
  if (!stream.isTTY || env.TERM === "dumb") return undefined;
  return new ProgressDisplay((text) => {
    stream.write(text);
  });
}
