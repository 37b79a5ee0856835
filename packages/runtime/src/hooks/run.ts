// Hooks that run in the runtime's namespaces (prestart, createRuntime, poststart, poststop):
// the state JSON on stdin, args and env as configured, the bundle as working directory, killed at
// their timeout.
import { statSync } from "node:fs";
import type { Hook } from "@tsrun/ocispec/core";
import { TsrunError } from "../errors.ts";
import { SIG } from "../linux/constants.ts";
import { ownChild, releaseChild } from "../container/children.ts";

export class HookError extends TsrunError {
  override name = "HookError";
}

/**
 * The bundle named by the state JSON, when it is still a directory. runc chdirs to the bundle
 * before anything else (setupSpec), so its hooks run there and engines write hooks with paths
 * relative to it; tsrun keeps its caller's cwd, so it gives hooks the bundle explicitly.
 */
function bundleOf(state: string): string | undefined {
  try {
    const bundle = (JSON.parse(state) as { bundle?: unknown }).bundle;
    return typeof bundle === "string" && statSync(bundle).isDirectory() ? bundle : undefined;
  } catch {
    return undefined;
  }
}

/** What Bun.spawn(Sync) gets for a hook: argv[0] as configured, the bundle as cwd, env as configured. */
function hookSpawn(hook: Hook, state: string) {
  const cwd = bundleOf(state);
  const argv = hook.args && hook.args.length > 0 ? hook.args : [hook.path];
  return {
    cmd: [hook.path, ...argv.slice(1)],
    argv0: argv[0],
    ...(cwd ? { cwd } : {}),
    env: Object.fromEntries((hook.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
  };
}

/** What the C library calls the signals a hook is most often killed by (strsignal's words). */
const SIGNAL_WORDS: Readonly<Record<string, string>> = {
  SIGSYS: "bad system call",
  SIGKILL: "killed",
  SIGTERM: "terminated",
  SIGSEGV: "segmentation fault",
  SIGABRT: "aborted",
  SIGBUS: "bus error",
  SIGILL: "illegal instruction",
  SIGFPE: "floating point exception",
  SIGPIPE: "broken pipe",
};

/** "SIGSYS (bad system call)" for 31 or "SIGSYS": a number alone leaves the user looking it up. */
export function signalText(sig: string | number): string {
  // SIG lists each number's usual name first (ABRT before IOT).
  const found = typeof sig === "number" ? Object.entries(SIG).find(([, n]) => n === sig) : undefined;
  const name = typeof sig === "string" ? sig : found ? `SIG${found[0]}` : undefined;
  if (name === undefined) return `signal ${sig}`;
  const words = SIGNAL_WORDS[name];
  return words ? `${name} (${words})` : name;
}

function hookFailure(kind: string, index: number, hook: Hook, r: { timedOut: boolean; success: boolean; signal: string | number | null; code: number | null; out: string }): HookError | undefined {
  const out = r.out.trim().slice(0, 500);
  if (r.timedOut) return new HookError(`${kind} hook #${index} (${hook.path}) timed out after ${hook.timeout}s`);
  if (!r.success) return new HookError(`${kind} hook #${index} (${hook.path}) failed: ${r.signal ? `killed by ${signalText(r.signal)}` : `exit status ${r.code}`}${out ? `: ${out}` : ""}`);
  return undefined;
}

export function runHook(kind: string, index: number, hook: Hook, state: string): void {
  const timeout = hook.timeout ? hook.timeout * 1000 : undefined;
  let r;
  try {
    r = Bun.spawnSync({
      ...hookSpawn(hook, state),
      stdin: Buffer.from(state),
      stdout: "pipe",
      stderr: "pipe",
      ...(timeout ? { timeout, killSignal: "SIGKILL" as const } : {}),
    });
  } catch (e) {
    throw new HookError(`${kind} hook #${index} (${hook.path}) could not run: ${(e as Error).message}`);
  }
  const failure = hookFailure(kind, index, hook, {
    timedOut: !!r.exitedDueToTimeout,
    success: r.success,
    signal: r.signalCode ?? null,
    code: r.exitCode,
    out: r.stderr.toString() || r.stdout.toString(),
  });
  if (failure) throw failure;
}

/**
 * runHook without blocking the event loop (for a process that serves others meanwhile, the
 * shim). The hook is the library's child until its exit is read: ownsChild says so to a
 * subreaper in the same process.
 */
export async function runHookAsync(kind: string, index: number, hook: Hook, state: string): Promise<void> {
  let proc;
  try {
    proc = Bun.spawn({ ...hookSpawn(hook, state), stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    throw new HookError(`${kind} hook #${index} (${hook.path}) could not run: ${(e as Error).message}`);
  }
  ownChild(proc.pid);
  let timedOut = false;
  const timer = hook.timeout
    ? setTimeout(() => {
        timedOut = true;
        proc.kill(9);
      }, hook.timeout * 1000)
    : undefined;
  try {
    // A hook that never reads its stdin must not fail the write: the state is best effort.
    try {
      proc.stdin.write(state);
      await proc.stdin.end();
    } catch {}
    const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const failure = hookFailure(kind, index, hook, { timedOut, success: proc.exitCode === 0 && !proc.signalCode, signal: proc.signalCode ?? null, code: proc.exitCode, out: stderr || stdout });
    if (failure) throw failure;
  } finally {
    clearTimeout(timer);
    releaseChild(proc.pid);
  }
}

export async function runHooksAsync(kind: string, hooks: Hook[] | undefined, state: string): Promise<void> {
  for (const [i, h] of (hooks ?? []).entries()) await runHookAsync(kind, i, h, state);
}

/** runHooksWarning without blocking the event loop. */
export async function runHooksWarningAsync(kind: string, hooks: Hook[] | undefined, state: string): Promise<string[]> {
  const warnings: string[] = [];
  for (const [i, h] of (hooks ?? []).entries()) {
    try {
      await runHookAsync(kind, i, h, state);
    } catch (e) {
      warnings.push((e as Error).message);
    }
  }
  return warnings;
}

export function runHooks(kind: string, hooks: Hook[] | undefined, state: string): void {
  (hooks ?? []).forEach((h, i) => runHook(kind, i, h, state));
}

/**
 * poststart and poststop: a failing hook is a warning, and the hooks after it still run
 * (runtime.md). Returns the warnings.
 */
export function runHooksWarning(kind: string, hooks: Hook[] | undefined, state: string): string[] {
  const warnings: string[] = [];
  (hooks ?? []).forEach((h, i) => {
    try {
      runHook(kind, i, h, state);
    } catch (e) {
      warnings.push((e as Error).message);
    }
  });
  return warnings;
}
