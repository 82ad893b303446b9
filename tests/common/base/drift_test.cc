#include "common/base/drift.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace prunelab {
namespace {

TEST(DriftTest, DecileEdgesSplitTheReferenceIntoEqualBins) {
  std::vector<double> v;
  for (int i = 1; i <= 1000; ++i) v.push_back(i);
  auto edges = QuantileEdges(v, 10);
  ASSERT_EQ(edges.size(), 9u);
  EXPECT_DOUBLE_EQ(edges[0], 100);
  EXPECT_DOUBLE_EQ(edges[8], 900);
  auto counts = BinCounts(v, edges);
  ASSERT_EQ(counts.size(), 10u);
  for (auto c : counts) EXPECT_EQ(c, 100u);
  EXPECT_DOUBLE_EQ(PopulationStabilityIndex(counts, counts), 0.0);
}

TEST(DriftTest, ManyEqualValuesGiveFewerBinsNotEmptyOnes) {
  std::vector<double> v(900, 0.0);
  for (int i = 0; i < 100; ++i) v.push_back(1 + i);
  auto edges = QuantileEdges(v, 10);
  ASSERT_FALSE(edges.empty());
  EXPECT_DOUBLE_EQ(edges[0], 0.0);
  for (size_t i = 1; i < edges.size(); ++i) EXPECT_GT(edges[i], edges[i - 1]);
  auto counts = BinCounts(v, edges);
  EXPECT_EQ(counts[0], 900u);
  for (auto c : counts) EXPECT_GT(c, 0u);
  EXPECT_TRUE(QuantileEdges({}, 10).empty());
  EXPECT_TRUE(QuantileEdges(std::vector<double>(50, 3.0), 10).empty()) << "a constant feature has one bin";
}

TEST(DriftTest, PsiMatchesTheFormulaAndGrowsWithTheShift) {
  // Two bins: 50/50 against 70/30 -> (0.7-0.5) ln(0.7/0.5) + (0.3-0.5) ln(0.3/0.5).
  const double expected = 0.2 * std::log(1.4) + (-0.2) * std::log(0.6);
  EXPECT_NEAR(PopulationStabilityIndex({50, 50}, {70, 30}), expected, 1e-12);
  EXPECT_DOUBLE_EQ(PopulationStabilityIndex({50, 50}, {70, 30, 1}), 0.0) << "different bins: not comparable";
  EXPECT_DOUBLE_EQ(PopulationStabilityIndex({0, 0}, {1, 2}), 0.0);
  // Samples of the reference distribution stay under 0.1; a shifted mean goes past 0.25.
  std::mt19937 rng(7);
  std::normal_distribution<double> ref(0, 1), same(0, 1), moved(0.8, 1);
  std::vector<double> r, s, m;
  for (int i = 0; i < 5000; ++i) r.push_back(ref(rng)), s.push_back(same(rng)), m.push_back(moved(rng));
  auto edges = QuantileEdges(r);
  auto rc = BinCounts(r, edges);
  EXPECT_LT(PopulationStabilityIndex(rc, BinCounts(s, edges)), 0.1);
  EXPECT_GT(PopulationStabilityIndex(rc, BinCounts(m, edges)), 0.25);
  // An empty bin stays finite.
  EXPECT_TRUE(std::isfinite(PopulationStabilityIndex({10, 10, 10}, {30, 0, 0})));
}

}  // namespace
}  // namespace prunelab
