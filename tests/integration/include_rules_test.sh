#!/usr/bin/env bash
# The include rules of docs/ARCHITECTURE.md hold for the tree, and the checker catches each
# kind of break (a layer, an external library, a file no rule covers) in a planted copy.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY=/usr/bin/python3
"$PY" "$ROOT/tests/check_includes.py" "$ROOT"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/docs"
cp -r "$ROOT/common" "$ROOT/coordinator" "$ROOT/worker" "$tmp/"
cp "$ROOT/docs/ARCHITECTURE.md" "$tmp/docs/"
echo '#include "coordinator/store/store.h"' >> "$tmp/worker/daemon/daemon.cc"
echo '#include <rocksdb/db.h>' >> "$tmp/coordinator/scheduler/coordinator.cc"
echo '#include <torch/torch.h>' >> "$tmp/worker/daemon/daemon.cc"
mkdir -p "$tmp/common/newthing" && echo '' > "$tmp/common/newthing/x.cc"
if out=$("$PY" "$ROOT/tests/check_includes.py" "$tmp"); then
  echo "FAIL: the checker passed a tree with planted violations"; echo "$out"; exit 1
fi
echo "$out"
for want in "worker/daemon/daemon.cc:.*includes coordinator/store/store.h" \
            "coordinator/scheduler/coordinator.cc:.*<rocksdb/...> is allowed only in" \
            "worker/daemon/daemon.cc:.*<torch/...> is allowed only in" \
            "common/newthing/x.cc: no rule"; do
  grep -q "$want" <<<"$out" || { echo "FAIL: not reported: $want"; exit 1; }
done
echo "include rules: the tree passes; 4 planted violations caught"
