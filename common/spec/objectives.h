// Objectives for choosing variants: numeric result fields with a direction, as written in a
// spec (`report.objectives`) or on the command line ("accuracy:max,latency_p90_ms:min").
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/base/types.h"

namespace prunelab {

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
// Default: the task's quality — accuracy (max), or perplexity (min) for rows whose metric is
// perplexity (language modeling) — then p90 single-stream latency (min) and model memory
// (min): the weights' size, model_bytes (a worker's peak RSS is mostly the LibTorch runtime
// and does not tell variants apart).
std::vector<Objective> DefaultObjectives(const std::string& metric = "accuracy");

// The task's quality of a row, one place for every table, front and gate:
// ScoredByPerplexity: the row is a language model's (metric "perplexity", lower is better).
bool ScoredByPerplexity(const TrialResult& r);
// Larger is better: accuracy, or minus perplexity.
double QualityScore(const TrialResult& r);
// What the variant lost against `base`: accuracy points, or the perplexity increase in
// percent (1.15x = 15).
double QualityLoss(const TrialResult& r, const TrialResult& base);
// "87.30 %" or "perplexity 41.27".
std::string QualityText(const TrialResult& r);
// The field's value in a result; false when the field is unknown.
bool ObjectiveValue(const TrialResult& r, const std::string& field, double* out);

}  // namespace prunelab
