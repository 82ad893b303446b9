#!/usr/bin/env bash
# Configures and builds prunelab into ./build (incremental; -j2 by default).
# Usage: cluster/build.sh [extra cmake args]
#   PRUNELAB_TARGETS="prunelab prunelab-coordinator prunelab-worker" cluster/build.sh
#     builds only those targets (what examples/quickstart.sh runs); default: everything,
#     tests, bench programs and tools included (what tests/run.sh needs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${PRUNELAB_JOBS:-2}"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
target_args=()
what="everything"
if [ -n "${PRUNELAB_TARGETS:-}" ]; then
  for t in $PRUNELAB_TARGETS; do target_args+=(--target "$t"); done
  what="$PRUNELAB_TARGETS"
fi
echo "build: compiling $what with -j$JOBS (a first build takes minutes; LibTorch headers are heavy)"
cmake --build "$ROOT/build" -j "$JOBS" "${target_args[@]}"
