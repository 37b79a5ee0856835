#!/usr/bin/env bash
# Installs what tsrun's build and tests need on a fresh Debian machine with Node and npm:
# Debian packages (peers and fixtures) and the npm dependencies, Bun among them.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc and libc6-dev build the C parts; musl-tools makes the static executor 14 times smaller.
# python3 and script(1) (bsdutils) stand in for an engine's console socket and a terminal in tests.
# skopeo, umoci, docker-registry and zstd make and serve the image fixtures of the image path.
APT_PACKAGES=(gcc libc6-dev musl-tools runc crun containerd busybox-static jq python3 bsdutils skopeo umoci docker-registry zstd)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: please install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
node_modules/.bin/bun --version >/dev/null
