#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each for
# SECONDS (default 20) from a seed corpus: encoded messages written by the codec test's
# shapes are not needed — the decoder target starts from the example specs and grows its own.
# Long run (documented): tests/fuzz/run.sh 3600
# Exit 77 (skipped) when clang or libFuzzer is not installed.
set -euo pipefail
SECONDS_PER_TARGET="${1:-20}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CXX_BIN="$(command -v clang++-14 || command -v clang++ || true)"
CC_BIN="$(command -v clang-14 || command -v clang || true)"
if [ -z "$CXX_BIN" ] || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: clang or libclang-rt-14-dev missing (cluster/install-deps.sh installs them): skipped"
  exit 77
fi
BUILD="$ROOT/build-fuzz"
cmake -S "$ROOT" -B "$BUILD" -DPRUNELAB_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" > "$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
cmake --build "$BUILD" -j "${PRUNELAB_JOBS:-2}" --target decode_fuzz spec_fuzz >> "$BUILD.log" 2>&1 || { tail -50 "$BUILD.log"; exit 1; }
CORPUS="$BUILD/corpus"
mkdir -p "$CORPUS/spec" "$CORPUS/decode"
cp "$ROOT"/examples/*.yaml "$ROOT"/examples/*/*.yaml "$CORPUS/spec/" 2>/dev/null || true
printf 'garbage' > "$CORPUS/decode/seed0"
for t in decode spec; do
  echo "fuzz: ${t}_fuzz for ${SECONDS_PER_TARGET} s"
  "$BUILD/bin/${t}_fuzz" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$CORPUS/$t" 2>&1 | tail -15
done
