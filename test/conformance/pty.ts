// A command run on a terminal of its own, as a user at a shell runs `docker run -it` or `ctr run
// -t`: script(1) (bsdutils) gives it a pty, what is typed goes to script's stdin, and everything
// the command writes comes back (with the pty's \r\n, which `text` turns back into \n). script's
// stdin stays open until the command ends: at EOF script would send the terminal's EOF character
// into the command, which an engine in raw mode forwards to the container.

const quote = (a: string) => `'${a.replaceAll("'", `'"'"'`)}'`;

export class Terminal {
  private readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  private raw = "";
  private readonly reader: Promise<void>;
  private readonly timer: Timer;
  private closed = false;

  /** Runs `argv` on a rows×cols terminal; killed after `limitMs` whatever happens. */
  constructor(argv: string[], opts: { rows?: number; cols?: number; limitMs?: number } = {}) {
    const script = `stty rows ${opts.rows ?? 24} cols ${opts.cols ?? 80} && exec ${argv.map(quote).join(" ")}`;
    this.proc = Bun.spawn(["script", "-qec", script, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    this.timer = setTimeout(() => this.proc.kill("SIGKILL"), opts.limitMs ?? 60_000);
    const stdout = this.proc.stdout;
    this.reader = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stdout) this.raw += decoder.decode(chunk, { stream: true });
    })();
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** What the terminal showed so far, with \r removed. */
  get text(): string {
    return this.raw.replaceAll("\r", "");
  }

  /** Waits until the output matches `re` (throws with what was seen after `ms`, or if the command ended first). */
  async waitFor(re: RegExp, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (!re.test(this.text)) {
      if (this.proc.exitCode !== null) {
        await this.reader;
        if (re.test(this.text)) return;
        throw new Error(`the command ended (status ${this.proc.exitCode}) before ${re} was seen; it showed: ${JSON.stringify(this.text)}`);
      }
      if (Date.now() > end) throw new Error(`${re} not seen in ${ms} ms; the terminal showed: ${JSON.stringify(this.text)}`);
      await Bun.sleep(20);
    }
  }

  /** Types `keys` at the terminal (a line needs its own "\n", which the pty turns into Enter). */
  type(keys: string): void {
    this.proc.stdin.write(keys);
    this.proc.stdin.flush();
  }

  /** Waits for the command to end and returns its exit status (script -e passes it on). */
  async exited(): Promise<number> {
    const code = await this.proc.exited;
    clearTimeout(this.timer);
    await this.reader;
    if (!this.closed) {
      this.closed = true;
      this.proc.stdin.end();
    }
    return code;
  }

  /** Ends the command if it still runs (for clean-up after a failure). */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
    await this.exited();
  }
}

/**
 * One line typed at an interactive busybox sh that `argv` runs on a rows×cols terminal, as a user
 * would: waits for the shell's prompt (an interactive shell, so its stdin is the container's
 * terminal; its line editor then asks the terminal for the cursor position and redraws the
 * prompt), types `line`, waits for `done` in the output, then types `exit <status>`. Returns the
 * status the command ended with and all the terminal showed; the command is killed if any step
 * fails.
 */
export async function shellSession(argv: string[], size: { rows: number; cols: number }, line: string, done: RegExp, status: number): Promise<{ code: number; text: string }> {
  const term = new Terminal(argv, size);
  let code: number;
  try {
    await term.waitFor(/\/ # /);
    term.type(line);
    await term.waitFor(done);
    term.type(`exit ${status}\n`);
    code = await term.exited();
  } finally {
    await term.kill();
  }
  return { code, text: term.text };
}
