// The shim's pure parts: command-line flags, rootfs mount plans, log parsing, socket naming, and the
// Task messages' wire form (field numbers must match containerd's). No root needed.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MS } from "@tsrun/ocispec/core";
import { FlagError, parseFlags } from "../src/bin/flags.ts";
import { groupMax, groupOf, socketPath } from "../src/bin/manager.ts";
import { deleteResponse, mayHaveMounts } from "../src/bin/cleanup.ts";
import { fileBackedRanges } from "../src/bin/trim.ts";
import { DEFAULT_TRIM_MS, idleAfter, TRIM_ENV, trimMs } from "../src/bin/daemon.ts";
import { mountPoints, mountTarget, planMount, RootfsError } from "../src/task/rootfs.ts";
import { lastLoggedError } from "../src/task/runtime.ts";
import { taskMethods, taskProto } from "../src/task/proto.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("flags", () => {
  test("containerd's start command line", () => {
    const f = parseFlags(["-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"]);
    expect(f).toMatchObject({ namespace: "default", address: "/run/containerd/containerd.sock", publishBinary: "/usr/bin/containerd", id: "c1", debug: true, action: "start" });
  });

  test("delete with -bundle, = forms and double dashes", () => {
    const f = parseFlags(["--namespace=k8s.io", "-id=c2", "-bundle", "/b", "-debug=false", "delete"]);
    expect(f).toMatchObject({ namespace: "k8s.io", id: "c2", bundle: "/b", debug: false, action: "delete" });
  });

  test("no action is the daemon; -v is the version", () => {
    expect(parseFlags(["-id", "x", "-socket", "/s"]).action).toBe("");
    expect(parseFlags(["-v"]).version).toBe(true);
  });

  test("bad command lines are refused with the flag named", () => {
    expect(() => parseFlags(["-bogus", "start"])).toThrow("flag provided but not defined: -bogus");
    expect(() => parseFlags(["-id"])).toThrow(FlagError);
    expect(() => parseFlags(["start", "extra"])).toThrow("unexpected arguments");
  });
});

describe("rootfs mount plans", () => {
  const rootfs = "/b/rootfs";

  test("overlay: one mount, the options as data", () => {
    const calls = planMount({ type: "overlay", source: "overlay", target: "", options: ["workdir=/w", "upperdir=/u", "lowerdir=/l1:/l2"] }, rootfs);
    expect(calls).toEqual([{ source: "overlay", target: rootfs, fstype: "overlay", flags: 0, data: "workdir=/w,upperdir=/u,lowerdir=/l1:/l2" }]);
  });

  test("a read-only rbind takes a bind and a read-only remount", () => {
    const calls = planMount({ type: "bind", source: "/layer", target: "", options: ["ro", "rbind"] }, rootfs);
    expect(calls).toEqual([
      { source: "/layer", target: rootfs, fstype: null, flags: MS.BIND | MS.REC | MS.RDONLY, data: null },
      { source: null, target: rootfs, fstype: null, flags: MS.BIND | MS.REC | MS.RDONLY | MS.REMOUNT, data: null },
    ]);
  });

  test("propagation is a second call; flags words become flags", () => {
    const calls = planMount({ type: "tmpfs", source: "tmpfs", target: "/tmp", options: ["nosuid", "nodev", "rprivate", "size=1m"] }, rootfs);
    expect(calls).toEqual([
      { source: "tmpfs", target: "/b/rootfs/tmp", fstype: "tmpfs", flags: MS.NOSUID | MS.NODEV, data: "size=1m" },
      { source: null, target: "/b/rootfs/tmp", fstype: null, flags: MS.PRIVATE | MS.REC, data: null },
    ]);
  });

  test("what cannot be honoured is refused with a reason; targets stay inside the rootfs", () => {
    expect(() => planMount({ type: "ext4", source: "/img", target: "", options: ["loop"] }, rootfs)).toThrow(RootfsError);
    const long = `lowerdir=${Array.from({ length: 200 }, (_, i) => `/var/lib/containerd/snapshots/${i}/fs`).join(":")}`;
    expect(() => planMount({ type: "overlay", source: "overlay", target: "", options: [long] }, rootfs)).toThrow("more than mount(2) takes");
    expect(mountTarget(rootfs, "../../etc")).toBe("/b/rootfs/etc");
  });

  test("mountinfo's octal escapes are decoded", () => {
    const info = "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n37 35 0:5 / /plain rw - tmpfs tmpfs rw\n";
    expect(mountPoints(info)).toEqual(["/mnt/with space", "/plain"]);
  });
});

describe("shim delete", () => {
  test("the mount check finds the rootfs and what is under it, escaped as mountinfo writes it, and nothing else", () => {
    const info = [
      "36 35 98:0 / /run/b/with\\040space/rootfs rw - overlay overlay rw",
      "37 35 0:5 / /run/c/rootfs/proc rw - proc proc rw",
      "38 35 0:6 / /run/d/rootfsx rw - tmpfs tmpfs rw",
      "",
    ].join("\n");
    expect(mayHaveMounts("/run/b/with space/rootfs", info)).toBe(true);
    expect(mayHaveMounts("/run/c/rootfs", info)).toBe(true);
    expect(mayHaveMounts("/run/e/rootfs", info)).toBe(false);
    // A superset test: rootfs.ts's exact one decides (here: /run/d/rootfsx is not under /run/d/rootfs).
    expect(mayHaveMounts("/run/d/rootfs", info)).toBe(true);
    expect(mountPoints(info).filter((p) => p === "/run/d/rootfs" || p.startsWith("/run/d/rootfs/"))).toEqual([]);
  });

  test("its DeleteResponse, written with the minimal writer, is what the Task API's codec reads", () => {
    const d = taskProto().deleteResponse;
    expect(d.decode(deleteResponse(4321, 137, 1_765_000_000_250.5))).toEqual({ pid: 4321, exitStatus: 137, exitedAt: { seconds: 1_765_000_000, nanos: 250_500_000 } });
    expect(d.decode(deleteResponse(0, 0, 0))).toEqual({ pid: 0, exitStatus: 0, exitedAt: { seconds: 0, nanos: 0 } });
    expect(hex(deleteResponse(1, 2, 3000))).toBe(hex(d.encode({ pid: 1, exitStatus: 2, exitedAt: { seconds: 3, nanos: 0 } })));
  });
});

describe("idle trim", () => {
  const smaps = (...vmas: Array<[string, string, number]>) =>
    vmas.map(([range, perms, anon], i) => `${range} ${perms} 00000000 fd:00 ${100 + i}   ${perms.includes("w") && i === 99 ? "" : "/usr/bin/tsrun"}\nSize: 4 kB\nRss: 4 kB\nAnonymous: ${anon} kB\nVmFlags: rd\n`).join("");

  test("only the executable's mappings whose pages are all the file's: not writable, no anonymous (copy-on-write) page", () => {
    const text =
      smaps(["1000-2000", "r--p", 0], ["2000-5000", "r-xp", 0], ["5000-6000", "r--p", 4], ["6000-7000", "rw-p", 0], ["7000-8000", "r-xp", 8]) +
      "8000-9000 r-xp 00000000 fd:00 7   /usr/lib/libc.so.6\nRss: 4 kB\nAnonymous: 0 kB\n" +
      "9000-a000 rw-p 00000000 00:00 0 \nRss: 4 kB\nAnonymous: 4 kB\n";
    expect(fileBackedRanges(text, "/usr/bin/tsrun")).toEqual([
      [0x1000, 0x2000],
      [0x2000, 0x5000],
    ]);
    expect(fileBackedRanges(text, "/usr/bin/other")).toEqual([]);
  });

  test("the daemon's own smaps: the ranges are its executable's, read-only", () => {
    const exe = readlinkSync("/proc/self/exe");
    const ranges = fileBackedRanges(readFileSync("/proc/self/smaps", "utf8"), exe);
    expect(ranges.length).toBeGreaterThan(0);
    const maps = readFileSync("/proc/self/maps", "utf8").split("\n");
    for (const [start] of ranges) {
      const line = maps.find((l) => l.startsWith(`${start.toString(16).padStart(8, "0")}-`))!;
      expect(line.endsWith(exe)).toBe(true);
      expect(line.split(" ")[1]![1]).toBe("-");
    }
  });

  test("the idle timer runs once after the last call ends, never while a call is in flight; TSRUN_SHIM_TRIM_MS sets it", async () => {
    let idle = 0;
    let release: () => void = () => {};
    const slow = new Promise<void>((r) => (release = r));
    const m = idleAfter({ Fast: () => new Uint8Array(0), Slow: async () => (await slow, new Uint8Array(0)) }, 60, () => idle++);
    const ctx = { service: "s", method: "m", metadata: new Map() };
    const pending = m.Slow!(new Uint8Array(0), ctx);
    await m.Fast!(new Uint8Array(0), ctx);
    await Bun.sleep(150);
    expect(idle).toBe(0);
    release();
    await pending;
    await Bun.sleep(30);
    await m.Fast!(new Uint8Array(0), ctx);
    await Bun.sleep(40);
    expect(idle).toBe(0);
    await Bun.sleep(80);
    expect(idle).toBe(1);
    await Bun.sleep(150);
    expect(idle).toBe(1);
    expect(trimMs({})).toBe(DEFAULT_TRIM_MS);
    expect(trimMs({ [TRIM_ENV]: "0" })).toBe(0);
    expect(trimMs({ [TRIM_ENV]: "250" })).toBe(250);
    expect(trimMs({ [TRIM_ENV]: "x" })).toBe(DEFAULT_TRIM_MS);
  });
});

describe("runtime log", () => {
  test("the last error line since an offset is the message", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsrun-shimlog-"));
    try {
      const log = join(dir, "log.json");
      const old = '{"level":"error","msg":"an old failure","time":"t"}\n';
      writeFileSync(log, `${old}{"level":"info","msg":"x"}\nnot json\n{"level":"error","msg":"first","time":"t"}\n{"level":"error","msg":"container_linux: the real reason","time":"t"}\n`);
      expect(lastLoggedError(log, Buffer.byteLength(old))).toBe("container_linux: the real reason");
      writeFileSync(log, old);
      expect(lastLoggedError(log, Buffer.byteLength(old))).toBeUndefined();
      expect(lastLoggedError(join(dir, "missing"))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("socket naming and groups", () => {
  test("deterministic per address, namespace, group and slot, and short enough for sun_path", () => {
    const a = socketPath("/run/containerd/containerd.sock", "default", "namespace");
    expect(a).toMatch(/^\/run\/containerd\/s\/[0-9a-f]{64}$/);
    expect(socketPath("/run/containerd/containerd.sock", "default", "namespace")).toBe(a);
    expect(socketPath("/run/containerd/containerd.sock", "default", "namespace", 0)).toBe(a);
    expect(socketPath("/run/containerd/containerd.sock", "default", "namespace", 1)).not.toBe(a);
    expect(socketPath("/run/containerd/containerd.sock", "other", "namespace")).not.toBe(a);
    expect(socketPath("/run/containerd/containerd.sock", "default", "pod:p1")).not.toBe(a);
    expect(socketPath("/other.sock", "default", "namespace")).not.toBe(a);
    expect(() => socketPath("/x", "ns", "namespace", 0, `/${"d".repeat(60)}`)).toThrow("longer than");
  });

  test("the group: the pod's sandbox id, else the runc group annotation, else the namespace", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsrun-group-"));
    try {
      const spec = (annotations?: Record<string, unknown>) => writeFileSync(join(dir, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations }));
      spec({ "io.kubernetes.cri.sandbox-id": "pod1", "io.containerd.runc.v2.group": "g" });
      expect(groupOf(dir)).toBe("pod:pod1");
      spec({ "io.containerd.runc.v2.group": "g", other: "x" });
      expect(groupOf(dir)).toBe("group:g");
      spec({ "io.containerd.runc.v2.group": "" });
      expect(groupOf(dir)).toBe("namespace");
      spec(undefined);
      expect(groupOf(dir)).toBe("namespace");
      writeFileSync(join(dir, "config.json"), "not json");
      expect(groupOf(dir)).toBe("namespace");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the cap: 32 by default, TSRUN_SHIM_GROUP_MAX when it is a positive integer", () => {
    expect(groupMax({})).toBe(32);
    expect(groupMax({ TSRUN_SHIM_GROUP_MAX: "3" })).toBe(3);
    expect(groupMax({ TSRUN_SHIM_GROUP_MAX: "0" })).toBe(32);
    expect(groupMax({ TSRUN_SHIM_GROUP_MAX: "x" })).toBe(32);
  });
});

describe("Task messages on the wire", () => {
  const p = taskProto();

  test("the service declares containerd's 17 methods", () => {
    expect(taskMethods().sort()).toEqual(
      ["State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec", "ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown"].sort(),
    );
  });

  test("field numbers and types match containerd's (hand-encoded bytes)", () => {
    // id=1 "a", signal=3 varint 9, all=4 true
    expect(hex(p.killRequest.encode({ id: "a", signal: 9, all: true }))).toBe("0a0161180920" + "01");
    // pid=1, exit_status=2, exited_at=3 {seconds=1 5, nanos=2 7}
    expect(hex(p.deleteResponse.encode({ pid: 5, exitStatus: 137, exitedAt: { seconds: 5, nanos: 7 } }))).toBe("08051089011a0408051007");
    // exit_status=1, exited_at=2
    expect(hex(p.waitResponse.encode({ exitStatus: 3, exitedAt: null }))).toBe("0803");
    // shim_pid=1, task_pid=2, version=3
    expect(hex(p.connectResponse.encode({ shimPid: 1, taskPid: 2, version: "v" }))).toBe("080110021a0176");
    // status=4 is the enum (RUNNING = 2), exec_id=11 is tag 0x5a
    expect(hex(p.stateResponse.encode({ id: "i", status: 2, execId: "e" }))).toBe("0a0169" + "2002" + "5a0165");
    // stdin=3 of CloseIORequest
    expect(hex(p.closeIORequest.encode({ id: "i", stdin: true }))).toBe("0a01691801");
  });

  test("CreateTaskRequest round-trips with mounts and an options Any", () => {
    const options = { typeUrl: "containerd.runc.v1.Options", value: p.runcOptions.encode({ binaryName: "/usr/bin/tsrun", root: "/r" }) };
    const req = {
      id: "c",
      bundle: "/b",
      rootfs: [{ type: "overlay", source: "overlay", target: "", options: ["lowerdir=/l"] }],
      terminal: false,
      stdin: "",
      stdout: "/f/o",
      stderr: "/f/e",
      checkpoint: "",
      parentCheckpoint: "",
      options,
    };
    const bytes = p.createRequest.encode(req);
    expect(p.createRequest.decode(bytes)).toEqual(req);
    // options is field 10 (tag 0x52), holding type_url=1 and value=2.
    const anyLength = 2 + options.typeUrl.length + 2 + options.value.length;
    expect(hex(bytes)).toContain(`52${anyLength.toString(16)}0a${options.typeUrl.length.toString(16)}`);
    expect(p.runcOptions.decode(options.value)).toMatchObject({ binaryName: "/usr/bin/tsrun", root: "/r" });
  });
});
