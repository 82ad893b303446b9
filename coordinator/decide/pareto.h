// Pareto selection over trial results and the table `prunelab pareto` prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/base/types.h"
#include "common/codec/records.h"

namespace prunelab::coordinator {

struct Point2 {
  double maximize;  // e.g. accuracy
  double minimize;  // e.g. p90 latency
};

// Indices of the non-dominated points, ordered by ascending `minimize`. Sort-based,
// O(n log n). Exact duplicates: only the first (lowest index) is kept, so the output is
// deterministic.
std::vector<size_t> ParetoFront(const std::vector<Point2>& points);

struct TargetFront {
  std::string target;
  const TrialResult* baseline = nullptr;   // dense reference measured on this target
  std::vector<const TrialResult*> front;   // accuracy (max) vs compared p90 latency (min)
  size_t ok_variants = 0;                  // successful results considered (incl. baseline)
  bool by_confirmation_round = false;      // the front compares the round's ratios
  size_t failed = 0;
};

// How much a variant's single-stream latencies are scaled so that rows of one target compare
// figures measured side by side: (the baseline's p90 on the target / the variant's median
// interleaved A/B speedup) / the variant's own p90. 1 where there is nothing to scale by (the
// baseline itself, no A/B rounds, no baseline on the target). See docs/MEASUREMENT.md.
double LatencyScale(const TrialResult& row, const TrialResult* baseline);
// The target's confirmation round among `results` when one ran (a confirm row, ok, not
// skipped, with models); nullopt otherwise.
std::optional<ConfirmationRound> ConfirmationOf(const std::vector<TrialResult>& results, const std::string& target);
// The scale that makes a row's single-stream latencies comparable with every other row of its
// target, the one rule the front, the tables and the decision use: with a confirmation round,
// the baseline's median p90 over the round (the reference) times the row's median ratio to
// the baseline in the round, or, for a row that was not in it, its A/B-scaled figure brought
// to that reference; without one, LatencyScale (A/B only).
double ComparedLatencyScale(const TrialResult& row, const TrialResult* baseline, const ConfirmationRound* round);
// The row with every single-stream latency field multiplied by `scale`.
TrialResult ScaledSingleStream(const TrialResult& row, double scale);

// One front per target, targets in first-seen order. Only ok results of evaluate/prune
// tasks take part; pointers refer into `results`.
std::vector<TargetFront> FrontsByTarget(const std::vector<TrialResult>& results);

// "l1 channel 50%", "dense baseline", "... iter r2/4", "... only conv1": a result's variant in words.
std::string DescribeVariant(const TrialResult& r);

// Human-readable table; `only_target` filters when non-empty.
std::string FormatParetoTable(const std::vector<TrialResult>& results, const std::string& only_target);
// One-line-per-result table of everything, including failures with their reasons.
std::string FormatResultsTable(const std::vector<TrialResult>& results);

}  // namespace prunelab::coordinator
