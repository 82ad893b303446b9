#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a Pareto table:
# installs what is missing, builds, runs the quick sweep locally (embedded coordinator +
# 2 worker processes) and prints the results and the Pareto front.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash cluster/install-deps.sh
bash cluster/build.sh
DATA_DIR="${PRUNELAB_DATA_DIR:-$ROOT/prunelab-data}"
echo "quickstart: running examples/fashion-mnist-quick.yaml; state goes to $DATA_DIR"
exec "$ROOT/build/bin/prunelab" run examples/fashion-mnist-quick.yaml --workers 2 --data-dir "$DATA_DIR" "$@"
