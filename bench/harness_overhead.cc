// How much does the benchmark harness add to what it measures? Times the zoo CNN at
// batch 1 with a bare loop and through the single-stream scenario, interleaved in one
// run, and prints both p50s and the overhead. Target: under 2 %.
// Usage: harness_overhead [--json] [--rounds N]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "bench/bench_common.h"
#include "worker/engine/bench/bench_runner.h"
#include "worker/daemon/executor.h"
#include "worker/engine/bench/forms.h"
#include "worker/engine/model/zoo.h"

using namespace prunelab;
using namespace prunelab::worker;

int main(int argc, char** argv) {
  int rounds = 31;
  bench::BenchFlags flags("harness_overhead", "benchmark harness overhead vs a bare timing loop");
  flags.Int("--rounds", &rounds, "measurement rounds");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const bool json_out = flags.json();
  int threads = ConfigureTorchThreads(1);
  Dataset pool = bench::SamplePool(1024);
  auto model = BuildFashionCnn(1);
  model.eval();
  auto sut = MakeSut("dense", model, pool);
  if (!sut.ok()) return 1;
  auto timer = NewSteadyTimer();
  ScenarioSettings s;
  s.scenario = Scenario::kSingleStream;
  s.warmup_queries = 50;
  s.min_queries = 1000;
  s.min_duration_s = 0.0;

  // The bare loop: the same forward calls on the same pre-sliced inputs, nothing else.
  std::vector<torch::Tensor> inputs;
  for (int64_t i = 0; i < pool.size(); ++i) inputs.push_back(pool.inputs.slice(0, i, i + 1).contiguous());
  auto dense = model.deepcopy();
  dense.eval();
  auto bare = [&](uint64_t n) {
    torch::NoGradGuard g;
    for (int i = 0; i < 200; ++i) dense.forward({inputs[i % inputs.size()]});
    std::vector<double> lat;
    lat.reserve(n);
    for (uint64_t q = 0; q < n; ++q) {
      auto t0 = std::chrono::steady_clock::now();
      auto out = dense.forward({inputs[(q * 7919) % inputs.size()]}).toTensor();
      lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return Summarize(lat).p50_ms;
  };

  // Many short interleaved rounds; the overhead is the median of per-round p50 ratios, so
  // drift between rounds (this VM's p50 wanders by 20 %) cancels.
  std::vector<double> bare_p50, harness_p50, ratio;
  for (int r = 0; r < rounds; ++r) {
    bare_p50.push_back(bare(1000));
    s.seed = r;
    harness_p50.push_back(RunScenario(*sut.value(), *timer, s).latency.p50_ms);
    ratio.push_back(harness_p50.back() / bare_p50.back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double b = median(bare_p50), h = median(harness_p50);
  double overhead_pct = (median(ratio) - 1.0) * 100.0;

  // The harness's own bookkeeping per query, measured exactly with a SUT that does nothing.
  struct NoopSut : SystemUnderTest {
    void RunQuery(const std::vector<int64_t>&) override {}
    uint64_t sample_pool_size() const override { return 1024; }
  } noop;
  ScenarioSettings ns = s;
  ns.min_queries = 200000;
  auto t0 = std::chrono::steady_clock::now();
  auto nr = RunScenario(noop, *timer, ns);
  double per_query_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                        static_cast<double>(nr.queries + ns.warmup_queries);
  double bookkeeping_pct = per_query_us / (b * 1000.0) * 100.0;
  if (json_out) {
    nlohmann::json j{{"model", "cnn"}, {"batch", 1}, {"threads", threads}, {"rounds", rounds},
                     {"bare_p50_ms", b}, {"harness_p50_ms", h}, {"overhead_pct", overhead_pct},
                     {"bookkeeping_us_per_query", per_query_us}, {"bookkeeping_pct_of_p50", bookkeeping_pct},
                     {"target_overhead_pct", 2.0}, {"target_met", overhead_pct < 2.0 && bookkeeping_pct < 2.0},
                     {"bare_p50_ms_rounds", bare_p50}, {"harness_p50_ms_rounds", harness_p50}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("zoo CNN, batch 1, %d thread(s), median of %d interleaved rounds\n", threads, rounds);
    std::printf("  bare loop p50        %.4f ms\n", b);
    std::printf("  single-stream p50    %.4f ms\n", h);
    std::printf("  overhead, median of per-round p50 ratios   %+.2f %%\n", overhead_pct);
    std::printf("  harness bookkeeping per query (no-op SUT)  %.3f us = %.2f %% of the bare p50\n", per_query_us, bookkeeping_pct);
    std::printf("  target < 2 %%: %s\n", overhead_pct < 2.0 && bookkeeping_pct < 2.0 ? "met" : "NOT met");
  }
  return 0;
}
