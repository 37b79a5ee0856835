import { expect, test } from "bun:test";
import { schemaProblems } from "../src/validators.ts";
import { closest } from "../src/suggest.ts";
import { formatProblem, pointerToken } from "../src/problem.ts";
import { validateConfig } from "../src/config.ts";
import { defaultSpec } from "../src/defaults.ts";

test("messages name the expected and the found value", () => {
  const ps = schemaProblems("config", { ociVersion: 1, process: { cwd: "/", args: ["sh"], user: { uid: -1, gid: 0 }, terminal: "yes" } });
  const by = Object.fromEntries(ps.map((p) => [p.pointer, p.message]));
  expect(by["/ociVersion"]).toMatch(/must be a string, found the integer 1/);
  expect(by["/process/user/uid"]).toMatch(/>= 0/);
  expect(by["/process/terminal"]).toMatch(/boolean/);
});

test("missing required properties point at the property", () => {
  const ps = schemaProblems("config", { process: { cwd: "/" } });
  expect(ps.map((p) => p.pointer)).toContain("/ociVersion");
  expect(ps.find((p) => p.pointer === "/ociVersion")!.message).toMatch(/required/);
});

test("the whole document of the wrong type", () => {
  for (const v of [null, [], "x", 3]) {
    const ps = schemaProblems("config", v);
    expect(ps[0]!.pointer).toBe("");
    expect(formatProblem(ps[0]!)).toStartWith("(document)");
  }
});

test("suggestions", () => {
  expect(closest("net", ["pid", "network", "mount"])).toBe("network");
  expect(closest("RLIMIT_NOFLIE", ["RLIMIT_NOFILE", "RLIMIT_CORE"])).toBe("RLIMIT_NOFILE");
  expect(closest("zzzzzz", ["pid", "network"])).toBeUndefined();
  expect(pointerToken("a/b~c")).toBe("a~1b~0c");
});

test("a missing property beside a misspelt key suggests the key, never a valid sibling", () => {
  const hints = (user: object) => {
    const c = JSON.parse(JSON.stringify(defaultSpec()));
    c.process.user = user;
    const r = validateConfig(c);
    return r.ok ? [] : r.problems.map(formatProblem);
  };
  expect(hints({ uiid: 0, gid: 0 })).toEqual(['/process/user/uid: is required on Linux (found "uiid": did you mean "uid"?)']);
  // "gid" is one letter from "uid" too, but it is a property of its own: no hint
  expect(hints({ gid: 0 })).toEqual(["/process/user/uid: is required on Linux"]);
  // a swapped pair and another case read as typos too
  expect(hints({ UID: 0, gid: 0 })).toEqual(['/process/user/uid: is required on Linux (found "UID": did you mean "uid"?)']);
  expect(hints({ uid: 0, gdi: 0 })).toEqual(['/process/user/gid: is required on Linux (found "gdi": did you mean "gid"?)']);
  // the schema's own required properties get the same hint
  const ps = schemaProblems("config", { ociVersion: "1.3.0", process: { cwd: "/", arsg: ["sh"] }, root: { pth: "rootfs" } });
  expect(ps.filter((p) => p.pointer === "/root/path").map(formatProblem)).toEqual(['/root/path: is required but missing (found "pth": did you mean "path"?)']);
});
