#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each from a
# seed corpus (tests/fuzz/make_corpus.cc: every message kind, example specs, and what a
# hostile-operator campaign found):
#   decode_fuzz  any bytes into the wire decoder (round-trip property)
#   spec_fuzz    any text into the spec parser (expansion invariants)
#   handle_fuzz  frames of messages through decode -> roles -> coordinator handling on an
#                in-memory store -> JSON views and the HTTP API
# Usage: tests/fuzz/run.sh [SECONDS per target, default 20] [RUNS]
#   With RUNS, each target runs that many executions (no time limit), e.g.
#   tests/fuzz/run.sh 0 1000000. A long run: tests/fuzz/run.sh 3600
# Exit 77 (skipped) when clang or libFuzzer is not installed; 1 when a target finds a crash.
set -euo pipefail
SECONDS_PER_TARGET="${1:-20}"
RUNS="${2:-}"
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
cmake --build "$BUILD" -j "${PRUNELAB_JOBS:-2}" --target decode_fuzz spec_fuzz handle_fuzz make_corpus >> "$BUILD.log" 2>&1 ||
  { tail -50 "$BUILD.log"; exit 1; }
CORPUS="$BUILD/corpus"
mkdir -p "$CORPUS/spec" "$CORPUS/decode" "$CORPUS/handle"
cp "$ROOT"/examples/*.yaml "$ROOT"/examples/*/*.yaml "$CORPUS/spec/" 2>/dev/null || true
ASAN_OPTIONS=detect_leaks=0 "$BUILD/bin/make_corpus" "$CORPUS"
status=0
for t in decode spec handle; do
  if [ -n "$RUNS" ]; then limit=(-runs="$RUNS"); echo "fuzz: ${t}_fuzz for $RUNS executions";
  else limit=(-max_total_time="$SECONDS_PER_TARGET"); echo "fuzz: ${t}_fuzz for ${SECONDS_PER_TARGET} s"; fi
  # -max_len: a spec, or a few messages; bigger inputs are the size limits' business (tested).
  set +e
  "$BUILD/bin/${t}_fuzz" "${limit[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD/${t}-" "$CORPUS/$t" > "$BUILD/${t}.log" 2>&1
  rc=$?
  set -e
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|SUMMARY|ERROR|Done [0-9]+ runs' "$BUILD/${t}.log" || true
  if [ "$rc" -ne 0 ]; then tail -40 "$BUILD/${t}.log"; status=1; fi
done
exit "$status"
