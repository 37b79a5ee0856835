// The test command's leave-nothing check (issue 12). `run COMMAND…` records what a test run could
// leave on the machine, runs the command, records it again and lists, one a line, everything
// that is new, exiting 1 when anything is. Tests must clean up what they make: a leftover here is
// a leaked mount, cgroup, file, device or process, and on a user's host it would stay forever.
//
// What is recorded:
// - mounts (this mount namespace's mountinfo: run it in the mount namespace the tests run in);
// - cgroup directories, recursively, in every hierarchy under /sys/fs/cgroup;
// - names directly under /tmp and /run (dot files too), and two levels under /var/lib/tsrun;
// - network devices (/sys/class/net);
// - processes left running below this one (see processes()).
//
// Names are compared, not contents: a test may legitimately change a file that was there before.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { WNOHANG } from "../packages/runtime/src/linux/constants.ts";
import { setChildSubreaper, waitpid } from "../packages/runtime/src/linux/libc.ts";

type Snapshot = Record<string, string[]>;

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** One entry per mount: where, what and from where (mount ids change across remounts; these do not). */
function mounts(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const f = line.split(" ");
      const sep = f.indexOf("-");
      return `${f[4]} (${f[sep + 1]} from ${f[sep + 2]})`;
    });
}

/** Every directory in every cgroup hierarchy. Symlinks (v1's cpu -> cpu,cpuacct) are not followed. */
function cgroups(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // Removed meanwhile.
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      out.push(p);
      walk(p);
    }
  };
  walk("/sys/fs/cgroup");
  return out;
}

function underDir(dir: string, depth: number): string[] {
  const out: string[] = [];
  for (const name of list(dir)) {
    const p = join(dir, name);
    out.push(p);
    if (depth > 1) out.push(...underDir(p, depth - 1));
  }
  return out;
}

/**
 * This process's descendants but the command it runs (pid, start time, cmdline). It is their
 * child subreaper, so a process a test started and forgot (a daemon, a container's init) stays
 * below it whatever it does to detach; processes of anyone else on the machine (another
 * engineer's run) are not counted.
 */
function processes(except: number): string[] {
  const parent = new Map<number, number>();
  const info = new Map<number, string>();
  for (const e of list("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // Fields after the command name, which may hold spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (rest[0] === "Z") continue; // Exited, waiting for the reaper below.
      parent.set(Number(e), Number(rest[1]));
      const cmdline = readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0+$/, "").replaceAll("\0", " ");
      // The start time makes a reused pid a different process.
      info.set(Number(e), `pid ${e} started ${rest[19]}: ${cmdline || `[${stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))}]`}`);
    } catch {
      // Exited meanwhile.
    }
  }
  const out: string[] = [];
  for (const [pid, text] of info) {
    if (pid === except) continue;
    for (let p = parent.get(pid), hops = 0; p !== undefined && p > 1 && hops < 4096; p = parent.get(p), hops++) {
      if (p === except) break;
      if (p === process.pid) {
        out.push(text);
        break;
      }
    }
  }
  return out;
}

function snapshot(except = 0): Snapshot {
  return {
    mount: mounts(),
    cgroup: cgroups(),
    file: [...underDir("/tmp", 1), ...underDir("/run", 1), ...underDir("/var/lib/tsrun", 2)],
    netdev: list("/sys/class/net"),
    process: processes(except),
  };
}

/** What `after` has more of than `before`, per kind (a multiset difference: a second mount on one point counts). */
function added(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const [kind, items] of Object.entries(after)) {
    const seen = new Map<string, number>();
    for (const x of before[kind] ?? []) seen.set(x, (seen.get(x) ?? 0) + 1);
    for (const x of items) {
      const n = seen.get(x) ?? 0;
      if (n > 0) seen.set(x, n - 1);
      else out.push(`${kind}: ${x}`);
    }
  }
  return out;
}

/** Waits for every exited child but the command's (Bun waits for that one): orphans reparented here. */
function reapOrphans(command: number): void {
  for (const task of list("/proc/self/task")) {
    let children: string;
    try {
      children = readFileSync(`/proc/self/task/${task}/children`, "utf8");
    } catch {
      continue;
    }
    for (const pid of children.split(" ").filter(Boolean).map(Number)) if (pid !== command) waitpid(pid, WNOHANG);
  }
}

const [mode, ...command] = process.argv.slice(2);
if (mode !== "run" || command.length === 0) {
  console.error("usage: bun scripts/leftovers.ts run COMMAND [ARG...]   (exit status: 1 when anything is left)");
  process.exit(2);
}
setChildSubreaper();
const before = snapshot();
const child = Bun.spawn(command, { stdio: ["inherit", "inherit", "inherit"] });
// Orphans must not linger as zombies: tests wait for a killed process to vanish from /proc.
const reaper = setInterval(() => reapOrphans(child.pid), 50);
await child.exited;
// A process or a mount may take a moment to go after the last test returns (a shim's exit, a
// lazy unmount): only what is still there after a short wait is left behind.
let left = added(before, snapshot(child.pid));
for (let i = 0; i < 30 && left.length > 0; i++) {
  await Bun.sleep(100);
  left = added(before, snapshot(child.pid));
}
clearInterval(reaper);
if (left.length > 0) {
  console.log(`leftovers: the tests left ${left.length} thing(s) on the machine:`);
  for (const x of left) console.log(`  ${x}`);
  process.exit(1);
}
console.log("leftovers: the tests left nothing behind");
