// Benchmark of a model on this worker: single-stream latency (one sample per query, the
// next issued when the last completes) and offline throughput (full batches).
// LibTorch header: engine-internal.
#pragma once

#include "common/types.h"
#include "worker/engine/fashion_mnist.h"
#include "worker/engine/latency_stats.h"

namespace prunelab::worker {

struct SingleStreamReport {
  LatencySummary latency;
  double duration_s = 0;
};

// Warm-up queries, then queries until both min_queries and min_duration_s are reached.
// Samples come from `samples` in a seeded order; outputs are never scored.
SingleStreamReport RunSingleStream(torch::jit::Module& m, const Dataset& samples, const BenchmarkConfig& cfg,
                                   uint64_t seed);

// Samples per second over full batches of offline_batch_size for offline_min_duration_s.
double RunOffline(torch::jit::Module& m, const Dataset& samples, const BenchmarkConfig& cfg);

}  // namespace prunelab::worker
