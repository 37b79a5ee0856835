import { expect, test } from "bun:test";
import { schemaProblems } from "../src/validators.ts";
import { closest } from "../src/suggest.ts";
import { formatProblem, pointerToken } from "../src/problem.ts";

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
