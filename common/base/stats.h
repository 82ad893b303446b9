// Small order statistics shared by the product and the bench programs (one definition, so a
// bench figure and a result row computed from the same samples agree).
#pragma once

#include <algorithm>
#include <vector>

namespace prunelab {

// The median: the middle value, or the mean of the two middle values of an even count; 0 for
// no values.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace prunelab
