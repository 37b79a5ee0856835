import { expect, test } from "bun:test";
import { parseJson, JsonSyntaxError } from "../src/json.ts";

const fail = (text: string) => {
  try {
    parseJson(text, "c.json");
  } catch (e) {
    expect(e).toBeInstanceOf(JsonSyntaxError);
    return e as JsonSyntaxError;
  }
  throw new Error("parsed");
};

test("valid JSON parses", async () => {
  expect(parseJson('{"a": [1, 2]}', "x")).toEqual({ a: [1, 2] });
});

test("errors carry line and column", async () => {
  const e = fail('{\n  "a": 1,\n  "b": tru\n}');
  expect([e.line, e.column]).toEqual([3, 8]);
  expect(e.message).toStartWith("c.json:3:8: invalid JSON");
  const t = fail('{"a": 1,}');
  expect(t.line).toBe(1);
  expect(t.detail).toContain("expected");
  expect((fail("// comment\n{}")).detail).toContain("comments");
  expect((fail("")).detail).toBeTruthy();
  expect((fail('{"a": "unterminated')).line).toBe(1);
});
