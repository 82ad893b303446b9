#include "common/base/drift.h"

#include <algorithm>
#include <cmath>

namespace prunelab {

std::vector<double> QuantileEdges(std::vector<double> values, int bins) {
  std::vector<double> edges;
  if (values.empty() || bins < 2) return edges;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  for (int i = 1; i < bins; ++i) {
    // The value below which i/bins of the data lie (nearest rank).
    size_t rank = static_cast<size_t>(std::ceil(static_cast<double>(i) * n / bins));
    double e = values[std::min(n - 1, rank == 0 ? 0 : rank - 1)];
    if (edges.empty() || e > edges.back()) edges.push_back(e);
  }
  // An edge at the maximum leaves the last bin empty by construction: drop it.
  while (!edges.empty() && edges.back() >= values.back()) edges.pop_back();
  return edges;
}

std::vector<uint64_t> BinCounts(const std::vector<double>& values, const std::vector<double>& edges) {
  std::vector<uint64_t> counts(edges.size() + 1, 0);
  for (double v : values) {
    // First edge >= v: v falls in the bin that edge closes.
    size_t bin = static_cast<size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin());
    ++counts[bin];
  }
  return counts;
}

double PopulationStabilityIndex(const std::vector<uint64_t>& expected, const std::vector<uint64_t>& actual) {
  if (expected.size() != actual.size() || expected.empty()) return 0;
  double te = 0, ta = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    te += static_cast<double>(expected[i]);
    ta += static_cast<double>(actual[i]);
  }
  if (te <= 0 || ta <= 0) return 0;
  constexpr double kFloor = 1e-4;
  double psi = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = std::max(kFloor, expected[i] / te), a = std::max(kFloor, actual[i] / ta);
    psi += (a - e) * std::log(a / e);
  }
  return psi;
}

}  // namespace prunelab
