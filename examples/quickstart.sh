#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a Pareto table:
# installs what is missing, builds, runs the quick sweep locally (embedded coordinator +
# 2 worker processes) and prints the results and the Pareto front.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
t0=$(date +%s)
bash cluster/install-deps.sh
t1=$(date +%s)
# Only what the sweep runs: tests, bench programs and fuzzers are built by tests/run.sh.
PRUNELAB_TARGETS="prunelab prunelab-coordinator prunelab-worker" bash cluster/build.sh
t2=$(date +%s)
echo "quickstart: install $((t1 - t0)) s, build $((t2 - t1)) s"
DATA_DIR="${PRUNELAB_DATA_DIR:-$ROOT/prunelab-data}"
echo "quickstart: running examples/fashion-mnist-quick.yaml; state goes to $DATA_DIR"
exec "$ROOT/build/bin/prunelab" run examples/fashion-mnist-quick.yaml --workers 2 --data-dir "$DATA_DIR" "$@"
