// The benchmark harness against fake systems under test. Sequential scenarios run on a
// virtual clock advanced by the fake, so figures are checked exactly; the server scenario
// needs real threads and uses generous margins (no test asserts a real model's speed).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "worker/loadgen/loadgen.h"
#include "worker/loadgen/memory.h"

namespace prunelab::worker {
namespace {

class VirtualTimer final : public BenchTimer {
 public:
  int64_t NowNs() override { return now; }
  void SleepUntilNs(int64_t t) override { now = std::max(now, t); }
  int64_t now = 0;
};

// Latency of query i is pattern[i % size] ms of virtual time.
class PatternSut final : public SystemUnderTest {
 public:
  PatternSut(VirtualTimer& t, std::vector<double> pattern_ms) : timer_(t), pattern_(std::move(pattern_ms)) {}
  void RunQuery(const std::vector<int64_t>& samples) override {
    seen.push_back(samples);
    timer_.now += static_cast<int64_t>(pattern_[calls_++ % pattern_.size()] * 1e6 * per_sample_factor(samples));
  }
  uint64_t sample_pool_size() const override { return 1000; }
  double per_sample_factor(const std::vector<int64_t>& s) const { return scale_by_samples ? s.size() : 1.0; }
  bool scale_by_samples = false;
  std::vector<std::vector<int64_t>> seen;

 private:
  VirtualTimer& timer_;
  std::vector<double> pattern_;
  size_t calls_ = 0;
};

std::vector<double> OneToHundred() {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(LoadGenTest, SingleStreamReportsPercentilesOfTheKnownDistribution) {
  VirtualTimer timer;
  PatternSut sut(timer, OneToHundred());
  ScenarioSettings s;
  s.scenario = Scenario::kSingleStream;
  s.warmup_queries = 100;
  s.min_queries = 1000;
  s.min_duration_s = 1;
  auto r = RunScenario(sut, timer, s);
  EXPECT_TRUE(r.valid) << r.Summary("fake");
  EXPECT_EQ(r.queries, 1000u);  // 1000 queries take 50.5 s > min duration
  EXPECT_DOUBLE_EQ(r.latency.p50_ms, 50);
  EXPECT_DOUBLE_EQ(r.latency.p90_ms, 90);
  EXPECT_DOUBLE_EQ(r.latency.p95_ms, 95);
  EXPECT_DOUBLE_EQ(r.latency.p99_ms, 99);
  EXPECT_DOUBLE_EQ(r.latency.p999_ms, 100);
  EXPECT_DOUBLE_EQ(r.latency.mean_ms, 50.5);
  EXPECT_DOUBLE_EQ(r.Metric(), 90);
  EXPECT_NEAR(r.duration_s, 50.5, 1e-6);
  ASSERT_TRUE(r.early_stopping.enough);
  EXPECT_GE(r.early_stopping.estimate_ms, 90);   // an upper bound of p90...
  EXPECT_LE(r.early_stopping.estimate_ms, 93);   // ...and a tight one at N = 1000
  EXPECT_EQ(sut.seen.size(), 1100u);
  for (const auto& q : sut.seen) EXPECT_EQ(q.size(), 1u);
  EXPECT_NE(r.Summary("fake").find("Result is : VALID"), std::string::npos);
}

TEST(LoadGenTest, RunsUntilBothMinimumsAreMet) {
  VirtualTimer timer;
  PatternSut sut(timer, {1.0});
  ScenarioSettings s;
  s.warmup_queries = 0;
  s.min_queries = 10;
  s.min_duration_s = 0.5;  // 500 queries of 1 ms
  auto r = RunScenario(sut, timer, s);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.queries, 500u);
  EXPECT_NEAR(r.queries_per_s, 1000, 1e-6);
}

// A worker told to stop mid-benchmark: the run ends within one query, INVALID "cancelled".
TEST(LoadGenTest, CancelledRunStopsWithinOneQuery) {
  VirtualTimer timer;
  PatternSut sut(timer, {1.0});
  ScenarioSettings s;
  s.warmup_queries = 5;
  s.min_queries = 100000;
  s.min_duration_s = 600;  // would be 600 s of virtual time
  s.cancelled = [&] { return sut.seen.size() >= 42; };
  auto r = RunScenario(sut, timer, s);
  EXPECT_FALSE(r.valid);
  ASSERT_FALSE(r.invalid_reasons.empty());
  EXPECT_EQ(r.invalid_reasons.front(), "cancelled");
  EXPECT_EQ(sut.seen.size(), 42u) << "not one query after cancellation";
  EXPECT_LT(r.duration_s, 1.0);
}

TEST(LoadGenTest, InvalidWhenMinimumsAreNotMetWithReasons) {
  VirtualTimer timer;
  PatternSut sut(timer, {100.0});
  ScenarioSettings s;
  s.warmup_queries = 0;
  s.min_queries = 1000;
  s.min_duration_s = 600;
  s.max_duration_s = 2;  // cut after 2 s: 20 queries
  auto r = RunScenario(sut, timer, s);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.queries, 20u);
  ASSERT_EQ(r.invalid_reasons.size(), 3u);
  EXPECT_NE(r.invalid_reasons[0].find("minimum duration"), std::string::npos);
  EXPECT_NE(r.invalid_reasons[1].find("20 queries, below the minimum 1000"), std::string::npos);
  EXPECT_NE(r.invalid_reasons[2].find("early stopping"), std::string::npos);
  EXPECT_NE(r.Summary("fake").find("Result is : INVALID"), std::string::npos);
}

TEST(LoadGenTest, MultiStreamIssuesEightSamplesPerQueryAndReportsP99) {
  VirtualTimer timer;
  PatternSut sut(timer, OneToHundred());
  ScenarioSettings s;
  s.scenario = Scenario::kMultiStream;
  s.samples_per_query = 8;
  s.warmup_queries = 0;
  s.min_queries = 662;
  s.min_duration_s = 0;
  auto r = RunScenario(sut, timer, s);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.queries, 662u);
  EXPECT_EQ(r.samples, 662u * 8);
  for (const auto& q : sut.seen) EXPECT_EQ(q.size(), 8u);
  EXPECT_DOUBLE_EQ(r.Metric(), r.latency.p99_ms);
  EXPECT_GE(r.latency.p99_ms, 98);
}

TEST(LoadGenTest, OfflineReportsSamplesPerSecond) {
  VirtualTimer timer;
  PatternSut sut(timer, {0.01});  // 10 us per sample
  sut.scale_by_samples = true;
  ScenarioSettings s;
  s.scenario = Scenario::kOffline;
  s.samples_per_query = 256;
  s.warmup_queries = 1;
  s.min_queries = 24576;  // samples
  s.min_duration_s = 0;
  auto r = RunScenario(sut, timer, s);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.samples, 24576u);
  EXPECT_EQ(r.queries, 96u);
  EXPECT_NEAR(r.samples_per_s, 100000, 1);
  EXPECT_NEAR(r.Metric(), 100000, 1);
}

TEST(LoadGenTest, SampleOrderIsSeeded) {
  auto order = [](uint64_t seed) {
    VirtualTimer timer;
    PatternSut sut(timer, {1.0});
    ScenarioSettings s;
    s.min_queries = 50;
    s.min_duration_s = 0;
    s.warmup_queries = 0;
    s.seed = seed;
    RunScenario(sut, timer, s);
    return sut.seen;
  };
  EXPECT_EQ(order(1), order(1));
  EXPECT_NE(order(1), order(2));
}

TEST(EarlyStoppingTest, MatchesTheBinomialBound) {
  std::vector<double> v(30);
  std::iota(v.begin(), v.end(), 1.0);
  auto few = EarlyStoppingEstimate(v, 0.9);
  EXPECT_FALSE(few.enough);
  EXPECT_EQ(few.min_queries, 44u);  // 0.9^44 < 0.01 <= 0.9^43
  v.resize(44);
  std::iota(v.begin(), v.end(), 1.0);
  auto just = EarlyStoppingEstimate(v, 0.9);
  ASSERT_TRUE(just.enough);
  EXPECT_DOUBLE_EQ(just.estimate_ms, 44);  // only the maximum bounds p90 at N = 44
  // Large N: the bound converges to the percentile from above.
  std::vector<double> big(100000);
  std::iota(big.begin(), big.end(), 1.0);
  auto e = EarlyStoppingEstimate(big, 0.9);
  ASSERT_TRUE(e.enough);
  EXPECT_GT(e.estimate_ms, 90000);
  EXPECT_LT(e.estimate_ms, 90300);  // ~2.33 sigma = 221 ranks above
}

TEST(PoissonTest, RateAndInterArrivalStatistics) {
  const double qps = 1000;
  auto a = PoissonArrivalsNs(qps, 200000, 7);
  EXPECT_EQ(a, PoissonArrivalsNs(qps, 200000, 7));
  EXPECT_NE(a, PoissonArrivalsNs(qps, 200000, 8));
  std::vector<double> gaps;
  int64_t prev = 0;
  for (auto t : a) {
    ASSERT_GE(t, prev);
    gaps.push_back((t - prev) / 1e9);
    prev = t;
  }
  double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= gaps.size();
  EXPECT_NEAR(1.0 / mean, qps, qps * 0.01);
  EXPECT_NEAR(std::sqrt(var) / mean, 1.0, 0.02);  // exponential: coefficient of variation 1
  // Memorylessness: P(gap > 2/qps) = e^-2
  double tail = std::count_if(gaps.begin(), gaps.end(), [&](double g) { return g > 2 / qps; }) / double(gaps.size());
  EXPECT_NEAR(tail, std::exp(-2.0), 0.005);
}

// Busy-waits a fixed service time on the real clock.
class SpinSut final : public SystemUnderTest {
 public:
  explicit SpinSut(double service_ms) : service_ns_(static_cast<int64_t>(service_ms * 1e6)) {}
  void RunQuery(const std::vector<int64_t>&) override {
    auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(service_ns_);
    while (std::chrono::steady_clock::now() < end) {
    }
  }
  uint64_t sample_pool_size() const override { return 100; }

 private:
  int64_t service_ns_;
};

TEST(LoadGenServerTest, CancelledServerRunAndSearchStopEarly) {
  auto timer = NewSteadyTimer();
  SpinSut sut(0.1);
  ScenarioSettings s;
  s.scenario = Scenario::kServer;
  s.warmup_queries = 0;
  s.min_queries = 1000000;
  s.min_duration_s = 600;
  s.max_duration_s = 600;
  s.target_qps = 500;
  auto start = std::chrono::steady_clock::now();
  s.cancelled = [&] { return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(100); };
  auto r = RunScenario(sut, *timer, s);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.invalid_reasons.front(), "cancelled");
  EXPECT_LT(r.duration_s, 60.0) << "the 600 s run was cut short";
  auto search = SearchServerQps(sut, *timer, s, 100, 1000, 6);
  EXPECT_LE(search.probes.size(), 1u) << "no probe after cancellation";
}

TEST(LoadGenServerTest, LightLoadMeetsTheBoundAndOverloadDoesNot) {
  auto timer = NewSteadyTimer();
  SpinSut sut(0.2);
  ScenarioSettings s;
  s.scenario = Scenario::kServer;
  s.warmup_queries = 5;
  s.min_queries = 50;
  s.min_duration_s = 0.5;
  s.target_qps = 200;          // 4 % utilisation
  s.latency_bound_ms = 100;    // generous: a loaded CI machine still meets it
  auto light = RunScenario(sut, *timer, s);
  EXPECT_TRUE(light.valid) << light.Summary("spin");
  EXPECT_GE(light.queries, 100u);
  EXPECT_GE(light.latency.min_ms, 0.2);

  SpinSut slow(5.0);            // capacity 200 QPS
  s.target_qps = 2000;          // 10x over capacity: the queue grows without bound
  s.max_duration_s = 1.0;
  s.latency_bound_ms = 20;
  auto over = RunScenario(slow, *timer, s);
  EXPECT_FALSE(over.valid);
  bool bound_reason = false;
  for (const auto& w : over.invalid_reasons) bound_reason |= w.find("exceeds the bound") != std::string::npos;
  EXPECT_TRUE(bound_reason) << over.Summary("slow");
}

TEST(LoadGenServerTest, SearchFindsAQpsThatMeetsTheBoundBelowCapacity) {
  auto timer = NewSteadyTimer();
  SpinSut sut(1.0);  // capacity 1000 QPS
  ScenarioSettings s;
  s.warmup_queries = 2;
  s.min_queries = 20;
  s.min_duration_s = 0.3;
  s.max_duration_s = 2;
  s.latency_bound_ms = 50;
  auto found = SearchServerQps(sut, *timer, s, 20, 4000, 6);
  ASSERT_FALSE(found.probes.empty());
  EXPECT_GE(found.best_qps, 20);
  EXPECT_LE(found.best_qps, 1100) << "cannot sustain more than capacity";
  EXPECT_TRUE(found.best.valid);
}

TEST(MemoryTest, PeakRssSeesADeliberateAllocation) {
  ResetPeakRss();
  uint64_t before = PeakRssBytes();
  ASSERT_GT(before, 0u);
  {
    std::vector<char> block(200u << 20);
    std::memset(block.data(), 1, block.size());  // touch every page
    EXPECT_GE(CurrentRssBytes(), before + (190u << 20));
  }
  EXPECT_GE(PeakRssBytes(), before + (190u << 20));
}

}  // namespace
}  // namespace prunelab::worker
