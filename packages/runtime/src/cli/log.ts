// Errors and log lines as runc writes them: with --log, logrus lines to that file (JSON lines
// {"level","msg","time"} with --log-format json: containerd's shim reads the last error line);
// the human message always goes to stderr. An error's fields (errors.ts: pointer, path, errno …)
// follow runc's three keys in the JSON line, as logrus puts a line's fields beside them, and as
// key=value pairs after msg in the text line; the three keys themselves never change.
import { appendFileSync, closeSync, openSync } from "node:fs";
import type { GlobalOptions } from "./globals.ts";
import { writeAll } from "../io.ts";
import type { ErrorFields } from "../errors.ts";

export type Level = "debug" | "info" | "warning" | "error";

export function logLine(globals: Pick<GlobalOptions, "log" | "logFormat" | "debug">, level: Level, msg: string, fields: ErrorFields = {}): void {
  if (level === "debug" && !globals.debug) return;
  const time = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const line =
    globals.logFormat === "json"
      ? JSON.stringify({ level, msg, time, ...fields })
      : `time="${time}" level=${level} msg=${JSON.stringify(msg)}${Object.entries(fields)
          .map(([k, v]) => ` ${k}=${typeof v === "number" || /^[\w./@:+-]+$/.test(v) ? v : JSON.stringify(v)}`)
          .join("")}`;
  if (!globals.log) {
    // runc writes its log lines to stderr when there is no --log (errors go there anyway).
    if (level !== "error") writeAll(2, `${line}\n`);
    return;
  }
  try {
    appendFileSync(globals.log, line + "\n", { mode: 0o600 });
  } catch (e) {
    process.stderr.write(`tsrun: cannot write log ${globals.log}: ${(e as Error).message}\n`);
  }
}

/** Creates the log file if it is missing (mode 0600), leaving what it holds. */
export function openLog(path: string): void {
  try {
    closeSync(openSync(path, "a", 0o600));
  } catch (e) {
    process.stderr.write(`tsrun: cannot open log ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
  }
}

/** Reports a failed command: one error line in the log, the full text on stderr. */
export function reportError(globals: Pick<GlobalOptions, "log" | "logFormat" | "debug">, message: string, fields: ErrorFields = {}): void {
  logLine(globals, "error", message, fields);
  writeAll(2, message.startsWith("tsrun") ? `${message}\n` : `tsrun: ${message}\n`);
}
