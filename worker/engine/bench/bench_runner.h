// Benchmarks one model variant on this worker the way the spec asks: every execution form
// it could be deployed in (fastest wins), the requested MLPerf scenarios on that form, and
// interleaved A/B single-stream rounds against the dense baseline for an honest speedup.
// LibTorch header: engine-internal.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/base/types.h"
#include "common/codec/records.h"
#include "worker/engine/data/fashion_mnist.h"
#include "worker/loadgen/interference.h"
#include "worker/loadgen/loadgen.h"

namespace torch::jit {
struct Module;  // held by pointer only: no torch/script.h here
}

namespace prunelab::worker {

// Scenario settings after applying the profile ("lab" uses the spec's numbers, "mlperf"
// MLPerf's minimums: 600 s; 1,024 single-stream, 662 multi-stream, 270,336 server
// queries; 24,576 offline samples).
ScenarioSettings SettingsFor(Scenario scenario, const BenchmarkConfig& cfg, uint64_t seed);

// What every timing on a worker shares: the samples, the settings, progress and cancellation.
struct TimingRequest {
  const Dataset* samples = nullptr;  // sample pool (test samples); outputs never scored
  BenchmarkConfig config;
  uint64_t seed = 42;
  std::function<void(const std::string& phase)> on_phase;
  // Polled between queries: true abandons the timing within one query (the worker is
  // stopping); the run then returns Unavailable. Unset: never.
  std::function<bool()> cancelled;
  // When a run counts as disturbed by the rest of the machine, and how often it is retried.
  InterferencePolicy interference;
};

struct BenchRequest : TimingRequest {
  const torch::jit::Module* variant = nullptr;
  const torch::jit::Module* baseline = nullptr;  // dense reference for A/B; null for the baseline itself
  bool has_unstructured_zeros = false;           // try sparse forms
};

// One model of a confirmation round, in the execution form its own benchmark chose.
struct ConfirmModel {
  std::string task_id;
  const torch::jit::Module* module = nullptr;
  std::string form = "dense";
};

struct ConfirmRequest : TimingRequest {  // config: confirm_rounds, and the single-stream settings
  std::vector<ConfirmModel> models;     // the dense baseline first
};

// The confirmation round: confirm_rounds rounds, each timing every model single-stream once
// (interleaved settings, as the A/B rounds), the order rotating by one model per round so no
// model always runs first or after the same neighbour. Fills `round` (rounds, models with
// their per-round p90 and ratios to the baseline, the interference verdict over the round).
// A form a model cannot take falls back to dense, and says so in the model's form.
Status RunConfirmation(const ConfirmRequest& req, ConfirmationRound* round);

// Fills the benchmark fields of `result` (latencies, throughput, forms, speedup, memory,
// validity, benchmark_json). Returns an error only when nothing could be measured.
Status RunBenchmarks(const BenchRequest& req, TrialResult* result);

}  // namespace prunelab::worker
