// .proto files embedded with `import text from "…" with { type: "text" }`: the import is the
// file's text, bundled into a `bun build --compile` binary like any module.
declare module "*.proto" {
  const text: string;
  export default text;
}
