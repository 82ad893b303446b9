// LatencyHistogram: lock-free fixed buckets (geometric, x1.25 from 1 us to ~100 s), safe to
// observe from one thread while another reads. Quantiles interpolate within a bucket, so
// they are within one bucket width (25 %) of the exact value. Feeds the dispatch-latency
// figures of bench/dispatch_scale and the coordinator's metrics.
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>

namespace prunelab {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 84;  // 1e-6 * 1.25^83 ~ 108 s
  static double UpperBound(int i) { return 1e-6 * std::pow(1.25, i); }

  void Observe(double seconds) {
    int i = seconds <= 1e-6 ? 0 : static_cast<int>(std::ceil(std::log(seconds / 1e-6) / std::log(1.25)));
    if (i >= kBuckets) i = kBuckets - 1;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const { return sum_us_.load(std::memory_order_relaxed) * 1e-6; }
  uint64_t bucket(int i) const { return counts_[i].load(std::memory_order_relaxed); }

  // q in [0, 1]; 0 when empty.
  double Quantile(double q) const {
    uint64_t n = count();
    if (n == 0) return 0;
    double rank = q * static_cast<double>(n);
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      uint64_t c = bucket(i);
      if (c > 0 && static_cast<double>(seen + c) >= rank) {
        double lo = i == 0 ? 0 : UpperBound(i - 1), hi = UpperBound(i);
        return lo + (hi - lo) * std::max(0.0, rank - static_cast<double>(seen)) / static_cast<double>(c);
      }
      seen += c;
    }
    return UpperBound(kBuckets - 1);
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

}  // namespace prunelab
