#!/usr/bin/env bash
# Installs what tsrun's build and tests need on a fresh Debian machine with Node and npm:
# Debian packages (peers and fixtures) and the npm dependencies, Bun among them.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc and libc6-dev build the C parts; musl-tools makes the static executor 14 times smaller.
# python3 and script(1) (bsdutils) stand in for an engine's console socket and a terminal in tests.
# skopeo, umoci, docker-registry and zstd make and serve the image fixtures of the image path.
# docker.io: dockerd with tsrun as an added runtime is one of the engines tsrun is tested behind;
# podman (with --runtime dist/tsrun) is another.
# containernetworking-plugins: the CNI plugins (bridge, host-local, loopback, portmap, firewall) that wire `run --image`'s network.
# iproute2 and procps: tsrun runs ip(8) to move linux.netDevices into a container and ps(1) for
# `tsrun ps` (so does dockerd for `docker top`); a standard Debian install has both, a minimal one
# (debootstrap --variant=minbase, most container images) has neither.
APT_PACKAGES=(gcc libc6-dev musl-tools runc crun containerd busybox-static jq python3 bsdutils skopeo umoci docker-registry zstd docker.io podman containernetworking-plugins iproute2 procps)
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
  # containerd's, docker-registry's and podman's packages start their service at install and enable it at
  # boot, and the registry then listens on port 5000 on every interface. The tests start their
  # own containerd and registry on private sockets, ports and dirs, so the machine is left with
  # no new service: a policy-rc.d that refuses every start (101) for the time of the install
  # (an existing one is put back after, even on failure), then the new services are disabled.
  policy=/usr/sbin/policy-rc.d
  saved_policy=""
  if [ -e "$policy" ]; then
    saved_policy=$(mktemp "$policy.setup.XXXXXX")
    mv -f "$policy" "$saved_policy"
  fi
  restore_policy() {
    rm -f "$policy"
    if [ -n "$saved_policy" ]; then mv -f "$saved_policy" "$policy"; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# scripts/setup.sh of tsrun: no service starts during its apt-get install.\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  restore_policy
  trap - EXIT
  for p in "${missing[@]}"; do
    case "$p" in containerd | docker-registry | docker.io | podman) ;; *) continue ;; esac
    [ "$p" = docker.io ] && p=docker
    units=("$p.service")
    [ "$p" = docker ] && units+=(docker.socket)
    # podman's API socket, and the units that restart and auto-update containers at boot.
    [ "$p" = podman ] && units+=(podman.socket podman-restart.service podman-auto-update.service podman-auto-update.timer)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now --quiet "${units[@]}" || true
    elif command -v systemctl >/dev/null; then
      # systemd installed but not running (a container, a chroot): the unit's links still start it at boot.
      systemctl disable --quiet "${units[@]}" >/dev/null 2>&1 || true
    else
      # No systemd at all (a minimal system): the package made the links all the same, which a
      # systemd installed later would follow at boot. Removing them is what systemctl disable does.
      for u in "${units[@]}"; do rm -f /etc/systemd/system/*.wants/"$u"; done
    fi
    if [ -x "/etc/init.d/$p" ]; then
      "/etc/init.d/$p" stop >/dev/null 2>&1 || true
      update-rc.d "$p" disable >/dev/null 2>&1 || true
    fi
  done
fi

if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
node_modules/.bin/bun --version >/dev/null
