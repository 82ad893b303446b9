// Multi-objective Pareto selection: non-dominated sorting of points with any number of
// objectives, each minimized or maximized. Sort-based: O(n log n) for 2 and 3 objectives
// (sort + scan; sort + staircase), Kung's divide and conquer beyond. Ranks: 1 = the front,
// 2 = the front once rank 1 is removed, and so on.
//
// Ties: a point dominates another when it is at least as good in every objective and better
// in one. Exact duplicates therefore never dominate each other: they share a rank, and any
// ordering of a front is by the first objective, then by index, so results are deterministic.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/types.h"

namespace prunelab::coordinator {

// Points as rows of `dims` values, every objective already turned into "smaller is better".
struct PointSet {
  size_t dims = 0;
  std::vector<double> values;  // row-major, size() == n * dims
  size_t size() const { return dims ? values.size() / dims : 0; }
  const double* row(size_t i) const { return values.data() + i * dims; }
};

// Indexes of the non-dominated points, ascending by first objective then index.
std::vector<size_t> NondominatedFront(const PointSet& points);
// Rank of every point (1-based), up to max_rank (points beyond get max_rank + 1); 0 = all.
std::vector<int> ParetoRanks(const PointSet& points, int max_rank = 0);
// The O(n^2) reference the tests and the benchmark compare against.
std::vector<size_t> BruteForceFront(const PointSet& points);

// One objective of a result: a numeric field and its direction.
struct Objective {
  std::string field;  // e.g. accuracy, latency_p90_ms, peak_rss_bytes
  bool maximize = false;
  std::string Label() const { return field + (maximize ? " (max)" : " (min)"); }
};
// "accuracy:max,latency_p90_ms:min" -> objectives; InvalidArgument names the bad part and
// lists the fields and directions allowed.
StatusOr<std::vector<Objective>> ParseObjectives(const std::string& text);
const std::vector<std::string>& ObjectiveFields();
// Default: accuracy (max), p90 single-stream latency (min), peak memory (min).
std::vector<Objective> DefaultObjectives();
// The field's value in a result; false when the field is unknown.
bool ObjectiveValue(const TrialResult& r, const std::string& field, double* out);

}  // namespace prunelab::coordinator
