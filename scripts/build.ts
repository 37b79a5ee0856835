// Compiles the CLI into one self-contained binary, dist/tsrun, and names it
// dist/containerd-shim-tsrun-v2 too (a symlink: run under that name, the binary is containerd's
// shim). Run `bun scripts/gen.ts` first (`bun run build` does both).
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { buildNative } from "./build-native.ts";

const root = join(import.meta.dir, "..");
const dist = join(root, "dist");
mkdirSync(dist, { recursive: true });

function commit(): string {
  const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root, stderr: "ignore" });
  const sha = r.success ? r.stdout.toString().trim() : "";
  if (!sha) return "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: root }).stdout.toString().trim();
  return dirty ? `${sha}-dirty` : sha;
}

// The C half of the plan boundary is embedded in the binary: build it first.
buildNative();

// The shim package's entry: the runtime's command line plus the image commands, and the shim
// when run as containerd-shim-tsrun-v2.
const binaries = [{ entry: "packages/shim/src/cli/bin.ts", out: "tsrun" }];
const sha = commit();
for (const b of binaries) {
  const outfile = join(dist, b.out);
  // ESM with code splitting: a command's modules are loaded only when it runs (about 1 ms less
  // start-up than one bundle for every command).
  // No .env or bunfig.toml from the working directory: engines run the runtime inside bundle
  // directories that containers' images and users control, and those files would change
  // tsrun's environment and Bun's behaviour.
  const args = ["build", "--compile", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--bytecode", "--minify", "--format=esm", "--splitting", "--sourcemap=none", `--define`, `TSRUN_COMMIT=${JSON.stringify(sha)}`, join(root, b.entry), "--outfile", outfile];
  const r = Bun.spawnSync([process.execPath, ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (!r.success) {
    console.error(`build: bun build failed for ${b.entry}`);
    process.exit(1);
  }
  console.error(`build: ${outfile}`);
}

// One executable, two names. A relative link, so dist/ can move; an installer may copy or hard
// link it instead (the name it is run by is what counts).
const shim = join(dist, "containerd-shim-tsrun-v2");
rmSync(shim, { force: true });
symlinkSync("tsrun", shim);
console.error(`build: ${shim} -> tsrun`);
