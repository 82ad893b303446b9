#!/usr/bin/env bash
# Configures and builds prunelab into ./build (incremental; -j2 by default).
# Usage: cluster/build.sh [extra cmake args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${PRUNELAB_JOBS:-2}"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
echo "build: compiling with -j$JOBS (first build takes a few minutes; LibTorch headers are heavy)"
cmake --build "$ROOT/build" -j "$JOBS"
