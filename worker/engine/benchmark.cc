#include "worker/engine/benchmark.h"

#include <chrono>
#include <random>

namespace prunelab::worker {

using SteadyClock = std::chrono::steady_clock;

static double Ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

SingleStreamReport RunSingleStream(torch::jit::Module& m, const Dataset& samples, const BenchmarkConfig& cfg,
                                   uint64_t seed) {
  torch::NoGradGuard no_grad;
  m.train(false);
  // Pre-stage a seeded pool of single-sample queries so indexing is not timed.
  std::mt19937_64 rng(seed);
  const int64_t pool_size = std::min<int64_t>(1024, samples.size());
  std::vector<torch::Tensor> pool;
  std::uniform_int_distribution<int64_t> pick(0, samples.size() - 1);
  for (int64_t i = 0; i < pool_size; ++i) {
    int64_t k = pick(rng);
    pool.push_back(samples.images.slice(0, k, k + 1).contiguous());
  }

  for (uint32_t i = 0; i < cfg.warmup_queries; ++i) m.forward({pool[i % pool.size()]});

  std::vector<double> lat;
  lat.reserve(cfg.min_queries + 1024);
  const auto start = SteadyClock::now();
  const auto min_duration = std::chrono::duration<double>(cfg.min_duration_s);
  for (uint64_t q = 0;; ++q) {
    if (q >= cfg.min_queries && SteadyClock::now() - start >= min_duration) break;
    const auto t0 = SteadyClock::now();
    auto out = m.forward({pool[q % pool.size()]}).toTensor();
    const auto t1 = SteadyClock::now();
    lat.push_back(Ms(t1 - t0));
    (void)out;
  }
  SingleStreamReport r;
  r.duration_s = std::chrono::duration<double>(SteadyClock::now() - start).count();
  r.latency = Summarize(std::move(lat));
  return r;
}

double RunOffline(torch::jit::Module& m, const Dataset& samples, const BenchmarkConfig& cfg) {
  torch::NoGradGuard no_grad;
  m.train(false);
  const int64_t bs = std::min<int64_t>(std::max<uint32_t>(1, cfg.offline_batch_size), samples.size());
  auto batch = samples.images.slice(0, 0, bs).contiguous();
  m.forward({batch});  // warm-up
  const auto start = SteadyClock::now();
  int64_t done = 0;
  int batches = 0;
  const auto min_duration = std::chrono::duration<double>(cfg.offline_min_duration_s);
  while (batches < 3 || SteadyClock::now() - start < min_duration) {
    m.forward({batch});
    done += bs;
    ++batches;
  }
  double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return secs > 0 ? static_cast<double>(done) / secs : 0.0;
}

}  // namespace prunelab::worker
