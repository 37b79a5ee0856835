// What tsrun asks of the host it runs on, for create, run and exec alike.
import { closeSync, openSync, readFileSync } from "node:fs";

/** AppArmor is enabled on this host (so a profile can be applied). */
export function apparmorEnabled(): boolean {
  try {
    return readFileSync("/sys/module/apparmor/parameters/enabled", "utf8").trim() === "Y";
  } catch {
    return false;
  }
}

/**
 * Whether a terminal is there to relay a container's to, as runc asks: one of our stdio, or
 * the controlling terminal when all three are redirected. Without one, a shell on the pty would
 * wait for input nobody can give, silently.
 */
export function hostTerminal(): boolean {
  const { isatty } = require("node:tty") as typeof import("node:tty");
  if (isatty(0) || isatty(1) || isatty(2)) return true;
  try {
    closeSync(openSync("/dev/tty", "r"));
    return true;
  } catch {
    return false;
  }
}
