// `prunelab report ID -o DIR`: a self-contained report.html (inline SVG and CSS, nothing
// fetched), report.md, results.json and results.csv, and a model card per front variant
// (cards/TRIAL.md / .json), from a sweep's results and the decisions over them.
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "coordinator/decide/decision.h"

namespace prunelab::coordinator {

struct ReportInput {
  std::string sweep_id;
  std::string sweep_name;
  const std::vector<TrialResult>* results = nullptr;
  DecisionOptions options;
};

// Writes the files into dir (created if needed); returns the paths written.
StatusOr<std::vector<std::string>> WriteReport(const std::string& dir, const ReportInput& in);

// results.csv text: one row per result, the numeric fields objectives and gates use.
std::string ResultsCsv(const std::vector<TrialResult>& results);

}  // namespace prunelab::coordinator
