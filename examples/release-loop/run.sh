#!/usr/bin/env bash
# The release loop on one machine, end to end:
#   sweep -> release v1 (the previous deployment) and v2 (the sweep's recommendation)
#   -> evaluate v2 on clean data (every level ok) -> evaluate it on shifted data (critical,
#   the worst class named) -> the target's policy rolls back to v1 by itself.
# A coordinator and one worker run in the background (stopped at exit); data in DIR.
# Usage: examples/release-loop/run.sh [DIR]   (default ./release-loop-data)
# Environment: PRUNELAB_BIN (default build/bin), PRUNELAB_LOOP_SPEC (default sweep.yaml here),
# PRUNELAB_LOOP_TEST_SUBSET (test samples of the evaluation data; default all 10k),
# PRUNELAB_LOOP_WORKER_ARGS (more prunelab-worker flags, e.g. --bench-retries 0).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${PRUNELAB_BIN:-$ROOT/build/bin}"
DIR="${1:-release-loop-data}"
SPEC="${PRUNELAB_LOOP_SPEC:-$HERE/sweep.yaml}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
for b in prunelab prunelab-coordinator prunelab-worker; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b not built: run cluster/build.sh"; exit 1; }
done
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WPORT=$(port); CPORT=$(port); HPORT=$(port)
export PRUNELAB_COORDINATOR="tcp://127.0.0.1:$CPORT"
PIDS=()
finish() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap finish EXIT
step() { printf '\n==== %s\n' "$*"; }
pl() { echo "\$ prunelab $*"; "$BIN/prunelab" "$@"; }

step "evaluation data from Fashion-MNIST: clean, and shifted (brighter, rotated, classes 5-9 rare)"
/usr/bin/python3 "$HERE/make_data.py" "$DIR/data" --test-subset "${PRUNELAB_LOOP_TEST_SUBSET:-0}" --train-subset 2000

step "coordinator (dashboard http://127.0.0.1:$HPORT/) and one worker for target 'local'"
"$BIN/prunelab-coordinator" --data-dir "$DIR/coordinator" --worker-endpoint "tcp://127.0.0.1:$WPORT" \
  --client-endpoint "tcp://127.0.0.1:$CPORT" --http "127.0.0.1:$HPORT" > "$DIR/coordinator.log" 2>&1 &
PIDS+=($!)
"$BIN/prunelab-worker" --coordinator "tcp://127.0.0.1:$WPORT" --target local --threads "$(nproc)" \
  --cache-dir "$DIR/cache" ${PRUNELAB_LOOP_WORKER_ARGS:-} > "$DIR/worker.log" 2>&1 &
PIDS+=($!)

step "1. the sweep"
SW=$("$BIN/prunelab" submit "$SPEC")
pl status "$SW" --wait
pl pareto "$SW" --target local

# v1 stands for what was deployed before this sweep: its other variant (the one not recommended).
OTHER=$("$BIN/prunelab" pareto "$SW" --json | /usr/bin/python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin)["decisions"]["targets"] if t["target"] == "local"][0]
print(next(v["trial"] for v in t["variants"] if v["trial"] != t["recommended"] and not v["trial"].startswith("base@")))')
step "2. releases: v1 = $OTHER (standing in for the previous deployment), v2 = the recommendation"
pl release "$SW" "$OTHER" --target local --note "previous deployment" --wait ||
  pl release "$SW" "$OTHER" --target local --note "previous deployment" --force \
    --reason "fails a gate of this short sweep; released to have something to roll back to" --wait
pl release "$SW" recommended --target local --note "this sweep's recommendation" --wait
pl policy --target local --on-critical rollback

step "3. evaluate v2 on clean data: every level ok"
pl evaluate --target local --data "$DIR/data/clean"

step "4. evaluate v2 on shifted data: critical, the worst class named; the policy rolls back"
pl evaluate --target local --data "$DIR/data/shifted"

step "5. the record: releases, events (the rollback by the policy), latest evaluations"
pl releases --target local
echo
echo "on /metrics (http://127.0.0.1:$HPORT/metrics), for Prometheus and cluster/prometheus/alerts.yml:"
/usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "http://127.0.0.1:$HPORT/metrics" | grep -E '^prunelab_(evaluation_level|evaluation_psi|release_)' || true
