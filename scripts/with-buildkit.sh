#!/usr/bin/env bash
# Runs a command beside a BuildKit v0.16 daemon and a registry holding the
# base image bbase: e2e's TestBuildMatchesBuildKit compares strata's builds
# with BuildKit's when BUILDKIT_HOST and BENCH_REGISTRY are set. Both are
# stopped and their files removed afterwards, whatever the command's result.
# Installs runc (Debian) and buildkitd/buildctl v0.16.0 (go install, ~1.5 min
# the first time) when missing. STRATA_TEST_BUILDKIT=0 runs the command alone.
# Usage: scripts/with-buildkit.sh STRATA_BIN CMD [ARG...]
set -eu
bin=$(realpath "${1:?usage: with-buildkit.sh STRATA_BIN CMD [ARG...]}"); shift
[ "${STRATA_TEST_BUILDKIT:-1}" = 0 ] && exec "$@"
here=$(cd "$(dirname "$0")" && pwd)
export PATH=$PATH:$(go env GOPATH)/bin

if ! command -v runc >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runc >/dev/null
fi
if ! { command -v buildctl >/dev/null && go version -m "$(command -v buildkitd)" 2>/dev/null | grep -Eq '^\s+mod\s+github.com/moby/buildkit\s+v0\.16\.0\s'; }; then
  echo "with-buildkit.sh: installing buildkitd and buildctl v0.16.0" >&2
  go install github.com/moby/buildkit/cmd/buildkitd@v0.16.0 github.com/moby/buildkit/cmd/buildctl@v0.16.0
fi

w=$(mktemp -d /tmp/strata-buildkit.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  grep -o " $w/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$w"
}
trap cleanup EXIT

# a free loopback port for the registry (buildkitd's config must name it)
port=
for _ in $(seq 50); do
  p=$((20000 + RANDOM % 20000))
  ss -Hltn "sport = :$p" | grep -q . || { port=$p; break; }
done
[ -n "$port" ] || { echo "with-buildkit.sh: no free port" >&2; exit 1; }
mkdir -p "$w/registry"
cat > "$w/registry/config.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $w/registry/data}}
http: {addr: 127.0.0.1:$port}
log: {level: error}
YML
docker-registry serve "$w/registry/config.yml" >"$w/registry/log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

bash "$here/../../shared/bench/make-base.sh" "$w/base.tar" >&2
STRATA_ROOT=$w/strata "$bin" import "$w/base.tar" bbase >/dev/null
STRATA_ROOT=$w/strata "$bin" push -q bbase "127.0.0.1:$port/bbase:latest" >/dev/null
rm -rf "$w/strata"

printf '[registry."127.0.0.1:%s"]\n  http = true\n' "$port" > "$w/buildkitd.toml"
# its temp mount points (buildkit-mount*) stay in $w, not in /tmp
mkdir -p "$w/tmp"
TMPDIR=$w/tmp buildkitd --addr "unix://$w/buildkitd.sock" --root "$w/buildkitd" --config "$w/buildkitd.toml" >"$w/buildkitd.log" 2>&1 &
pids+=($!)
ok=
for _ in $(seq 100); do
  buildctl --addr "unix://$w/buildkitd.sock" debug workers >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.1
done
[ -n "$ok" ] || { echo "with-buildkit.sh: buildkitd did not start:" >&2; tail -5 "$w/buildkitd.log" >&2; exit 1; }

export BUILDKIT_HOST=unix://$w/buildkitd.sock BENCH_REGISTRY=127.0.0.1:$port
rc=0
"$@" || rc=$?
exit $rc
