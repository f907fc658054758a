#!/usr/bin/env bash
# Makes a local "golang-local" image from this machine's Go toolchain on top
# of a busybox root filesystem, for building examples/go-static offline:
#   ./make-golang-image.sh BASE.tar && strata build --build-arg GOLANG=golang-local -t hello-go .
set -eu
base=${1:?usage: make-golang-image.sh BASE.tar [GOROOT]}
goroot=${2:-$(go env GOROOT)}
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
tar -C "$d" -xf "$base"
mkdir -p "$d/usr/local" "$d/root"
cp -a "$goroot" "$d/usr/local/go"
rm -rf "$d/usr/local/go/pkg/tool/"*/{cover,doc,fix,pprof,trace,vet} "$d/usr/local/go/test" "$d/usr/local/go/api"
tar -C "$d" -c . | strata import -c 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - golang-local
