// Shared by the integration tests: busybox bundles, a private --root, and the "nothing left
// behind" check (no state dir, no cgroup dir, no mount, no process).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, cpSync } from "node:fs";
import { join } from "node:path";
import { defaultSpec } from "@tsrun/ocispec/defaults";
import { repo, tempDir, tsrun, type Run } from "./helpers.ts";

let rootfsTemplate: string | undefined;

/** A busybox root filesystem made once per test file from Debian's busybox-static. */
export function busyboxRootfs(base: string): string {
  if (!rootfsTemplate || !existsSync(rootfsTemplate)) {
    rootfsTemplate = join(base, "rootfs-template");
    const r = Bun.spawnSync(["bash", join(repo, "scripts/make-rootfs.sh"), rootfsTemplate], { stderr: "pipe" });
    if (!r.success) throw new Error(`make-rootfs failed: ${r.stderr}`);
  }
  return rootfsTemplate;
}

export interface Env {
  dir: string;
  root: string;
  /** Runs tsrun with this environment's --root. */
  tsrun: (args: string[], opts?: { stdin?: string }) => Run;
  /** A new bundle with a copy of the busybox rootfs; `patch` edits the default spec. */
  bundle: (name: string, patch?: (spec: any) => void) => string;
}

export function testEnv(): Env {
  const dir = tempDir("tsrun-it-");
  // A user namespace's root (an unprivileged host uid) must be able to reach the bundles.
  chmodSync(dir, 0o755);
  const root = join(dir, "state");
  return {
    dir,
    root,
    tsrun: (args, opts) => tsrun(["--root", root, ...args], opts),
    bundle: (name, patch) => {
      const b = join(dir, name);
      mkdirSync(b);
      cpSync(busyboxRootfs(dir), join(b, "rootfs"), { recursive: true, verbatimSymlinks: true });
      const spec: any = JSON.parse(JSON.stringify(defaultSpec()));
      spec.process.terminal = false;
      spec.process.args = ["true"];
      patch?.(spec);
      writeFileSync(join(b, "config.json"), JSON.stringify(spec, null, 2));
      return b;
    },
  };
}

/** Every trace a container could leave on the host; empty when there is none. */
export function leftovers(env: Env, id: string, bundle?: string): string[] {
  const found: string[] = [];
  if (existsSync(join(env.root, id))) found.push(`state dir ${join(env.root, id)}`);
  for (const ctl of safeReaddir("/sys/fs/cgroup")) {
    const base = join("/sys/fs/cgroup", ctl);
    for (const p of [join(base, id), join(base, "tsrun", id)]) if (existsSync(p)) found.push(`cgroup ${p}`);
  }
  const mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
  if (bundle && mountinfo.includes(bundle)) found.push(`mount under ${bundle}`);
  for (const pid of safeReaddir("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const environ = readFileSync(`/proc/${pid}/cgroup`, "utf8");
      if (environ.includes(`/${id}\n`) || (bundle && cmd.includes(bundle))) found.push(`process ${pid} (${cmd.replace(/\0/g, " ").trim()})`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

// A stand-in for an engine's console socket: receives the pty master (SCM_RIGHTS), prints the
// name that came with it, then everything the container writes to its terminal.
export const CONSOLE_RECEIVER = `
import array, os, socket, sys
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1]); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
fds = array.array("i")
msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(4))
for level, kind, data in anc:
    fds.frombytes(data[: len(data) - (len(data) % 4)])
print("name", msg.decode(), flush=True)
master = fds[0]
out = b""
while True:
    try:
        b = os.read(master, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
print("tty", out.decode().replace("\\r", ""), flush=True)
`;
