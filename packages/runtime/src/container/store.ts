// Container state on disk: <root>/<id>/state.json (atomic write + rename), the exec fifo, and a
// per-container lock (flock on the directory) held by whoever changes the container.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Spec } from "@tsrun/ocispec/core";
import { ContainerError } from "./errors.ts";
import { writeFileAtomic } from "../io.ts";

/** What tsrun remembers about a container between commands. */
export interface ContainerRecord {
  ociVersion: string;
  id: string;
  /** Host pid of the container's init; 0 until it exists. */
  pid: number;
  /** Start time of the init (field 22 of /proc/<pid>/stat): tells a reused pid from ours. */
  pidStartTime: number;
  bundle: string;
  rootfs: string;
  /** RFC 3339 time of creation. */
  created: string;
  owner: string;
  /** "creating" until set-up has finished, then "created"; the rest is read from the process. */
  phase: "creating" | "created";
  annotations?: Record<string, string>;
  /** The cgroup manager's serialised paths, for kill --all and delete. */
  cgroup?: unknown;
  /** The config the container was created from (hooks, namespaces … for later commands). */
  config: Spec;
}

const ID = /^[\w+\-.]+$/;

export function checkId(id: string): void {
  if (!ID.test(id) || id === "." || id === ".." || id.length > 1024)
    throw new ContainerError(`invalid container id ${JSON.stringify(id)}: use letters, digits and _ + - .`);
}

export class Store {
  constructor(readonly root: string) {}

  dir(id: string): string {
    return join(this.root, id);
  }
  statePath(id: string): string {
    return join(this.root, id, "state.json");
  }
  fifoPath(id: string): string {
    return join(this.root, id, "exec.fifo");
  }

  /**
   * Creates the container's directory: mkdir is atomic, so of concurrent creates of one id
   * exactly one gets here and the others fail with "already exists".
   */
  claim(id: string): string {
    checkId(id);
    this.ensureRoot();
    const dir = this.dir(id);
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new ContainerError(`container with id exists: ${id}`);
      throw new ContainerError(`cannot create state directory ${dir}: ${(e as NodeJS.ErrnoException).code}${unprivilegedHint(e)}`);
    }
    return dir;
  }

  /**
   * The root is 0700: what is in it (the exec fifo that starts a container, state that later
   * commands trust) is root's alone. A root left by an older tsrun (0711) is closed here; one
   * stat per create.
   */
  private ensureRoot(): void {
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new ContainerError(`cannot create state directory ${this.root}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}${unprivilegedHint(e)}`);
    }
    const st = statSync(this.root);
    if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(this.root, st.mode & 0o7700);
  }

  exists(id: string): boolean {
    return existsSync(this.dir(id));
  }

  /** Writes state.json so that a reader sees the old or the new file, never half of one. */
  write(rec: ContainerRecord): void {
    writeFileAtomic(this.statePath(rec.id), JSON.stringify(rec));
  }

  /** The record, or a ContainerError saying that the container does not exist or is unreadable. */
  read(id: string): ContainerRecord {
    checkId(id);
    let text: string;
    try {
      text = readFileSync(this.statePath(id), "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && !this.exists(id)) throw new NotFound(id);
      throw new CorruptState(id, code === "ENOENT" ? "state.json is missing" : `cannot read state.json: ${code}`, { path: this.statePath(id), op: "read", ...(code ? { code } : {}) });
    }
    try {
      const rec = JSON.parse(text) as ContainerRecord;
      if (rec.id !== id || typeof rec.pid !== "number" || typeof rec.config !== "object") throw new Error("fields missing");
      return rec;
    } catch (e) {
      throw new CorruptState(id, `state.json is corrupt (${(e as Error).message})`, { path: this.statePath(id), op: "parse" });
    }
  }

  ids(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && ID.test(d.name))
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
  }

  remove(id: string): void {
    rmSync(this.dir(id), { recursive: true, force: true });
  }
}

/** What an unprivileged user refused a state directory can do about it. */
function unprivilegedHint(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if ((code !== "EACCES" && code !== "EPERM") || process.geteuid?.() === 0) return "";
  return process.env.XDG_RUNTIME_DIR
    ? " (an unprivileged user needs a state root it owns: pass --root DIR)"
    : " (an unprivileged user needs a state root it owns: set XDG_RUNTIME_DIR, which makes the default $XDG_RUNTIME_DIR/tsrun, or pass --root DIR)";
}

export class NotFound extends ContainerError {
  constructor(id: string) {
    super(`container does not exist: ${id}`, { id, code: "ENOENT" });
  }
}

export class CorruptState extends ContainerError {
  constructor(
    readonly id: string,
    detail: string,
    fields: { path?: string; op?: string; code?: string } = {},
  ) {
    super(`container ${id}: ${detail}; \`tsrun delete --force ${id}\` removes it`, { ...fields, id });
  }
}
