#!/usr/bin/env bash
# The demo: make a busybox rootfs from Debian's busybox-static, import it as
# bbase, and show what strata knows about it.
set -eu
bin=$(realpath "$1"); root=$2
here=$(cd "$(dirname "$0")/.." && pwd)
shared=$here/../shared
export STRATA_ROOT=$root
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
if [ -x "$shared/bench/make-base.sh" ] || [ -f "$shared/bench/make-base.sh" ]; then
  bash "$shared/bench/make-base.sh" "$work/base.tar"
else
  bash "$here/scripts/make-base.sh" "$work/base.tar"
fi
set -x
"$bin" import -m "busybox from Debian's busybox-static" "$work/base.tar" bbase
"$bin" images
"$bin" history bbase
