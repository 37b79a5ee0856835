// Hooks that run in the runtime's namespaces (prestart, createRuntime, poststart, poststop):
// the state JSON on stdin, args and env as configured, the bundle as working directory, killed at
// their timeout.
import { statSync } from "node:fs";
import type { Hook } from "@tsrun/ocispec/core";
import { TsrunError } from "../errors.ts";

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

export function runHook(kind: string, index: number, hook: Hook, state: string): void {
  const cwd = bundleOf(state);
  const argv = hook.args && hook.args.length > 0 ? hook.args : [hook.path];
  const timeout = hook.timeout ? hook.timeout * 1000 : undefined;
  let r;
  try {
    r = Bun.spawnSync({
      cmd: [hook.path, ...argv.slice(1)],
      argv0: argv[0],
      ...(cwd ? { cwd } : {}),
      env: Object.fromEntries((hook.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      stdin: Buffer.from(state),
      stdout: "pipe",
      stderr: "pipe",
      ...(timeout ? { timeout, killSignal: "SIGKILL" as const } : {}),
    });
  } catch (e) {
    throw new HookError(`${kind} hook #${index} (${hook.path}) could not run: ${(e as Error).message}`);
  }
  const out = (r.stderr.toString() || r.stdout.toString()).trim().slice(0, 500);
  if (r.exitedDueToTimeout) throw new HookError(`${kind} hook #${index} (${hook.path}) timed out after ${hook.timeout}s`);
  if (!r.success)
    throw new HookError(`${kind} hook #${index} (${hook.path}) failed: ${r.signalCode ? `killed by ${r.signalCode}` : `exit status ${r.exitCode}`}${out ? `: ${out}` : ""}`);
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
