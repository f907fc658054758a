#!/usr/bin/env bash
# The demo: make a busybox rootfs from Debian's busybox-static, import it as
# bbase, show what strata knows about it, then build examples/hello on it and
# run the result.
set -eu
bin=$(realpath "$1"); root=$2
here=$(cd "$(dirname "$0")/.." && pwd)
export STRATA_ROOT=$root
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
bash "$here/scripts/make-base.sh" "$work/base.tar"
step() { printf '\n$ %s\n' "$*"; "$@"; }
step "$bin" import -m "busybox from Debian's busybox-static" "$work/base.tar" bbase
step "$bin" images
step "$bin" history bbase
step "$bin" build --progress plain -t hello "$here/examples/hello"
step "$bin" run --rm hello
step "$bin" history hello
