# Shared helpers of the shell integration tests (Slurm, network namespaces, Prometheus).
# Source it; it sets BIN (the built binaries), SRC (the source tree) and WORK (the test's own
# temporary directory, removed at exit unless PRUNELAB_KEEP_TEST_DIRS is set).
# A test that cannot run here calls `skip "why"` (exit 77, which ctest reports as skipped).
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${PRUNELAB_BIN_DIR:-$SRC/build/bin}"
PY=/usr/bin/python3
FASHION=/usr/share/datasets/fashion-mnist
WORK="$(mktemp -d /tmp/prunelab-itest-XXXXXX)"
CLEANUPS=()
on_exit() {
  local rc=$?
  set +e  # cleaning up never changes the verdict
  for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${CLEANUPS[$i]}" >/dev/null 2>&1 || true; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -n 60 "$f"; }; done
  fi
  [ -n "${PRUNELAB_KEEP_TEST_DIRS:-}" ] || rm -rf "$WORK" 2>/dev/null || { sleep 1; rm -rf "$WORK"; }
  exit "$rc"
}
trap on_exit EXIT
cleanup() { CLEANUPS+=("$1"); }  # run at exit, last registered first

# stop PID: SIGTERM, then up to 10 s for it to exit (a daemon saving its state on the way
# out), then SIGKILL. Daemons that fork themselves are stopped by their pid file's content.
stop() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

log() { echo "[$(date +%H:%M:%S)] $*"; }
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "waited ${limit} s for $what"
    sleep 0.2
  done
}

# wait_for_quietly SECONDS COMMAND...: like wait_for, but returns 1 instead of failing the test.
wait_for_quietly() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.2
  done
}

# tiny_spec FILE NAME [SPARSITIES] [EXTRA_YAML]: a small real sweep (zoo cnn on 600 Fashion-MNIST
# images): a baseline and one trial per (granularity, sparsity), benchmarked on target `local`.
tiny_spec() {
  local file=$1 name=$2 sparsities=${3:-"[0.5]"} finetune=${4:-1}
  cat >"$file" <<YAML
name: $name
model: cnn
dataset: {path: $FASHION, train_subset: 600, test_subset: 500}
training: {epochs: 1, batch_size: 64, seed: 3}
sweep: {criterion: l1, granularity: [unstructured, channel], sparsity: $sparsities,
        schedule: {type: one_shot, finetune_epochs: $finetune}}
benchmark: {warmup_queries: 5, min_queries: 20, min_duration_s: 0.05, offline_min_duration_s: 0.05}
targets: [local]
YAML
}

# check_each_trial_once RESULTS_JSONL EXPECTED_COUNT: every row ok, no trial twice, the count.
check_each_trial_once() {
  "$PY" - "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
trials = [r["trial"] for r in rows]
dup = sorted({t for t in trials if trials.count(t) > 1})
bad = [(r["trial"], r.get("error", "")) for r in rows if r.get("status") != "ok"]
want = int(sys.argv[2])
print(f"results: {len(rows)} rows, {len(set(trials))} distinct trials (want {want}); failed: {bad}; twice: {dup}")
sys.exit(0 if not dup and not bad and len(set(trials)) == want else 1)
PY
}

# early_fine_tuner MAX_PROGRESS < workers.json: prints "WORKER TRIAL" of the first worker
# fine-tuning a trial with less than MAX_PROGRESS of it done; fails when there is none.
early_fine_tuner() {
  "$PY" -c '
import json, re, sys
for w in json.load(sys.stdin):
    if re.fullmatch(r"[^/]+/t\d+", w["task"] or "") and w["phase"].startswith("fine-tuning") \
            and w["progress"] < float(sys.argv[1]):
        print(w["worker"], w["task"].split("/")[1]); sys.exit(0)
sys.exit(1)' "$1"
}

require_fashion() { [ -f "$FASHION/t10k-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST missing: run cluster/install-deps.sh"; }
require_bins() { for b in prunelab prunelab-coordinator prunelab-worker; do [ -x "$BIN/$b" ] || fail "$BIN/$b not built (cluster/build.sh)"; done; }
