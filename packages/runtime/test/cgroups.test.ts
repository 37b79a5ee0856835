// Pure parts of cgroups/: mountinfo and /proc/<pid>/cgroup parsing, mode detection, cgroupsPath
// resolution, saved-state validation. No root, no real cgroups (see cgroups-host.test.ts).

import { describe, expect, test } from "bun:test";
import {
  CgroupError,
  cgroupManager,
  cgroupManagerFromJSON,
  hierarchiesFor,
  hostFromMountinfo,
  parseMountinfo,
  parseProcCgroup,
  resolveCgroupPaths,
  SystemdCgroupUnsupportedError,
  UNIFIED,
  type CgroupMode,
  type ProcCgroups,
} from "../src/cgroups/index.ts";

// This VM's layout: v1 controllers each on its own mount, name=systemd, cgroup2 with only hugetlb.
const HYBRID = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const HYBRID_SELF = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/61abdb76
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`;

// A systemd host in legacy mode: co-mounted controllers, optional fields before " - ", a
// noprefix cpuset, a foreign named hierarchy, and a bind of one controller elsewhere later on.
const V1_SYSTEMD = `25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:5 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,noprefix,cpuset
32 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 master:3 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,freezer
34 25 0:31 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,devices
35 25 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
36 25 0:33 / /run/foo\\040cgroups rw,relatime shared:15 - cgroup foo rw,name=foo
90 80 0:29 /docker/x /var/lib/other/memory rw,relatime - cgroup cgroup rw,memory
`;

const V1_SYSTEMD_SELF = `12:pids:/user.slice/user-1000.slice/session-3.scope
11:devices:/user.slice
10:freezer:/
9:memory:/user.slice/user-1000.slice/session-3.scope
8:cpuset:/
7:net_cls,net_prio:/
6:cpu,cpuacct:/user.slice
5:name=foo:/
1:name=systemd:/user.slice/user-1000.slice/session-3.scope
`;

const V2 = `24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 24 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const V2_SELF = "0::/user.slice/user-1000.slice/session-3.scope\n";

// Inside a container without a cgroup namespace: the mounts show only the container's subtree.
const NESTED = `700 600 0:29 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
701 600 0:30 /docker/abc /sys/fs/cgroup/freezer ro,nosuid - cgroup cgroup rw,freezer
702 600 0:38 /docker/abc /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`;

const never = (): ProcCgroups => {
  throw new Error("own cgroups read for an absolute path");
};

function resolve(mountinfo: string, self: string, cgroupsPath: string | undefined, id = "ctr", mode?: CgroupMode) {
  return resolveCgroupPaths({ hierarchies: hierarchiesFor(hostFromMountinfo(mountinfo), mode), cgroupsPath, id, own: () => parseProcCgroup(self) });
}

function expectCgroupError(f: () => unknown, code: string, text: RegExp): CgroupError {
  let caught: unknown;
  try {
    f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CgroupError);
  const e = caught as CgroupError;
  expect(e.code).toBe(code);
  expect(e.message).toMatch(text);
  return e;
}

describe("parseMountinfo", () => {
  test("keeps only cgroup mounts, unescapes paths, reads super options after optional fields", () => {
    const m = parseMountinfo(V1_SYSTEMD);
    expect(m.map((x) => x.mountpoint)).toContain("/run/foo cgroups");
    expect(m.find((x) => x.mountpoint === "/sys/fs/cgroup/memory")?.superOptions).toEqual(["rw", "memory"]);
    expect(m.every((x) => x.fstype === "cgroup")).toBe(true);
    expect(parseMountinfo(HYBRID).filter((x) => x.fstype === "cgroup2")).toEqual([{ fstype: "cgroup2", mountpoint: "/sys/fs/cgroup/unified", root: "/", superOptions: ["rw"] }]);
  });
});

describe("hostFromMountinfo", () => {
  test("hybrid: each v1 controller, name=systemd, and the cgroup2 tree", () => {
    const h = hostFromMountinfo(HYBRID);
    expect(h.mode).toBe("hybrid");
    expect(Object.keys(h.v1).sort()).toEqual(["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "name=systemd", "pids"]);
    expect(h.v1.cpu?.mountpoint).toBe("/sys/fs/cgroup/cpu");
    expect(h.unified).toEqual({ mountpoint: "/sys/fs/cgroup/unified", root: "/" });
  });

  test("v1: co-mounted controllers share one hierarchy; noprefix; foreign named hierarchies and later binds ignored", () => {
    const h = hostFromMountinfo(V1_SYSTEMD);
    expect(h.mode).toBe("v1");
    expect(h.unified).toBeNull();
    expect(h.v1.cpu).toBe(h.v1.cpuacct!);
    expect(h.v1.cpu?.mountpoint).toBe("/sys/fs/cgroup/cpu,cpuacct");
    expect(h.v1.cpu?.controllers).toEqual(["cpu", "cpuacct"]);
    expect(h.v1.net_prio?.mountpoint).toBe("/sys/fs/cgroup/net_cls,net_prio");
    expect(h.v1.cpuset?.noprefix).toBe(true);
    expect(h.v1.memory?.noprefix).toBe(false);
    expect(h.v1.memory?.mountpoint).toBe("/sys/fs/cgroup/memory");
    expect(h.v1["name=systemd"]?.mountpoint).toBe("/sys/fs/cgroup/systemd");
    expect(h.v1["name=foo"]).toBeUndefined();
    expect(Object.keys(h.v1)).not.toContain("noprefix");
  });

  test("v2, and v2 with a stray name=systemd mount", () => {
    expect(hostFromMountinfo(V2)).toEqual({ mode: "v2", v1: {}, unified: { mountpoint: "/sys/fs/cgroup", root: "/" } });
    const withSystemd = V2 + "40 28 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
    expect(hostFromMountinfo(withSystemd).mode).toBe("v2");
    expect(hostFromMountinfo(withSystemd).v1).toEqual({});
  });

  test("no cgroup mount at all is an error naming mountinfo", () => {
    expectCgroupError(() => hostFromMountinfo("22 1 8:1 / / rw - ext4 /dev/vda rw\n"), "ENOENT", /\/proc\/self\/mountinfo.*no cgroup/);
  });
});

describe("parseProcCgroup", () => {
  test("v1 lines per controller (co-mounted split), named ones, the 0:: line, colons in paths", () => {
    const p = parseProcCgroup(V1_SYSTEMD_SELF + "0::/a:b\n");
    expect(p.v1.cpu).toBe("/user.slice");
    expect(p.v1.cpuacct).toBe("/user.slice");
    expect(p.v1.net_prio).toBe("/");
    expect(p.v1["name=systemd"]).toBe("/user.slice/user-1000.slice/session-3.scope");
    expect(p.unified).toBe("/a:b");
    expect(parseProcCgroup(V1_SYSTEMD_SELF).unified).toBeNull();
  });
});

describe("hierarchiesFor", () => {
  const host = hostFromMountinfo(HYBRID);
  test("a hybrid host can be used as v1 only or v2 only", () => {
    expect(hierarchiesFor(host).mode).toBe("hybrid");
    expect(hierarchiesFor(host, "v1").unified).toBeNull();
    expect(hierarchiesFor(host, "v2").v1).toEqual({});
  });
  test("a mode the host cannot give is refused", () => {
    expectCgroupError(() => hierarchiesFor(hostFromMountinfo(V1_SYSTEMD), "v2"), "EINVAL", /no cgroup2/);
    expectCgroupError(() => hierarchiesFor(hostFromMountinfo(V1_SYSTEMD), "hybrid"), "EINVAL", /no cgroup2/);
    expectCgroupError(() => hierarchiesFor(hostFromMountinfo(V2), "v1"), "EINVAL", /no v1 controller/);
  });
});

describe("resolveCgroupPaths", () => {
  test("absolute: below each mountpoint; co-mounted controllers share a directory; own cgroups not read", () => {
    const p = resolveCgroupPaths({ hierarchies: hierarchiesFor(hostFromMountinfo(V1_SYSTEMD)), cgroupsPath: "/default/abc", id: "abc", own: never });
    expect(p.cpu).toBe("/sys/fs/cgroup/cpu,cpuacct/default/abc");
    expect(p.cpuacct).toBe(p.cpu!);
    expect(p["name=systemd"]).toBe("/sys/fs/cgroup/systemd/default/abc");
    expect(p[UNIFIED]).toBeUndefined();
    const h = resolveCgroupPaths({ hierarchies: hierarchiesFor(hostFromMountinfo(HYBRID)), cgroupsPath: "/default//abc/", id: "abc", own: never });
    expect(h.memory).toBe("/sys/fs/cgroup/memory/default/abc");
    expect(h[UNIFIED]).toBe("/sys/fs/cgroup/unified/default/abc");
    expect(Object.keys(h)).toHaveLength(10);
  });

  test("relative: below tsrun's own cgroup of each v1 hierarchy", () => {
    const p = resolve(V1_SYSTEMD, V1_SYSTEMD_SELF, "kube/pod1");
    expect(p.memory).toBe("/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-3.scope/kube/pod1");
    expect(p.cpu).toBe("/sys/fs/cgroup/cpu,cpuacct/user.slice/kube/pod1");
    expect(p.freezer).toBe("/sys/fs/cgroup/freezer/kube/pod1");
  });

  test("relative in cgroup2: below the parent of tsrun's own cgroup (runc fs2: no internal processes)", () => {
    expect(resolve(V2, V2_SELF, "kube/pod1")).toEqual({ [UNIFIED]: "/sys/fs/cgroup/user.slice/user-1000.slice/kube/pod1" });
    expect(resolve(V2, "0::/\n", "c")).toEqual({ [UNIFIED]: "/sys/fs/cgroup/c" });
  });

  test("absent or empty: the container id, as a relative path (runc's default)", () => {
    for (const cgroupsPath of [undefined, ""]) {
      const p = resolve(HYBRID, HYBRID_SELF, cgroupsPath, "abc");
      expect(p.memory).toBe("/sys/fs/cgroup/memory/process_api/61abdb76/abc");
      expect(p.pids).toBe("/sys/fs/cgroup/pids/abc");
      expect(p[UNIFIED]).toBe("/sys/fs/cgroup/unified/abc");
    }
    expect(resolve(V2, V2_SELF, undefined, "abc")).toEqual({ [UNIFIED]: "/sys/fs/cgroup/user.slice/user-1000.slice/abc" });
  });

  test("nested without cgroupns: own cgroup made relative to the mount's root", () => {
    const self = "4:memory:/docker/abc/sub\n3:freezer:/docker/abc\n0::/docker/abc\n";
    const p = resolve(NESTED, self, "c1");
    expect(p.memory).toBe("/sys/fs/cgroup/memory/sub/c1");
    expect(p.freezer).toBe("/sys/fs/cgroup/freezer/c1");
    // cgroup2: the parent of tsrun's cgroup is not visible here; the top of the mount is used.
    expect(p[UNIFIED]).toBe("/sys/fs/cgroup/unified/c1");
    expect(resolve(NESTED, self, "/c2").memory).toBe("/sys/fs/cgroup/memory/c2");
    expectCgroupError(() => resolve(NESTED, "4:memory:/other\n3:freezer:/docker/abc\n0::/docker/abc\n", "c1"), "ENOENT", /outside the part of the hierarchy mounted here \(\/docker\/abc\)/);
  });

  test('".." inside the path is cleaned; ".." leading out is refused, for any base', () => {
    expect(resolve(HYBRID, HYBRID_SELF, "/a/../b/./c").pids).toBe("/sys/fs/cgroup/pids/b/c");
    expect(resolve(HYBRID, HYBRID_SELF, "a/../b").memory).toBe("/sys/fs/cgroup/memory/process_api/61abdb76/b");
    for (const bad of ["/../x", "/a/../../x", "../x", "a/../../x", "../../../sys/fs/cgroup/memory"]) {
      const e = expectCgroupError(() => resolve(HYBRID, HYBRID_SELF, bad), "EINVAL", /leads out of/);
      expect(e.message).toContain(JSON.stringify(bad));
    }
  });

  test("a path naming the hierarchy root or tsrun's own cgroup is refused", () => {
    for (const bad of ["/", "//", "/a/.."]) expectCgroupError(() => resolve(HYBRID, HYBRID_SELF, bad), "EINVAL", /root of the cgroup hierarchy/);
    for (const bad of [".", "./", "a/.."]) expectCgroupError(() => resolve(HYBRID, HYBRID_SELF, bad), "EINVAL", /tsrun's own cgroup/);
    expectCgroupError(() => resolve(HYBRID, HYBRID_SELF, "/a\0b"), "EINVAL", /NUL/);
  });

  test("an id that cannot be a directory name is refused when it is the default path", () => {
    for (const id of ["a/b", "..", ".", ""]) expectCgroupError(() => resolve(HYBRID, HYBRID_SELF, undefined, id), "EINVAL", /container id/);
    expect(resolve(HYBRID, HYBRID_SELF, "/x", "a/b").pids).toBe("/sys/fs/cgroup/pids/x");
  });

  test("relative path with a hierarchy missing from /proc/self/cgroup", () => {
    expectCgroupError(() => resolve(HYBRID, "0::/\n", "c"), "ENOENT", /\/proc\/self\/cgroup.*own cgroup for cpu/);
  });
});

describe("saved state", () => {
  test("fromJSON takes toJSON's shape back and refuses anything else", () => {
    const paths = { memory: "/sys/fs/cgroup/memory/a", freezer: "/sys/fs/cgroup/freezer/a", [UNIFIED]: "/sys/fs/cgroup/unified/a" };
    const m = cgroupManagerFromJSON(JSON.parse(JSON.stringify({ version: 1, mode: "hybrid", paths })));
    expect(m.paths()).toEqual(paths);
    expect(m.mode).toBe("hybrid");
    expect(JSON.parse(JSON.stringify(m))).toEqual({ version: 1, mode: "hybrid", paths });
    const bad: unknown[] = [
      null,
      "x",
      { version: 2, mode: "v1", paths: { memory: "/a" } },
      { version: 1, mode: "v3", paths: { memory: "/a" } },
      { version: 1, mode: "v1", paths: [] },
      { version: 1, mode: "v1", paths: { memory: "a/b" } },
      { version: 1, mode: "v1", paths: { memory: "/a/../b" } },
      { version: 1, mode: "v1", paths: { memory: "/" } },
      { version: 1, mode: "v1", paths: {} },
      { version: 1, mode: "v2", paths: { memory: "/a" } },
      { version: 1, mode: "hybrid", paths: { memory: "/a" } },
      { version: 1, mode: "v1", paths: { memory: "/a", [UNIFIED]: "/b" } },
    ];
    for (const s of bad) expectCgroupError(() => cgroupManagerFromJSON(s), "EINVAL", /saved cgroup state/);
  });
});

describe("systemd driver", () => {
  test("--systemd-cgroup is refused with a typed error that names the problem and the fix", () => {
    let caught: unknown;
    try {
      cgroupManager({ id: "abc", systemd: true });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SystemdCgroupUnsupportedError);
    expect(caught).toBeInstanceOf(CgroupError);
    const e = caught as CgroupError;
    expect(e.message).toContain("--systemd-cgroup");
    expect(e.message).toContain("run without --systemd-cgroup");
    // This VM: PID 1 is not systemd.
    expect(e.message).toContain("/run/systemd/system: ENOENT");
  });
});

describe("CgroupError", () => {
  test("message carries op, path and errno", () => {
    const e = new CgroupError("rmdir", "/sys/fs/cgroup/pids/x", "EBUSY");
    expect(e.message).toBe("cgroup rmdir /sys/fs/cgroup/pids/x: EBUSY: device or resource busy");
    expect(e.path).toBe("/sys/fs/cgroup/pids/x");
  });
});
