// Phase timings for development: TSRUN_TRACE=1 prints "trace +<ms since start> <what>" to stderr.
const on = process.env.TSRUN_TRACE === "1";
const t0 = performance.timeOrigin;

export function trace(what: string): void {
  if (on) process.stderr.write(`trace +${(performance.timeOrigin - t0 + performance.now()).toFixed(2)}ms ${what}\n`);
}
