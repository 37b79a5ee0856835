#!/usr/bin/env bash
# Builds a small OCI image locally, without network: the busybox root filesystem of
# make-rootfs.sh as one layer (umoci), Cmd ["sh"], packed as an OCI layout tar that
# `tsrun image import` reads. Usage: make-image.sh OUT.tar [NAME]   (default localhost/busybox:latest)
set -euo pipefail
out=${1:?usage: make-image.sh OUT.tar [NAME]}
name=${2:-localhost/busybox:latest}
tag=${name##*:}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
umoci init --layout "$work/layout"
umoci new --image "$work/layout:$tag"
umoci unpack --image "$work/layout:$tag" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs"
bash "$here/make-rootfs.sh" "$work/bundle/rootfs"
umoci repack --image "$work/layout:$tag" "$work/bundle"
umoci config --image "$work/layout:$tag" --config.cmd sh --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.workingdir / --author tsrun --history.created_by "scripts/make-image.sh"
# The layout's ref name becomes the image's name on import.
jq --arg n "$name" --arg t "$tag" '(.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .annotations["org.opencontainers.image.ref.name"]) = $n' \
  "$work/layout/index.json" >"$work/index.json" && mv "$work/index.json" "$work/layout/index.json"
tar -C "$work/layout" -cf "$out" .
echo "$out"
