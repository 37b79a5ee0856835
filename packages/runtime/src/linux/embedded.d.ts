// Files embedded with `import path from "…" with { type: "file" }`: the import is the file's
// path (a /$bunfs/… path inside a `bun build --compile` binary).
declare module "*.so" {
  const path: string;
  export default path;
}
declare module "*/tsrun-exec" {
  const path: string;
  export default path;
}
