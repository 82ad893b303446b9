// Choosing what to deploy: per hardware target, every benchmarked variant ranked by Pareto
// fronts over the chosen objectives, checked against release gates relative to the dense
// baseline measured on that target, and one recommendation by a documented rule.
//
// Rules (report.recommend): fastest — the passing variant with the lowest value of the first
// latency objective (default latency_p90_ms), ties to higher accuracy; most_accurate — the
// passing variant with the highest accuracy, ties to lower latency; knee — among the passing
// variants' own front, the point closest (Euclidean, each objective scaled to [0, 1] over
// that front) to the ideal point. The dense baseline is a candidate like any variant.
//
// A target's confirmation round, when it ran, decides between its candidates: their latencies
// are the baseline's p90 times their median ratio to the baseline in the round, and the
// fastest rule picks among them; candidates whose ratio ranges overlap the fastest's are
// within noise of it, and then the fewest bytes wins, then the smaller accuracy drop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/codec/records.h"
#include "common/spec/objectives.h"
#include "common/spec/spec.h"
#include "coordinator/decide/pareto.h"  // DescribeVariant

namespace prunelab::coordinator {

struct Verdict {
  // The row as compared: single-stream latencies scaled to the baseline's on this target by
  // the variant's interleaved A/B speedup (pareto.h LatencyScale); owned by the decision.
  const TrialResult* row = nullptr;
  double measured_p90_ms = 0;         // the variant's own benchmark run's p90
  int rank = 0;                       // 1 = on the front of this target
  bool pass = true;
  std::vector<std::string> reasons;   // each failed gate with its numbers
  double accuracy_drop_pt = 0;        // vs the dense baseline on the target (classification)
  double quality_loss = 0;            // QualityLoss: accuracy points, or perplexity increase in %
  double memory_fraction = 0;         // model_bytes / dense model_bytes
  // Its figures in the target's confirmation round (null: not in it, or no round).
  const ConfirmedModel* confirmed = nullptr;
};

struct TargetDecision {
  std::string target;
  const TrialResult* baseline = nullptr;
  std::vector<Verdict> variants;      // benchmarked ok rows (baseline included), by rank then first objective
  const TrialResult* recommended = nullptr;
  std::string why;                    // the rule applied and the numbers behind it
  std::vector<std::string> notes;     // e.g. no variant meets the memory gate
  size_t failed = 0;                  // failed rows on this target
  // The compared copies `variants` and `recommended` point into (shared: a decision may be copied).
  std::vector<std::shared_ptr<const TrialResult>> compared;
  // The target's confirmation round (confirm@TARGET), when it ran; Verdict::confirmed points into it.
  std::shared_ptr<const ConfirmationRound> confirmation;
  std::string confirmation_worker;    // who ran it
  std::vector<std::string> within_noise;  // candidates tied with the recommendation in that round
};

struct DecisionOptions {
  // Unless the spec names objectives, the task's defaults: Decide takes perplexity's for
  // language-model rows (ForRows).
  std::vector<Objective> objectives = DefaultObjectives();
  bool default_objectives = true;
  GateSpec gates;
  std::string rule = "fastest";
};

// Options from a spec's report section (objectives, gates, rule).
StatusOr<DecisionOptions> OptionsFromSpec(const ReportSpec& report);

// `options` with the default objectives of the rows' task (perplexity for language models);
// unchanged when the spec named objectives.
DecisionOptions ForRows(const DecisionOptions& options, const std::vector<TrialResult>& results);

// Targets in first-seen order; pointers refer into `results`.
std::vector<TargetDecision> Decide(const std::vector<TrialResult>& results, const DecisionOptions& options);

// The models a target's confirmation round times again: its baseline first, then the best
// `best_n` variants passing the gates (by the rule's latency objective), then the rest of the
// front by latency, at most kMaxConfirmCandidates in all; only rows with an artifact.
std::vector<const TrialResult*> ConfirmationCandidates(const TargetDecision& d, const DecisionOptions& options,
                                                       size_t best_n);
std::string FormatDecisions(const std::vector<TargetDecision>& decisions, const DecisionOptions& options);
nlohmann::json DecisionsJson(const std::vector<TargetDecision>& decisions, const DecisionOptions& options);

}  // namespace prunelab::coordinator
