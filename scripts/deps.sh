#!/usr/bin/env bash
# Installs what strata's demo and tests need on a fresh Debian machine (as root).
# Idempotent: a second run installs nothing. Go must already be on the machine.
set -eu
pkgs=(busybox-static docker-registry debootstrap skopeo umoci apache2-utils iproute2 tar gzip zstd xz-utils openssl bzip2 tmux openssh-client curl runc git)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "deps.sh: need root to install: ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a registry on :5000 through systemd where there is
# one; tests start their own on free ports, so stop it if it runs.
command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null && systemctl stop docker-registry || true
exit 0
