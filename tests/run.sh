#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (GoogleTest under ctest).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash cluster/install-deps.sh
bash cluster/build.sh
cd build
ctest --output-on-failure -j "${PRUNELAB_JOBS:-2}" --timeout 900
