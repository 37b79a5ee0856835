import { describe, expect, test } from "bun:test";
import {
  ImageReferenceError,
  familiarReference,
  formatReference,
  isLoopbackDomain,
  parseReference,
  registryHost,
  repositoryName,
} from "../src/image/reference.ts";

const D = `sha256:${"a1".repeat(32)}`;

describe("parseReference normalizes like docker and containerd", () => {
  const cases: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest"],
    ["user/app", "docker.io/user/app:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/busybox:1", "docker.io/library/busybox:1"],
    ["registry-1.docker.io/user/app", "docker.io/user/app:latest"],
    ["ghcr.io/org/team/app:v1.2.3", "ghcr.io/org/team/app:v1.2.3"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/ns/name:tag", "localhost:5000/ns/name:tag"],
    ["host:5000/ns/name", "host:5000/ns/name:latest"],
    ["127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"],
    ["[::1]:5000/busybox:1", "[::1]:5000/busybox:1"],
    ["[fe80::1%eth0]/x", "[fe80::1%eth0]/x:latest"],
    ["Registry/app", "Registry/app:latest"],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`],
    [`localhost:5000/a/b:t@${D}`, `localhost:5000/a/b:t@${D}`],
    ["a.b-c/x__y/z.w-1--2:_T.ag-9", "a.b-c/x__y/z.w-1--2:_T.ag-9"],
    // A bare "name:port" has no "/", so it is a Hub image with a tag, as Docker reads it.
    ["localhost:5000", "docker.io/library/localhost:5000"],
  ];
  for (const [input, want] of cases)
    test(`${input} -> ${want}`, () => {
      expect(formatReference(parseReference(input))).toBe(want);
    });

  test("fields", () => {
    expect(parseReference(`localhost:5000/ns/name:tag@${D}`)).toEqual({ domain: "localhost:5000", path: "ns/name", tag: "tag", digest: D });
    expect(parseReference(`busybox@${D}`)).toEqual({ domain: "docker.io", path: "library/busybox", digest: D });
    expect(repositoryName(parseReference("busybox:1"))).toBe("docker.io/library/busybox");
  });

  test("familiar form", () => {
    expect(familiarReference(parseReference("busybox"))).toBe("busybox:latest");
    expect(familiarReference(parseReference("docker.io/user/app:2"))).toBe("user/app:2");
    expect(familiarReference(parseReference("docker.io/library/a/b"))).toBe("library/a/b:latest");
    expect(familiarReference(parseReference("quay.io/x/y"))).toBe("quay.io/x/y:latest");
  });

  test("registry hosts and loopback", () => {
    expect(registryHost(parseReference("busybox").domain)).toBe("registry-1.docker.io");
    expect(registryHost(parseReference("quay.io/x/y").domain)).toBe("quay.io");
    expect(isLoopbackDomain("localhost:5000")).toBe(true);
    expect(isLoopbackDomain("127.0.0.1")).toBe(true);
    expect(isLoopbackDomain("[::1]:5000")).toBe(true);
    expect(isLoopbackDomain("localhost.example.com")).toBe(false);
    expect(isLoopbackDomain("docker.io")).toBe(false);
  });
});

describe("parseReference says what is wrong", () => {
  const bad: [string, RegExp][] = [
    ["", /it is empty/],
    ["busy box", /whitespace/],
    ["BusyBox", /must be lowercase.*write "busybox"/],
    ["docker.io/User/app", /must be lowercase/],
    ["busybox:", /tag after ":" is empty/],
    ["busybox:-x", /tag "-x" is not valid/],
    [`busybox:${"t".repeat(129)}`, /at most 128/],
    ["busybox@", /nothing follows "@"/],
    ["busybox@sha256:abc", /64 lowercase hex characters/],
    ["busybox@md5", /no ":"/],
    ["host:5000/", /repository name is empty/],
    ["a//b", /empty path component/],
    ["a/b/", /empty path component/],
    ["host:99999/x", /port "99999"/],
    ["host:abc/x", /port "abc"/],
    ["-bad.example.com/x", /label "-bad"/],
    ["[::1/x", /never closes/],
    ["[::1]x/y", /only ":port" may follow/],
    ["[zz]/y", /not an IPv6 address/],
    ["[::1]", /no repository follows/],
    ["a/.b", /path component ".b" is not valid/],
    ["a/b___c", /"b___c" is not valid/],
    ["a".repeat(64).replace(/a/g, "f"), /image id, not a repository name/],
    [`example.com/${"x".repeat(250)}`, /at most 255/],
  ];
  for (const [input, want] of bad)
    test(JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input), () => {
      let err: unknown;
      try {
        parseReference(input);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ImageReferenceError);
      expect((err as Error).message).toStartWith(`invalid image reference ${JSON.stringify(input)}: `);
      expect((err as Error).message).toMatch(want);
    });
});
