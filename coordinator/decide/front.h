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

#include "common/spec/objectives.h"

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

}  // namespace prunelab::coordinator
