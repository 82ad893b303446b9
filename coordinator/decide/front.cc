#include "coordinator/decide/front.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace prunelab::coordinator {
namespace {

bool Dominates(const double* a, const double* b, size_t d) {
  bool better = false;
  for (size_t k = 0; k < d; ++k) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) better = true;
  }
  return better;
}

// Indexes sorted lexicographically by all objectives, then by index.
std::vector<size_t> LexOrder(const PointSet& p, const std::vector<size_t>& subset) {
  std::vector<size_t> idx = subset;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    const double *x = p.row(a), *y = p.row(b);
    for (size_t k = 0; k < p.dims; ++k)
      if (x[k] != y[k]) return x[k] < y[k];
    return a < b;
  });
  return idx;
}

bool Same(const double* a, const double* b, size_t d) {
  for (size_t k = 0; k < d; ++k)
    if (a[k] != b[k]) return false;
  return true;
}

// 2 objectives: in lexicographic order a point is on the front iff its second value is
// below every earlier point's, or it duplicates the last front point.
std::vector<size_t> Front2(const PointSet& p, const std::vector<size_t>& order) {
  std::vector<size_t> front;
  double best = 0;
  for (size_t i : order) {
    const double* x = p.row(i);
    if (front.empty() || x[1] < best || Same(x, p.row(front.back()), 2)) {
      if (front.empty() || x[1] < best) best = x[1];
      front.push_back(i);
    }
  }
  return front;
}

// 3 objectives: in lexicographic order, a point is dominated iff an earlier front point
// has (y <= y', z <= z') (and is not its duplicate). A staircase over (y -> min z) answers
// "min z among front points with y <= Y" in O(log n).
std::vector<size_t> Front3(const PointSet& p, const std::vector<size_t>& order) {
  std::vector<size_t> front;
  std::map<double, double> stair;  // y -> z, z strictly decreasing as y increases
  for (size_t pos = 0; pos < order.size(); ++pos) {
    size_t i = order[pos];
    const double* x = p.row(i);
    if (!front.empty() && Same(x, p.row(front.back()), 3)) {
      front.push_back(i);
      continue;
    }
    auto it = stair.upper_bound(x[1]);
    bool dominated = it != stair.begin() && std::prev(it)->second <= x[2];
    if (dominated) continue;
    front.push_back(i);
    // Insert (y, z) and drop steps it makes redundant (y' >= y with z' >= z).
    auto ins = stair.insert_or_assign(x[1], x[2]).first;
    auto next = std::next(ins);
    while (next != stair.end() && next->second >= x[2]) next = stair.erase(next);
  }
  return front;
}

// Kung et al.: split the lexicographically sorted set, front of each half, keep the bottom
// half's points that no top-half front point dominates.
std::vector<size_t> Kung(const PointSet& p, const std::vector<size_t>& order, size_t lo, size_t hi) {
  if (hi - lo == 1) return {order[lo]};
  size_t mid = lo + (hi - lo) / 2;
  std::vector<size_t> top = Kung(p, order, lo, mid);
  std::vector<size_t> bottom = Kung(p, order, mid, hi);
  for (size_t b : bottom) {
    bool dominated = false;
    for (size_t t : top)
      if (Dominates(p.row(t), p.row(b), p.dims)) {
        dominated = true;
        break;
      }
    if (!dominated) top.push_back(b);
  }
  return top;
}

std::vector<size_t> FrontOf(const PointSet& p, const std::vector<size_t>& subset) {
  if (subset.empty()) return {};
  std::vector<size_t> order = LexOrder(p, subset);
  std::vector<size_t> front;
  if (p.dims == 1) {
    for (size_t i : order)
      if (p.row(i)[0] == p.row(order[0])[0]) front.push_back(i);
  } else if (p.dims == 2) {
    front = Front2(p, order);
  } else if (p.dims == 3) {
    front = Front3(p, order);
  } else {
    front = Kung(p, order, 0, order.size());
  }
  std::vector<size_t> sorted = LexOrder(p, front);
  return sorted;
}

}  // namespace

std::vector<size_t> NondominatedFront(const PointSet& points) {
  std::vector<size_t> all(points.size());
  std::iota(all.begin(), all.end(), 0);
  return FrontOf(points, all);
}

std::vector<int> ParetoRanks(const PointSet& points, int max_rank) {
  std::vector<int> rank(points.size(), 0);
  std::vector<size_t> left(points.size());
  std::iota(left.begin(), left.end(), 0);
  for (int r = 1; !left.empty(); ++r) {
    if (max_rank > 0 && r > max_rank) {
      for (size_t i : left) rank[i] = max_rank + 1;
      break;
    }
    std::vector<size_t> front = FrontOf(points, left);
    std::vector<char> on(points.size(), 0);
    for (size_t i : front) {
      rank[i] = r;
      on[i] = 1;
    }
    std::vector<size_t> rest;
    for (size_t i : left)
      if (!on[i]) rest.push_back(i);
    left.swap(rest);
  }
  return rank;
}

std::vector<size_t> BruteForceFront(const PointSet& points) {
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j)
      dominated = j != i && Dominates(points.row(j), points.row(i), points.dims);
    if (!dominated) front.push_back(i);
  }
  return LexOrder(points, front);
}

}  // namespace prunelab::coordinator
