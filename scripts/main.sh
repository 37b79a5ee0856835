#!/usr/bin/env bash
# The main job, from a fresh Debian machine with Node: set up, build tsrun, make a bundle from a
# locally built busybox root filesystem (no network), check it and run a container from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node_modules/.bin/bun scripts/gen.ts
node_modules/.bin/bun scripts/build.ts
bundle=${1:-.tmp/demo-bundle}
rm -rf "$bundle"
mkdir -p "$bundle"
bash scripts/make-rootfs.sh "$bundle/rootfs"
run() { echo "+ $*"; "$@"; }
run dist/tsrun --version
run dist/tsrun spec --bundle "$bundle"
# The starter config runs an interactive shell on a terminal; make it a one-shot command here.
jq '.process.terminal = false
  | .process.args = ["sh", "-c", "echo \"hello from $(hostname), pid $$ in its own namespaces\"; id; ls /; cat /proc/self/cgroup | head -3"]' \
  "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
run dist/tsrun validate --bundle "$bundle"
run dist/tsrun --root .tmp/state run --bundle "$bundle" demo
