#!/usr/bin/env bash
# Prepares the peers ../shared/bench/run.sh measures strata against, in the same
# run: docker's classic builder and buildah (an image named bbase in each) and
# BuildKit (buildkitd on a local socket, with a local registry holding bbase).
# Usage: eval "$(scripts/bench-peers.sh STRATA_BIN)"   — prints the exports run.sh needs.
# Needs: docker.io, buildah, runc, docker-registry (Debian) and
#   go install github.com/moby/buildkit/cmd/{buildkitd,buildctl}@v0.16.0
set -eu
bin=$(realpath "${1:?usage: bench-peers.sh STRATA_BIN}")
cache=${BENCH_CACHE:-/tmp/strata-bench}; mkdir -p "$cache"
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$cache/base.tar" ] || bash "$here/../../shared/bench/make-base.sh" "$cache/base.tar" >&2
PATH=$PATH:$HOME/go/bin

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker image inspect bbase >/dev/null 2>&1 || docker import "$cache/base.tar" bbase >&2
  if command -v buildah >/dev/null; then
    buildah inspect bbase >/dev/null 2>&1 || buildah pull -q docker-daemon:bbase:latest >&2
  fi
fi

port=${BENCH_REGISTRY_PORT:-5099}
if ! curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
  d=$cache/registry; mkdir -p "$d/data"
  cat > "$d/config.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $d/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
log: {level: error}
YML
  nohup docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
fi
r=$(mktemp -d); STRATA_ROOT=$r "$bin" import "$cache/base.tar" bbase >/dev/null
STRATA_ROOT=$r "$bin" push bbase "127.0.0.1:$port/bbase:latest" >&2; rm -rf "$r"

sock=/run/buildkit-bench/buildkitd.sock
if command -v buildkitd >/dev/null && [ ! -S "$sock" ]; then
  mkdir -p /run/buildkit-bench
  cat > /run/buildkit-bench/buildkitd.toml <<TOML
[registry."127.0.0.1:$port"]
  http = true
TOML
  nohup buildkitd --addr "unix://$sock" --root /var/lib/buildkit-bench --config /run/buildkit-bench/buildkitd.toml \
    >/run/buildkit-bench/log 2>&1 &
  for _ in $(seq 100); do buildctl --addr "unix://$sock" debug workers >/dev/null 2>&1 && break; sleep 0.1; done
fi
echo "export BUILDKIT_HOST=unix://$sock BENCH_REGISTRY=127.0.0.1:$port PATH=\$PATH:$HOME/go/bin"
