// LoadGen-style benchmark harness (no LibTorch): the four MLPerf Inference scenarios run
// against a SystemUnderTest, with warm-up, minimum duration and query counts, seeded
// sample order, and a VALID/INVALID verdict with reasons. Accuracy is never measured here:
// the SUT's outputs are not scored.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "worker/loadgen/latency_stats.h"

namespace prunelab::worker {

enum class Scenario { kSingleStream, kMultiStream, kServer, kOffline };
const char* ScenarioName(Scenario s);
StatusOr<Scenario> ParseScenario(const std::string& name);

// Time source. The real one is the steady clock; tests use a virtual clock that a fake
// SUT advances, so percentiles are checked exactly and without sleeping.
class BenchTimer {
 public:
  virtual ~BenchTimer() = default;
  virtual int64_t NowNs() = 0;
  virtual void SleepUntilNs(int64_t t_ns) = 0;
};
std::unique_ptr<BenchTimer> NewSteadyTimer();

// Runs one query to completion over `samples` (indices into the SUT's sample pool).
// Called from one thread at a time.
class SystemUnderTest {
 public:
  virtual ~SystemUnderTest() = default;
  virtual void RunQuery(const std::vector<int64_t>& samples) = 0;
  virtual uint64_t sample_pool_size() const = 0;
};

struct ScenarioSettings {
  Scenario scenario = Scenario::kSingleStream;
  uint32_t warmup_queries = 50;
  double min_duration_s = 1.0;
  uint64_t min_queries = 500;         // offline: minimum samples
  double max_duration_s = 120.0;      // hard stop; a run cut here is INVALID if short of minimums
  uint32_t samples_per_query = 1;     // multi_stream: 8 (MLPerf); offline: the batch size
  double target_qps = 100;            // server: Poisson arrival rate
  double latency_bound_ms = 10;       // server: p99 bound
  uint64_t seed = 42;                 // sample order and arrival times
  // Polled between queries (from the thread running the scenario); true stops the run at
  // once, INVALID with the reason "cancelled". Unset: never cancelled.
  std::function<bool()> cancelled;
};

struct EarlyStopping {
  bool enough = false;       // enough queries to bound the percentile at this confidence
  double estimate_ms = 0;    // upper confidence bound of the percentile (valid if enough)
  uint64_t min_queries = 0;  // fewest queries for which any bound exists
};

// Conservative estimate of the p-th percentile (0 < p < 1): the smallest order statistic
// X_(k) with P[Binomial(N, p) <= k - 1] >= confidence, i.e. X_(k) is at or above the true
// percentile with that confidence. sorted_ms ascending.
EarlyStopping EarlyStoppingEstimate(const std::vector<double>& sorted_ms, double p, double confidence = 0.99);

// Offsets (ns from the start) of `count` Poisson arrivals at `qps`: seeded exponential
// inter-arrival times.
std::vector<int64_t> PoissonArrivalsNs(double qps, uint64_t count, uint64_t seed);

struct ScenarioReport {
  ScenarioSettings settings;
  bool valid = false;
  std::vector<std::string> invalid_reasons;
  uint64_t queries = 0;
  uint64_t samples = 0;
  double duration_s = 0;
  LatencySummary latency;        // per query, ms
  double queries_per_s = 0;
  double samples_per_s = 0;
  EarlyStopping early_stopping;  // single_stream: p90 at 99 % confidence
  uint64_t peak_rss_bytes = 0;   // filled by the caller that owns memory accounting

  // The headline figure of the scenario: p90 (single), p99 (multi/server) latency in ms,
  // or samples/s (offline).
  double Metric() const;
  // Text in the spirit of LoadGen's mlperf_log_summary.txt.
  std::string Summary(const std::string& sut_name) const;
};

ScenarioReport RunScenario(SystemUnderTest& sut, BenchTimer& timer, const ScenarioSettings& settings);

// Server: bisection for the highest target QPS whose run meets the p99 bound.
struct ServerSearch {
  double best_qps = 0;                // 0 if even the lowest probe missed the bound
  ScenarioReport best;                // the run at best_qps (if any)
  std::vector<ScenarioReport> probes;
};
ServerSearch SearchServerQps(SystemUnderTest& sut, BenchTimer& timer, ScenarioSettings settings, double lo_qps,
                             double hi_qps, int probes);

}  // namespace prunelab::worker
