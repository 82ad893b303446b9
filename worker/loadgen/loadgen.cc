#include "worker/loadgen/loadgen.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <fmt/printf.h>

namespace prunelab::worker {

const char* ScenarioName(Scenario s) {
  switch (s) {
    case Scenario::kSingleStream: return "single_stream";
    case Scenario::kMultiStream: return "multi_stream";
    case Scenario::kServer: return "server";
    case Scenario::kOffline: return "offline";
  }
  return "unknown";
}

StatusOr<Scenario> ParseScenario(const std::string& n) {
  if (n == "single_stream") return Scenario::kSingleStream;
  if (n == "multi_stream") return Scenario::kMultiStream;
  if (n == "server") return Scenario::kServer;
  if (n == "offline") return Scenario::kOffline;
  return Status::InvalidArgument("unknown scenario '" + n + "' (allowed: single_stream, multi_stream, server, offline)");
}

namespace {

class SteadyTimer final : public BenchTimer {
 public:
  int64_t NowNs() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void SleepUntilNs(int64_t t) override {
    int64_t now = NowNs();
    if (t > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
  }
};

// Seeded sample order: every query draws its samples from the pool with this generator.
class SampleOrder {
 public:
  SampleOrder(uint64_t seed, uint64_t pool) : rng_(seed), pick_(0, pool == 0 ? 0 : static_cast<int64_t>(pool) - 1) {}
  std::vector<int64_t> Next(uint32_t n) {
    std::vector<int64_t> s(n);
    for (auto& i : s) i = pick_(rng_);
    return s;
  }

 private:
  std::mt19937_64 rng_;
  std::uniform_int_distribution<int64_t> pick_;
};

bool Cancelled(const ScenarioSettings& s) { return s.cancelled && s.cancelled(); }

std::string Fmt(const char* fmt, double a, double b = 0) {
  return fmt::sprintf(fmt, a, b);
}

// Sequential scenarios: the next query is issued when the previous one completes.
void RunSequential(SystemUnderTest& sut, BenchTimer& timer, const ScenarioSettings& s, ScenarioReport* r,
                   std::vector<double>* lat_ms) {
  SampleOrder order(s.seed, sut.sample_pool_size());
  for (uint32_t i = 0; i < s.warmup_queries && !Cancelled(s); ++i) sut.RunQuery(order.Next(s.samples_per_query));
  const int64_t start = timer.NowNs();
  const int64_t min_ns = static_cast<int64_t>(s.min_duration_s * 1e9);
  const int64_t max_ns = static_cast<int64_t>(s.max_duration_s * 1e9);
  const bool count_samples = s.scenario == Scenario::kOffline;
  while (true) {
    int64_t now = timer.NowNs();
    uint64_t done = count_samples ? r->samples : r->queries;
    if ((done >= s.min_queries && now - start >= min_ns) || now - start >= max_ns || Cancelled(s)) break;
    auto samples = order.Next(s.samples_per_query);
    int64_t t0 = timer.NowNs();
    sut.RunQuery(samples);
    int64_t t1 = timer.NowNs();
    lat_ms->push_back(static_cast<double>(t1 - t0) / 1e6);
    ++r->queries;
    r->samples += samples.size();
  }
  r->duration_s = static_cast<double>(timer.NowNs() - start) / 1e9;
}

// Server: a generator thread issues queries at Poisson arrival times without waiting for
// completions; this thread serves them in order. Latency runs from the scheduled arrival
// to completion, so queueing delay counts.
void RunServer(SystemUnderTest& sut, BenchTimer& timer, const ScenarioSettings& s, ScenarioReport* r,
               std::vector<double>* lat_ms) {
  SampleOrder warm(s.seed ^ 0x5eed, sut.sample_pool_size());
  for (uint32_t i = 0; i < s.warmup_queries && !Cancelled(s); ++i) sut.RunQuery(warm.Next(1));
  // Arrivals until both minimums are covered: at least min_queries, and the last arrival
  // at or after min_duration (capped by max_duration).
  const int64_t min_ns = static_cast<int64_t>(s.min_duration_s * 1e9);
  const int64_t max_ns = static_cast<int64_t>(s.max_duration_s * 1e9);
  uint64_t want = s.min_queries + static_cast<uint64_t>(s.target_qps * s.min_duration_s * 1.5) + 16;
  std::vector<int64_t> arrivals;
  uint64_t count = 0;
  while (true) {
    arrivals = PoissonArrivalsNs(s.target_qps, want, s.seed);
    count = 0;
    for (uint64_t i = 0; i < arrivals.size(); ++i) {
      if (arrivals[i] > max_ns) break;
      count = i + 1;
      if (count >= s.min_queries && arrivals[i] >= min_ns) break;
    }
    if (count < arrivals.size() || arrivals.back() > max_ns) break;
    want *= 2;
  }
  arrivals.resize(count);
  SampleOrder order(s.seed, sut.sample_pool_size());
  std::vector<std::vector<int64_t>> queries(count);
  for (auto& q : queries) q = order.Next(1);

  std::mutex mu;
  std::condition_variable cv;
  std::deque<uint64_t> ready;
  bool generator_done = false;
  const int64_t start = timer.NowNs();
  const int64_t deadline = start + static_cast<int64_t>(s.max_duration_s * 1e9);
  std::atomic<bool> cancelled{false};  // set by this thread, read by the generator
  std::thread generator([&] {
    for (uint64_t i = 0; i < count; ++i) {
      if (start + arrivals[i] > deadline || cancelled.load()) break;
      timer.SleepUntilNs(start + arrivals[i]);
      {
        std::lock_guard<std::mutex> lock(mu);
        ready.push_back(i);
      }
      cv.notify_one();
    }
    std::lock_guard<std::mutex> lock(mu);
    generator_done = true;
    cv.notify_one();
  });
  while (true) {
    uint64_t i;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !ready.empty() || generator_done; });
      if (ready.empty()) break;
      i = ready.front();
      ready.pop_front();
    }
    if (!cancelled.load() && Cancelled(s)) cancelled = true;
    if (cancelled.load() || timer.NowNs() > deadline) continue;  // drop what cannot start before the hard stop
    sut.RunQuery(queries[i]);
    lat_ms->push_back(static_cast<double>(timer.NowNs() - (start + arrivals[i])) / 1e6);
    ++r->queries;
    ++r->samples;
  }
  generator.join();
  r->duration_s = static_cast<double>(timer.NowNs() - start) / 1e9;
}

}  // namespace

std::unique_ptr<BenchTimer> NewSteadyTimer() { return std::make_unique<SteadyTimer>(); }

EarlyStopping EarlyStoppingEstimate(const std::vector<double>& sorted_ms, double p, double confidence) {
  EarlyStopping e;
  e.min_queries = static_cast<uint64_t>(std::ceil(std::log(1.0 - confidence) / std::log(p)));
  const uint64_t n = sorted_ms.size();
  if (n < e.min_queries) return e;
  // CDF of Binomial(n, p), accumulated in the log domain to survive large n.
  const double lp = std::log(p), lq = std::log1p(-p);
  const double lnf = std::lgamma(static_cast<double>(n) + 1);
  double cdf = 0;
  for (uint64_t k = 1; k <= n; ++k) {
    double j = static_cast<double>(k - 1);  // P[X = k - 1]
    cdf += std::exp(lnf - std::lgamma(j + 1) - std::lgamma(static_cast<double>(n) - j + 1) + j * lp +
                    (static_cast<double>(n) - j) * lq);
    if (cdf >= confidence) {
      e.enough = true;
      e.estimate_ms = sorted_ms[k - 1];
      return e;
    }
  }
  return e;
}

std::vector<int64_t> PoissonArrivalsNs(double qps, uint64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(qps);
  std::vector<int64_t> out(count);
  double t = 0;
  for (auto& a : out) {
    t += gap(rng);
    a = static_cast<int64_t>(t * 1e9);
  }
  return out;
}

double ScenarioReport::Metric() const {
  switch (settings.scenario) {
    case Scenario::kSingleStream: return latency.p90_ms;
    case Scenario::kMultiStream:
    case Scenario::kServer: return latency.p99_ms;
    case Scenario::kOffline: return samples_per_s;
  }
  return 0;
}

ScenarioReport RunScenario(SystemUnderTest& sut, BenchTimer& timer, const ScenarioSettings& s) {
  ScenarioReport r;
  r.settings = s;
  std::vector<double> lat;
  if (s.scenario == Scenario::kServer) RunServer(sut, timer, s, &r, &lat);
  else RunSequential(sut, timer, s, &r, &lat);
  std::sort(lat.begin(), lat.end());
  r.latency = SummarizeSorted(lat);
  if (r.duration_s > 0) {
    r.queries_per_s = static_cast<double>(r.queries) / r.duration_s;
    r.samples_per_s = static_cast<double>(r.samples) / r.duration_s;
  }
  if (r.duration_s + 1e-9 < s.min_duration_s)
    r.invalid_reasons.push_back(Fmt("run lasted %.3f s, below the minimum duration %.3f s", r.duration_s, s.min_duration_s));
  uint64_t counted = s.scenario == Scenario::kOffline ? r.samples : r.queries;
  if (counted < s.min_queries)
    r.invalid_reasons.push_back(std::to_string(counted) + (s.scenario == Scenario::kOffline ? " samples" : " queries") +
                                ", below the minimum " + std::to_string(s.min_queries));
  if (s.scenario == Scenario::kSingleStream) {
    r.early_stopping = EarlyStoppingEstimate(lat, 0.90);
    if (!r.early_stopping.enough)
      r.invalid_reasons.push_back("too few queries for early stopping to bound p90 at 99 % confidence (need " +
                                  std::to_string(r.early_stopping.min_queries) + ")");
  }
  if (s.scenario == Scenario::kServer) {
    if (r.latency.p99_ms > s.latency_bound_ms)
      r.invalid_reasons.push_back(Fmt("p99 latency %.3f ms exceeds the bound %.3f ms", r.latency.p99_ms, s.latency_bound_ms));
    if (r.queries_per_s < 0.9 * s.target_qps)
      r.invalid_reasons.push_back(Fmt("served %.1f QPS, below 90 %% of the target %.1f QPS", r.queries_per_s, s.target_qps));
  }
  if (Cancelled(s)) r.invalid_reasons.insert(r.invalid_reasons.begin(), "cancelled");
  r.valid = r.invalid_reasons.empty();
  return r;
}

ServerSearch SearchServerQps(SystemUnderTest& sut, BenchTimer& timer, ScenarioSettings settings, double lo, double hi,
                             int probes) {
  ServerSearch out;
  settings.scenario = Scenario::kServer;
  for (int i = 0; i < probes && hi > lo * 1.02 && !Cancelled(settings); ++i) {
    double qps = i == 0 ? lo : 0.5 * (lo + hi);
    settings.target_qps = qps;
    settings.seed += 1;
    ScenarioReport r = RunScenario(sut, timer, settings);
    out.probes.push_back(r);
    if (r.valid) {
      out.best_qps = qps;
      out.best = r;
      if (i > 0) lo = qps;
    } else {
      if (i == 0) break;  // even the floor misses the bound
      hi = qps;
    }
  }
  return out;
}

std::string ScenarioReport::Summary(const std::string& sut_name) const {
  std::string o;
  auto line = [&](const char* fmt, auto... v) {
    o += fmt::sprintf(fmt, v...);
    o += "\n";
  };
  line("================================================");
  line("prunelab benchmark summary");
  line("================================================");
  line("SUT name : %s", sut_name.c_str());
  line("Scenario : %s", ScenarioName(settings.scenario));
  line("Mode     : PerformanceOnly");
  switch (settings.scenario) {
    case Scenario::kSingleStream: line("90th percentile latency (ms) : %.4f", latency.p90_ms); break;
    case Scenario::kMultiStream: line("99th percentile latency (ms) : %.4f", latency.p99_ms); break;
    case Scenario::kServer: line("Scheduled samples per second : %.2f", settings.target_qps); break;
    case Scenario::kOffline: line("Samples per second           : %.2f", samples_per_s); break;
  }
  line("Result is : %s", valid ? "VALID" : "INVALID");
  for (const auto& why : invalid_reasons) line("  * %s", why.c_str());
  if (settings.scenario == Scenario::kSingleStream) {
    if (early_stopping.enough) line("Early stopping 90th percentile estimate (ms) : %.4f", early_stopping.estimate_ms);
    else line("Early stopping: not enough queries (need %llu)", static_cast<unsigned long long>(early_stopping.min_queries));
  }
  line("");
  line("================================================");
  line("Additional stats");
  line("================================================");
  line("Queries                : %llu", static_cast<unsigned long long>(queries));
  line("Samples                : %llu", static_cast<unsigned long long>(samples));
  line("Duration (s)           : %.3f", duration_s);
  line("Queries per second     : %.2f", queries_per_s);
  line("Samples per second     : %.2f", samples_per_s);
  line("Min latency (ms)       : %.4f", latency.min_ms);
  line("Mean latency (ms)      : %.4f", latency.mean_ms);
  line("50.00 percentile (ms)  : %.4f", latency.p50_ms);
  line("90.00 percentile (ms)  : %.4f", latency.p90_ms);
  line("95.00 percentile (ms)  : %.4f", latency.p95_ms);
  line("99.00 percentile (ms)  : %.4f", latency.p99_ms);
  line("99.90 percentile (ms)  : %.4f", latency.p999_ms);
  line("Max latency (ms)       : %.4f", latency.max_ms);
  if (peak_rss_bytes) line("Peak RSS (MiB)         : %.1f", peak_rss_bytes / 1048576.0);
  line("");
  line("================================================");
  line("Test parameters used");
  line("================================================");
  line("samples_per_query : %u", settings.samples_per_query);
  line("min_duration (s)  : %.3f", settings.min_duration_s);
  line("min_query_count   : %llu", static_cast<unsigned long long>(settings.min_queries));
  line("warmup_queries    : %u", settings.warmup_queries);
  line("sample order seed : %llu", static_cast<unsigned long long>(settings.seed));
  if (settings.scenario == Scenario::kServer) {
    line("target_qps        : %.2f", settings.target_qps);
    line("latency bound (ms): %.3f", settings.latency_bound_ms);
  }
  return o;
}

}  // namespace prunelab::worker
