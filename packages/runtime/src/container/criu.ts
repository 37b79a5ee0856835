// checkpoint and restore go through CRIU, as runc's do. tsrun does not drive CRIU (yet): it looks
// for it and runs `criu check`, so that the refusal says exactly what is missing on this host —
// CRIU itself, the kernel features CRIU needs, or tsrun's support — and it refuses before it
// touches the container, so a refused checkpoint or restore changes nothing.
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { ContainerError } from "./errors.ts";
import { status } from "./lifecycle.ts";
import { checkId, type Store } from "./store.ts";

/** `criu` (runc's --criu default) looked up in PATH, or a path as given; undefined when absent. */
export function findCriu(criu: string): string | undefined {
  const candidates = criu.includes("/") ? [criu] : (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(delimiter).filter(Boolean).map((d) => join(d, criu));
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not there, or not executable: the next one
    }
  }
  return undefined;
}

/** Why CRIU cannot be used here; it is always a reason, since tsrun does not drive CRIU itself. */
export function criuRefusal(what: "checkpoint" | "restore", criu: string): ContainerError {
  const path = findCriu(criu);
  if (path === undefined) {
    const where = criu.includes("/") ? criu : `${criu} in PATH`;
    return new ContainerError(
      `cannot ${what}: CRIU is not installed (no ${where}); ${what} needs CRIU (https://criu.org): install it (Debian: apt-get install criu) or name its binary with --criu PATH`,
      { op: what, path: criu, code: "ENOENT" },
    );
  }
  const check = Bun.spawnSync([path, "check"], { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  if (check.exitCode !== 0) {
    const out = `${check.stderr.toString()}\n${check.stdout.toString()}`
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    const tail = out.slice(-5).join("; ");
    const how = check.exitCode === null ? `was killed (${check.signalCode ?? "timeout"})` : `exited with status ${check.exitCode}`;
    return new ContainerError(`cannot ${what}: \`${path} check\` ${how}: this kernel lacks what CRIU needs${tail ? `: ${tail}` : ""}`, { op: what, path });
  }
  return new ContainerError(
    `cannot ${what}: CRIU (${path}) passes its check here, but tsrun does not implement ${what} with CRIU; use runc for containers that must be checkpointed`,
    { op: what, path },
  );
}

/** runc's checkpoint, refused (see criuRefusal) after the same checks of the container runc makes. */
export function checkpointContainer(store: Store, id: string, criu: string): never {
  const rec = store.read(id);
  const st = status(store, rec);
  // runc: "Container cannot be checkpointed in created state" (and stopped).
  if (st !== "running" && st !== "paused") throw new ContainerError(`container ${id} cannot be checkpointed in ${st} state`, { id });
  const refusal = criuRefusal("checkpoint", criu);
  throw new ContainerError(refusal.message, { ...refusal.fields, id });
}

/** runc's restore: a new container from a checkpoint; refused before the id is claimed. */
export function restoreContainer(store: Store, id: string, criu: string): never {
  checkId(id);
  if (store.exists(id)) throw new ContainerError(`container with id exists: ${id}`, { id });
  const refusal = criuRefusal("restore", criu);
  throw new ContainerError(refusal.message, { ...refusal.fields, id });
}
