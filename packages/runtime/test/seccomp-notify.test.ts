// Seccomp user notification with real containers (root, busybox rootfs): SCMP_ACT_NOTIFY rules,
// the listener handed to a seccomp agent at linux.seccomp.listenerPath with the container process
// state, and the agent's verdicts seen inside the container. The agent is a small python3 script
// (Bun's unix sockets cannot receive SCM_RIGHTS) that answers with SECCOMP_IOCTL_NOTIF_RECV/SEND.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OCI_VERSION } from "@tsrun/ocispec/core";
import { leftovers, testEnv } from "./containers.ts";
import { SYSCALLS_X86_64 } from "../src/seccomp/syscalls-x86_64.ts";

const env = testEnv();
const EXDEV = 18;

const AGENT = String.raw`
import fcntl, json, os, select, socket, struct, sys, time

sock_path, out_path, verdicts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
# _IOWR('!', 0, struct seccomp_notif) (80 bytes) and _IOWR('!', 1, struct seccomp_notif_resp) (24)
NOTIF_RECV, NOTIF_SEND = 0xC0502100, 0xC0182101
USER_NOTIF_FLAG_CONTINUE = 1

out = open(out_path, "w")
def record(doc):
    out.write(json.dumps(doc) + "\n")
    out.flush()

srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(1)
print("ready", flush=True)
conn, _ = srv.accept()
data, fds, flags, _ = socket.recv_fds(conn, 1 << 16, 4)
# one state per connection, then the runtime closes it: read to EOF
while chunk := conn.recv(1 << 16):
    data += chunk
conn.close()
record({"state": json.loads(data), "nfds": len(fds), "truncated": bool(flags & socket.MSG_CTRUNC)})
listener = fds[0]

deadline = time.monotonic() + 30
poller = select.poll()
poller.register(listener, select.POLLIN)
while time.monotonic() < deadline:
    events = poller.poll(200)
    if not events:
        continue
    if events[0][1] & select.POLLHUP and not events[0][1] & select.POLLIN:
        break  # no task uses the filter any more: the container is gone
    req = bytearray(80)
    try:
        fcntl.ioctl(listener, NOTIF_RECV, req, True)
    except OSError:
        continue  # the caller died meanwhile
    nid, pid, _ = struct.unpack_from("<QII", req, 0)
    nr, arch = struct.unpack_from("<iI", req, 16)
    verdict = verdicts.get(str(nr))
    if verdict is None:
        resp = struct.pack("<QqiI", nid, 0, 0, USER_NOTIF_FLAG_CONTINUE)
    else:
        resp = struct.pack("<QqiI", nid, 0, -verdict, 0)
    try:
        fcntl.ioctl(listener, NOTIF_SEND, bytearray(resp), True)
    except OSError as e:
        record({"sendError": e.errno})
    record({"nr": nr, "pid": pid, "verdict": verdict})
`;

const agentScript = join(env.dir, "agent.py");
writeFileSync(agentScript, AGENT);

interface Agent {
  socket: string;
  out: string;
  proc: ReturnType<typeof Bun.spawn>;
  /** The lines the agent recorded: first the container process state, then one per notification. */
  records(): any[];
}

const agents: Agent[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) a.proc.kill(9);
});

/** Starts the agent on a fresh socket; `verdicts`: syscall number → errno (0: success without running the call). */
async function startAgent(name: string, verdicts: Record<number, number>, socket = join(env.dir, `${name}.sock`)): Promise<Agent> {
  const out = join(env.dir, `${name}.jsonl`);
  const proc = Bun.spawn(["python3", agentScript, socket, out, JSON.stringify(verdicts)], { stdout: "pipe", stderr: "inherit" });
  const agent: Agent = {
    socket,
    out,
    proc,
    records: () => (existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : []),
  };
  agents.push(agent);
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  expect(new TextDecoder().decode(first.value ?? new Uint8Array())).toContain("ready");
  return agent;
}

const nr = (name: string): number => SYSCALLS_X86_64[name]!;

/** mkdir (and mkdirat) and rmdir go to the agent; the rest of the profile allows everything. */
function notifyProfile(listenerPath: string): Record<string, unknown> {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    listenerPath,
    listenerMetadata: "agent-metadata",
    syscalls: [{ names: ["mkdir", "mkdirat", "rmdir"], action: "SCMP_ACT_NOTIFY" }],
  };
}

describe("SCMP_ACT_NOTIFY and the seccomp agent", () => {
  for (const nnp of [true, false]) {
    test(`the agent gets the container process state and the listener, and decides the calls (noNewPrivileges ${nnp})`, async () => {
      const id = `notify-${nnp}`;
      // mkdir succeeds without running (the root is read-only: had it run, EROFS); rmdir gets EXDEV.
      const agent = await startAgent(id, { [nr("mkdir")]: 0, [nr("mkdirat")]: 0, [nr("rmdir")]: EXDEV });
      const b = env.bundle(id, (s) => {
        s.root.readonly = true;
        s.process.noNewPrivileges = nnp;
        s.process.args = ["sh", "-c", "mkdir /x && echo mkdir-ok; test -e /x || echo x-absent; rmdir /tmp 2>&1; echo rmdir=$?"];
        s.linux.seccomp = notifyProfile(agent.socket);
        // The flags that change with a listener (TSYNC needs TSYNC_ESRCH then), on the real kernel.
        if (!nnp) s.linux.seccomp.flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"];
      });
      const r = env.tsrun(["run", "--bundle", b, id]);
      expect(r.stderr).not.toContain("tsrun");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("mkdir-ok");
      expect(r.stdout).toContain("x-absent");
      expect(r.stdout).toContain("Invalid cross-device link");
      expect(r.stdout).toContain("rmdir=1");
      expect(existsSync(join(b, "rootfs/x"))).toBe(false);

      // The agent ends once no task uses the filter.
      expect(await Promise.race([agent.proc.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
      const [first, ...calls] = agent.records();
      expect(first.nfds).toBe(1);
      expect(first.truncated).toBe(false);
      const st = first.state;
      expect(st).toMatchObject({ ociVersion: OCI_VERSION, fds: ["seccompFd"], metadata: "agent-metadata" });
      expect(st.pid).toBeGreaterThan(1);
      expect(st.state).toMatchObject({ ociVersion: OCI_VERSION, id, status: "creating", pid: st.pid, bundle: b, rootfs: join(b, "rootfs") });
      // Every notification came from the container and got the verdict asked for.
      const seen = calls.filter((c) => c.nr !== undefined);
      expect(calls.filter((c) => c.sendError !== undefined)).toEqual([]);
      expect(seen.some((c) => c.nr === nr("mkdir") || c.nr === nr("mkdirat"))).toBe(true);
      expect(seen.some((c) => c.nr === nr("rmdir") && c.verdict === EXDEV)).toBe(true);
      expect(leftovers(env, id, b)).toEqual([]);
    });
  }

  test("create alone hands the listener over: the state names the init's pid, status creating", async () => {
    const id = "notify-create";
    const agent = await startAgent(id, { [nr("mkdir")]: 0, [nr("mkdirat")]: 0 });
    const b = env.bundle(id, (s) => {
      s.process.args = ["sh", "-c", "mkdir /x && echo mkdir-ok"];
      s.linux.seccomp = notifyProfile(agent.socket);
    });
    const c = env.tsrun(["create", "--bundle", b, id]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const pid = JSON.parse(env.tsrun(["state", id]).stdout).pid;
    const [first] = agent.records();
    expect(first.state.pid).toBe(pid);
    expect(first.state.state.status).toBe("creating");
    expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
    expect(await Promise.race([agent.proc.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("exec hands its own listener to the agent, with its own pid, and the agent decides its calls", async () => {
    const id = "notify-exec";
    const init = await startAgent(id, {});
    const b = env.bundle(id, (s) => {
      s.process.args = ["sleep", "300"];
      s.linux.seccomp = notifyProfile(init.socket);
    });
    expect(env.tsrun(["run", "-d", "--bundle", b, id]).code).toBe(0);
    try {
      const initPid = JSON.parse(env.tsrun(["state", id]).stdout).pid;
      // The first agent serves the init's listener; a second one takes the exec's at the same path.
      unlinkSync(init.socket);
      const agent = await startAgent(`${id}-exec`, { [nr("mkdir")]: 0, [nr("mkdirat")]: 0 }, init.socket);
      const r = env.tsrun(["exec", id, "sh", "-c", "mkdir /nowhere/x && echo mkdir-ok"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("mkdir-ok\n");
      const [first] = agent.records();
      expect(first.nfds).toBe(1);
      expect(first.state).toMatchObject({ fds: ["seccompFd"], metadata: "agent-metadata" });
      expect(first.state.pid).not.toBe(initPid);
      expect(first.state.state).toMatchObject({ id, status: "running", pid: initPid });
    } finally {
      expect(env.tsrun(["delete", "--force", id]).code).toBe(0);
    }
    // Each agent ends once no task uses its filter.
    for (const a of agents) expect(await Promise.race([a.proc.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
    expect(leftovers(env, id, b)).toEqual([]);
  });

  test("an agent socket nobody listens on fails the create, naming the path and errno, and leaves nothing", () => {
    const missing = join(env.dir, "no-agent.sock");
    const b = env.bundle("notify-missing", (s) => (s.linux.seccomp = notifyProfile(missing)));
    const r = env.tsrun(["create", "--bundle", b, "notify-missing"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`failed to connect with seccomp agent at ${missing}`);
    expect(r.stderr).toContain("ENOENT");
    expect(leftovers(env, "notify-missing", b)).toEqual([]);

    // A socket file left by a dead agent: connection refused.
    const stale = join(env.dir, "stale-agent.sock");
    const bind = Bun.spawnSync(["python3", "-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stale]);
    expect(bind.success).toBe(true);
    const b2 = env.bundle("notify-stale", (s) => (s.linux.seccomp = notifyProfile(stale)));
    const r2 = env.tsrun(["run", "--bundle", b2, "notify-stale"]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain(stale);
    expect(r2.stderr).toContain("ECONNREFUSED");
    expect(leftovers(env, "notify-stale", b2)).toEqual([]);
  });

  test("NOTIFY without listenerPath, or on sendmsg, is refused before anything is made", () => {
    const b = env.bundle("notify-nopath", (s) => {
      s.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }] };
    });
    const r = env.tsrun(["create", "--bundle", b, "notify-nopath"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/linux/seccomp/listenerPath");
    expect(leftovers(env, "notify-nopath", b)).toEqual([]);

    const b2 = env.bundle("notify-sendmsg", (s) => {
      s.linux.seccomp = { ...notifyProfile(join(env.dir, "unused.sock")), syscalls: [{ names: ["sendmsg"], action: "SCMP_ACT_NOTIFY" }] };
    });
    const r2 = env.tsrun(["create", "--bundle", b2, "notify-sendmsg"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain("/linux/seccomp/syscalls/0/names/0: SCMP_ACT_NOTIFY cannot be used for the sendmsg syscall");
    expect(leftovers(env, "notify-sendmsg", b2)).toEqual([]);
  });
});
