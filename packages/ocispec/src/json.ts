// JSON documents from files: parse errors carry line and column, never a stack trace.
// jsonc-parser is loaded only for a document that fails to parse: loading it costs a cold
// tsrun about 2 ms, on every create and exec otherwise.

export class JsonSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}:${column}: invalid JSON: ${detail}`);
    this.name = "JsonSyntaxError";
  }
}

const ERROR_TEXT: Record<number, string> = {
  1: "invalid symbol", 2: "invalid number format", 3: "property name expected", 4: "value expected",
  5: "colon expected", 6: "comma expected", 7: "closing brace expected", 8: "closing bracket expected",
  9: "end of file expected", 10: "comments are not allowed", 11: "unexpected end of comment",
  12: "unexpected end of string", 13: "unexpected end of number", 14: "invalid unicode escape",
  15: "invalid escape character", 16: "invalid character in string",
};

/**
 * JSON.parse, and on failure a second, slower pass with a tolerant parser that tells where the
 * first error is: Bun's JSON.parse does not say.
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const errors: { error: number; offset: number; length: number }[] = [];
    // the ESM build by path: the package's main (UMD) hides its own requires from the bundler
    const { parse: tolerantParse } = require("jsonc-parser/lib/esm/main.js") as typeof import("jsonc-parser");
    tolerantParse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    const offset = first ? first.offset : text.length;
    const before = text.slice(0, offset);
    const line = before.split("\n").length;
    const column = offset - before.lastIndexOf("\n");
    const detail = first ? (ERROR_TEXT[first.error] ?? "syntax error") : text.trim() === "" ? "the file is empty" : (e as Error).message;
    throw new JsonSyntaxError(file, line, column, detail);
  }
}
