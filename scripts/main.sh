#!/usr/bin/env bash
# The main job, from a fresh Debian machine with Node: set up, build tsrun, build a small image
# locally (busybox from Debian's busybox-static, no network), import it and run containers from
# it; then the same from a hand-made bundle, the runc way.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node_modules/.bin/bun scripts/gen.ts
node_modules/.bin/bun scripts/build.ts
demo=${1:-.tmp/demo}
rm -rf "$demo"
mkdir -p "$demo"
# Absolute: the stores are named to tsrun (and in the hint at the end) whatever the argument was.
export TSRUN_IMAGE_ROOT="$(realpath "$demo")/images"
# The bridge network below makes tsrun0 and the CNI plugins' iptables chains on first use, and
# they stay, as docker0 does. What this job made goes when it ends (failed or not): the bridge if
# it was not there before, and the chains that were not, with the rules that jump to them.
chains() { for c in iptables ip6tables; do "$c-save" 2>/dev/null | awk -v c="$c" '/^\*/{t=substr($0,2)} /^:/{print c, t, substr($1,2)}'; done | sort; }
bridge_before=no
ip link show tsrun0 >/dev/null 2>&1 && bridge_before=yes
chains_before=$(chains)
remove_network() {
  [ "$bridge_before" = yes ] || ip link del tsrun0 2>/dev/null || true
  local made
  made=$(comm -13 <(printf '%s\n' "$chains_before") <(chains))
  [ -n "$made" ] || return 0
  while read -r cmd table chain; do
    # the rules of other chains that jump to it, then the chain
    "$cmd-save" -t "$table" | awk -v ch="$chain" '$1 == "-A" && $2 != ch && / -j / { for (i = 1; i < NF; i++) if ($i == "-j" && $(i+1) == ch) { print; break } }' |
      while read -r rule; do eval "$cmd -t $table ${rule/#-A/-D}" || true; done
  done <<<"$made"
  while read -r cmd table chain; do "$cmd" -t "$table" -F "$chain" 2>/dev/null || true; done <<<"$made"
  while read -r cmd table chain; do "$cmd" -t "$table" -X "$chain" 2>/dev/null || true; done <<<"$made"
}
trap remove_network EXIT
# Each command as it can be pasted back into a shell (quoted where it needs it).
run() { printf '+'; printf ' %q' "$@"; printf '\n'; "$@"; }
run dist/tsrun --version
# An image, made here: an OCI layout tar with one busybox layer.
run bash scripts/make-image.sh "$demo/busybox.tar" localhost/busybox:demo
run dist/tsrun image import "$demo/busybox.tar"
run dist/tsrun image ls
# A container from the image: its layers are unpacked once and shared through an overlay mount.
run dist/tsrun --root "$demo/state" run --image localhost/busybox:demo --rm demo1 -- \
  sh -c 'echo "hello from $(hostname), pid $$ in its own namespaces"; id; ls /; grep ^Seccomp: /proc/self/status'
# A container on tsrun's bridge network (CNI plugins): an address of its own, and port 18080 of
# the host published to the httpd it runs; delete takes its network with it (veth, rules, lease).
run dist/tsrun --root "$demo/state" run --image localhost/busybox:demo -d -p 18080:80 web -- \
  sh -c 'mkdir /www && echo "hello from $(hostname), published on the host" >/www/index.html && exec httpd -f -p 80 -h /www'
run dist/tsrun --root "$demo/state" exec web sh -c 'ip -4 -o addr show eth0; tail -1 /etc/hosts'
printf '+ busybox wget -q -O- http://127.0.0.1:18080/\n'
# httpd may still be starting: a few tries.
answered=no
for _ in $(seq 50); do
  if busybox wget -q -O- http://127.0.0.1:18080/ 2>/dev/null; then answered=yes && break; fi
  sleep 0.1
done
[ "$answered" = yes ] || { echo "main: the published port 18080 did not answer" >&2; exit 1; }
run dist/tsrun --root "$demo/state" delete --force web
# A detached container: tsrun returns at once, its monitor keeps its output in a log (containerd's
# CRI format) that `tsrun logs` reads while it runs (-f follows it to the end) and after it exits;
# `tsrun container ls -a` lists it until `tsrun delete` removes it with its layer, log and monitor.
run dist/tsrun --root "$demo/state" run --image localhost/busybox:demo --net none -d ticker -- \
  sh -c 'for i in 1 2 3; do echo "tick $i from $(hostname)"; sleep 0.3; done; echo "done" >&2; exit 3'
run dist/tsrun --root "$demo/state" container ls
run dist/tsrun --root "$demo/state" logs -f ticker
run dist/tsrun --root "$demo/state" logs --tail 1 -t ticker
printf '+ head -2 %q\n' "$TSRUN_IMAGE_ROOT/bundles/ticker/container.log"
head -2 "$TSRUN_IMAGE_ROOT/bundles/ticker/container.log"
run dist/tsrun --root "$demo/state" container ls -a
run dist/tsrun --root "$demo/state" delete ticker
# Change a container's files, commit them as a new image, run that.
run dist/tsrun --root "$demo/state" run --image localhost/busybox:demo demo2 -- sh -c 'echo "committed by tsrun" > /etc/motd'
run dist/tsrun --root "$demo/state" commit -m "add /etc/motd" demo2 localhost/busybox:motd
# demo2 was kept after it exited, as docker keeps a container; delete removes it with its layer.
run dist/tsrun --root "$demo/state" delete demo2
run dist/tsrun --root "$demo/state" run --image localhost/busybox:motd --rm demo3 -- cat /etc/motd
# The runc way: tsrun spec, a root filesystem, tsrun run --bundle.
bundle="$demo/bundle"
mkdir -p "$bundle"
bash scripts/make-rootfs.sh "$bundle/rootfs"
run dist/tsrun spec --bundle "$bundle"
jq '.process.terminal = false | .process.args = ["sh", "-c", "echo hello from a hand-made bundle; cat /proc/self/cgroup | head -3"]' \
  "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
run dist/tsrun validate --bundle "$bundle"
run dist/tsrun --root "$demo/state" run --bundle "$bundle" demo4
# What the job made stays in $demo, not in the default stores: say how to reach it.
cat <<EOF

The images and containers above live in $demo, not in tsrun's default stores
(/var/lib/tsrun, /run/tsrun). To look at them:
  TSRUN_IMAGE_ROOT=$TSRUN_IMAGE_ROOT dist/tsrun image ls
  TSRUN_IMAGE_ROOT=$TSRUN_IMAGE_ROOT dist/tsrun --root $demo/state run --image localhost/busybox:motd --rm again -- cat /etc/motd
EOF
