#!/usr/bin/env bash
# The main job, from a fresh Debian machine with Node: set up, build tsrun, make a bundle from a
# locally built busybox root filesystem, and check it. (Running the container comes with the
# runtime core.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node_modules/.bin/bun scripts/gen.ts
node_modules/.bin/bun scripts/build.ts
bundle=${1:-.tmp/demo-bundle}
rm -rf "$bundle"
mkdir -p "$bundle"
bash scripts/make-rootfs.sh "$bundle/rootfs"
echo "+ dist/tsrun --version"
dist/tsrun --version
echo "+ dist/tsrun spec --bundle $bundle"
dist/tsrun spec --bundle "$bundle"
echo "+ dist/tsrun validate --bundle $bundle"
dist/tsrun validate --bundle "$bundle"
