// Phase timings and debug lines. TSRUN_TRACE=1 prints "trace +<ms since start> <what>" to stderr
// (development); --debug sends the same phases to the log as debug lines (runc's --debug).
const on = process.env.TSRUN_TRACE === "1";
const t0 = performance.timeOrigin;
let sink: ((what: string) => void) | undefined;

/** Where phases go besides TSRUN_TRACE (set by the CLI under --debug). */
export function setTraceSink(fn: ((what: string) => void) | undefined): void {
  sink = fn;
}

export function trace(what: string): void {
  if (on) process.stderr.write(`trace +${(performance.timeOrigin - t0 + performance.now()).toFixed(2)}ms ${what}\n`);
  sink?.(what);
}
