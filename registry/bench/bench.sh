#!/bin/bash
# Registry benchmark: push and pull of a 1 GiB image of 8 layers (gzip,
# ~2:1 compressible) by strata and by crane against fresh local
# docker-registry instances in the same run (each tool pulls the image, then
# pushes what it pulled); peak RSS from /usr/bin/time; a re-push of an
# unchanged image; the first push of a local (uncompressed) image. Prints one
# line per measurement, then the median time and the largest peak RSS of
# each. Usage: registry/bench/bench.sh [RUNS (3)] [LAYERS (8)] [LAYER_BYTES (128 MiB)]
# Needs: docker-registry, /usr/bin/time, crane on PATH or in ~/go/bin
# (go install github.com/google/go-containerregistry/cmd/crane@latest).
set -euo pipefail
RUNS=${1:-3}
LAYERS=${2:-8}
SIZE=${3:-$((128 << 20))}
cd "$(dirname "$0")/../.."
CRANE=$(command -v crane || echo "$HOME/go/bin/crane")
[ -x "$CRANE" ] || { echo "bench: crane not found" >&2; exit 1; }
W=$(mktemp -d "${BENCH_DIR:-/tmp}/strata-regbench-XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

go build -o "$W/strata" ./cmd/strata
go run ./registry/bench/mkimage "$W/layout" "$LAYERS" "$SIZE" "$W/local" bench-local
export DOCKER_CONFIG=$W/docker HOME=$W/home
mkdir -p "$DOCKER_CONFIG" "$HOME"

# start_registry NAME: a fresh registry; sets REG=127.0.0.1:PORT and REG_PID
start_registry() {
	local d=$W/reg-$1 port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mkdir -p "$d"
	cat >"$d/config.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $d/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
	/usr/bin/docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
	REG_PID=$!
	PIDS+=($REG_PID)
	REG=127.0.0.1:$port
	for _ in $(seq 500); do curl -fs "http://$REG/v2/" >/dev/null && return 0; sleep 0.02; done
	echo "bench: registry did not start" >&2; cat "$d/log" >&2; exit 1
}

# stop_registry NAME PID: stops it and drops its data, so that every
# measurement meets the same machine (no other registry, no more tmpfs use).
stop_registry() {
	kill "$2" 2>/dev/null || true
	wait "$2" 2>/dev/null || true
	rm -rf "$W/reg-$1"
}

# measure LABEL CMD...: runs CMD under /usr/bin/time, appends "LABEL secs maxrss_kib"
measure() {
	local label=$1; shift
	sync # no writeback of an earlier step in this measurement
	/usr/bin/time -f "%e %M" -o "$W/time" "$@" >"$W/out" 2>"$W/err" || { echo "bench: $label failed:" >&2; cat "$W/err" >&2; exit 1; }
	read -r secs rss <"$W/time"
	echo "$label $secs $rss" | tee -a "$W/results"
}

# Each run measures each tool twice, in the order crane strata strata crane
# (odd runs) or strata crane crane strata (even runs): both tools get the
# same positions, so a load that drifts during a run (the machine is shared)
# or an effect of going first or second weighs on both alike. Every pull
# starts from nothing; every push goes to a fresh registry of its own, which
# is stopped after the push and its re-push. Each tool pushes the copy it
# pulled in the same run: files written moments ago push measurably slower
# than files read many times (crane pushing a fresh copy of the layout vs the
# layout itself: 0.93 vs 0.88 s median, and more registry CPU), so crane
# pushing the long-lived layout while strata pushed its fresh pull favoured
# crane by ~5%.
for run in $(seq "$RUNS"); do
	start_registry "src-$run"
	SRC_REG=$REG SRC_PID=$REG_PID
	"$CRANE" push "$W/layout" "$SRC_REG/bench/img:1" >/dev/null 2>&1
	export STRATA_ROOT=$W/root-$run
	pull_crane() {
		rm -rf "$W/crane-pull"
		measure crane-pull "$CRANE" pull --format oci "$SRC_REG/bench/img:1" "$W/crane-pull"
	}
	pull_strata() { rm -rf "$STRATA_ROOT"; measure strata-pull "$W/strata" pull -q "$SRC_REG/bench/img:1"; }
	push_crane() { # the layout crane pulled goes to a fresh registry
		start_registry "crane-$run"
		measure crane-push "$CRANE" push "$W/crane-pull" "$REG/bench/img:1"
		measure crane-repush "$CRANE" push "$W/crane-pull" "$REG/bench/img:1"
		stop_registry "crane-$run" "$REG_PID"
	}
	push_strata() { # the image strata pulled goes to a fresh registry
		start_registry "strata-$run"
		measure strata-push "$W/strata" push -q "$SRC_REG/bench/img:1" "$REG/bench/img:1"
		measure strata-repush "$W/strata" push -q "$SRC_REG/bench/img:1" "$REG/bench/img:1"
		stop_registry "strata-$run" "$REG_PID"
	}
	if [ $((run % 2)) = 1 ]; then
		pull_crane; pull_strata; pull_strata; pull_crane
		push_crane; push_strata; push_strata; push_crane
	else
		pull_strata; pull_crane; pull_crane; pull_strata
		push_strata; push_crane; push_crane; push_strata
	fi
	stop_registry "src-$run" "$SRC_PID"
	# a local image (uncompressed layers, as import or build make them):
	# the first push compresses (once, cached), the next finds everything there
	rm -rf "$W/root-$run" "$W/crane-pull" "$W/local-$run" && cp -a "$W/local" "$W/local-$run"
	export STRATA_ROOT=$W/local-$run
	start_registry "local-$run"
	measure strata-push-local-first "$W/strata" push -q bench-local "$REG/bench/local:1"
	measure strata-repush-local "$W/strata" push -q bench-local "$REG/bench/local:1"
	stop_registry "local-$run" "$REG_PID"
	rm -rf "$W/local-$run"
	PIDS=()
done

echo
echo "medians over $RUNS runs ($LAYERS layers x $SIZE bytes uncompressed; pulls and pushes measured twice a run):"
for label in crane-push strata-push crane-pull strata-pull strata-repush crane-repush strata-push-local-first strata-repush-local; do
	grep "^$label " "$W/results" | sort -k2 -n | awk -v l="$label" '
		{s[NR]=$2; if ($3 > rss) rss=$3}
		END {m = NR % 2 ? s[(NR+1)/2] : (s[NR/2] + s[NR/2+1]) / 2
			printf "%-24s %7.2f s  max peak RSS %6.1f MiB  (%d samples)\n", l, m, rss/1024, NR}'
done
