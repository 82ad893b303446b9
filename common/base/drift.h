// Drift measures shared by workers (which count) and the coordinator (which compares):
// quantile bin edges made from reference data, histograms over fixed edges, and the
// population stability index. No dependencies beyond the standard library.
#pragma once

#include <cstdint>
#include <vector>

namespace prunelab {

// Interior edges of `bins` equal-population bins of `values` (deciles for 10), duplicates
// removed (a feature with many equal values gets fewer bins). Empty values: no edges.
std::vector<double> QuantileEdges(std::vector<double> values, int bins = 10);

// Counts per bin for edges e1 < ... < ek: (-inf, e1], (e1, e2], ..., (ek, +inf): k + 1 bins.
std::vector<uint64_t> BinCounts(const std::vector<double>& values, const std::vector<double>& edges);

// Population stability index of `actual` against `expected` (counts over the same bins):
// sum over bins of (a - e) * ln(a / e) with a, e the bins' fractions, each floored at
// 1e-4 so an empty bin stays finite. 0 when either side is empty or the bins differ in number.
// Common reading: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 significant.
double PopulationStabilityIndex(const std::vector<uint64_t>& expected, const std::vector<uint64_t>& actual);

}  // namespace prunelab
