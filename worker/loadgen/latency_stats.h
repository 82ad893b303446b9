// Latency statistics (no LibTorch). Percentiles use the nearest-rank definition that
// MLPerf LoadGen reports: the smallest sample with at least p % of samples <= it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace prunelab::worker {

struct LatencySummary {
  uint64_t count = 0;
  double mean_ms = 0, min_ms = 0, max_ms = 0;
  double p50_ms = 0, p90_ms = 0, p95_ms = 0, p99_ms = 0, p999_ms = 0;
};

// sorted_ms must be ascending and non-empty; p in (0, 100].
inline double NearestRankPercentile(const std::vector<double>& sorted_ms, double p) {
  size_t n = sorted_ms.size();
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(n) - 1e-9));
  rank = std::clamp<size_t>(rank, 1, n);
  return sorted_ms[rank - 1];
}

inline LatencySummary SummarizeSorted(const std::vector<double>& ms) {
  LatencySummary s;
  if (ms.empty()) return s;
  s.count = ms.size();
  s.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  s.min_ms = ms.front();
  s.max_ms = ms.back();
  s.p50_ms = NearestRankPercentile(ms, 50);
  s.p90_ms = NearestRankPercentile(ms, 90);
  s.p95_ms = NearestRankPercentile(ms, 95);
  s.p99_ms = NearestRankPercentile(ms, 99);
  s.p999_ms = NearestRankPercentile(ms, 99.9);
  return s;
}

inline LatencySummary Summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return SummarizeSorted(ms);
}

}  // namespace prunelab::worker
