#!/usr/bin/env bash
# Makes a minimal root filesystem from Debian's busybox-static: DIR/bin/busybox and one symlink
# per applet, the usual top-level directories, /etc/passwd and /etc/group.
set -euo pipefail
dir=${1:?usage: make-rootfs.sh DIR}
bb=$(command -v busybox || true)
[ -n "$bb" ] && file -L "$bb" 2>/dev/null | grep -q static || bb=/bin/busybox
[ -x "$bb" ] || { echo "make-rootfs: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir"/{bin,sbin,etc,dev,proc,sys,tmp,root,usr/bin,usr/sbin,var,run}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$dir/bin/busybox" --list); do
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$dir/etc/group"
