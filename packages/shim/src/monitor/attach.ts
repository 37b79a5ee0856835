// The client side of the attach socket (`tsrun attach`, and `run --image` in the foreground):
// the container's output to our stdout and stderr, our stdin to the container (with -i; raw
// when it is a terminal), the terminal's size on attach and on SIGWINCH, the detach keys.
import { closeSync, constants as fsc, openSync, writeSync } from "node:fs";
import net from "node:net";
import { FRAME, FrameReader, frame, resizeFrame, SOCKET_NAME } from "./protocol.ts";

/** Docker's default detach keys, ctrl-p ctrl-q. */
export const DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q";

/** Docker's --detach-keys: comma-separated keys, each a single character or ctrl-<a-z @ [ \ ] ^ _>. */
export function parseDetachKeys(spec: string): number[] {
  if (spec === "") return [];
  return spec.split(",").map((key) => {
    const k = key.trim();
    if (k.length === 1) return k.charCodeAt(0);
    const m = /^ctrl-(.)$/i.exec(k);
    if (m) {
      const c = m[1]!.toLowerCase();
      if (c >= "a" && c <= "z") return c.charCodeAt(0) - 96;
      const special = "@[\\]^_".indexOf(c);
      if (special >= 0) return special === 0 ? 0 : 26 + special;
    }
    throw new Error(`invalid detach keys ${JSON.stringify(spec)}: ${JSON.stringify(k)} is not a character or ctrl-<a-z, @, [, \\, ], ^, _>`);
  });
}

/**
 * Matches the detach keys in the input as it is typed: bytes that may begin the sequence are
 * held back until it is complete (detach) or broken (they go on to the container).
 */
export class DetachMatcher {
  private held: number[] = [];
  constructor(private keys: number[]) {}

  /** The bytes to pass on, and whether the sequence was completed. */
  feed(chunk: Uint8Array): { pass: Buffer; detach: boolean } {
    if (!this.keys.length) return { pass: Buffer.from(chunk), detach: false };
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held.length]) {
        this.held.push(b);
        if (this.held.length === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      out.push(...this.held);
      this.held = [];
      if (b === this.keys[0]) this.held.push(b);
      else out.push(b);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}

export interface AttachOptions {
  bundle: string;
  /** Send our stdin to the container. */
  stdin: boolean;
  /** The container has a terminal. */
  tty: boolean;
  detachKeys: number[];
  /** Called once the socket is connected (run starts the container then: no output is lost). */
  connected?: () => void;
}

export type AttachResult = { exit: number } | { detached: true };

/** Connects to the container's monitor; undefined when there is none to reach (the container has exited). */
export async function attach(o: AttachOptions): Promise<AttachResult | undefined> {
  const dirFd = openSync(o.bundle, fsc.O_RDONLY | fsc.O_DIRECTORY | 0o2000000);
  let sock: net.Socket;
  try {
    sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(`/proc/${process.pid}/fd/${dirFd}/${SOCKET_NAME}`);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
  } catch {
    return undefined;
  } finally {
    closeSync(dirFd);
  }
  const stdin = process.stdin;
  const raw = o.stdin && o.tty && stdin.isTTY;
  const cleanups: (() => void)[] = [];
  return new Promise<AttachResult>((resolve) => {
    let done = false;
    const finish = (r: AttachResult) => {
      if (done) return;
      done = true;
      for (const c of cleanups.reverse()) c();
      sock.destroy();
      resolve(r);
    };
    const reader = new FrameReader((type, payload) => {
      if (type === FRAME.STDOUT) writeAllSync(1, payload);
      else if (type === FRAME.STDERR) writeAllSync(2, payload);
      else if (type === FRAME.EXIT) finish({ exit: Number(payload.toString()) });
    });
    sock.on("data", (d: string | Buffer) => reader.push(typeof d === "string" ? Buffer.from(d) : d));
    // Closed without a status: the monitor was killed. The container's fate is unknown here.
    sock.on("close", () => finish({ exit: 255 }));
    sock.on("error", () => {});
    if (o.tty && process.stdout.isTTY) {
      const resize = () => sock.write(resizeFrame(process.stdout.rows, process.stdout.columns));
      resize();
      process.on("SIGWINCH", resize);
      cleanups.push(() => process.off("SIGWINCH", resize));
    }
    if (o.stdin) {
      if (raw) {
        stdin.setRawMode(true);
        cleanups.push(() => stdin.setRawMode(false));
      }
      // Detach keys only from a terminal: piped input goes through byte for byte.
      const matcher = new DetachMatcher(stdin.isTTY ? o.detachKeys : []);
      const onData = (d: Buffer) => {
        const { pass, detach } = matcher.feed(d);
        if (pass.length) sock.write(frame(FRAME.STDIN, pass));
        if (detach) finish({ detached: true });
      };
      const onEnd = () => sock.write(frame(FRAME.STDIN_EOF));
      stdin.on("data", onData);
      stdin.on("end", onEnd);
      cleanups.push(() => {
        stdin.off("data", onData);
        stdin.off("end", onEnd);
        stdin.pause();
      });
    }
    o.connected?.();
  });
}

function writeAllSync(fd: number, b: Buffer): void {
  for (let at = 0; at < b.length; ) {
    try {
      at += writeSync(fd, b, at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      return; // our stdout is gone: the container goes on
    }
  }
}
