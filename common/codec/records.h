// JSON forms of the plain structs: what the store keeps on disk and what `--json` prints.
// Field names are the public contract of `prunelab results --json`.
#pragma once

#include <nlohmann/json.hpp>

#include "common/base/status.h"
#include "common/base/types.h"

namespace prunelab {

nlohmann::json ToJson(const HardwareFingerprint& h);
nlohmann::json ToJson(const TrialConfig& c);
TrialConfig TrialConfigFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const Task& t);
nlohmann::json ToJson(const TrialResult& r);
nlohmann::json ToJson(const SweepStatus& s);
nlohmann::json ToJson(const WorkerStatus& w);

StatusOr<Task> TaskFromJson(const nlohmann::json& j);
StatusOr<TrialResult> ResultFromJson(const nlohmann::json& j);

// A result row describing `task` (ids, target, kind, model, trial axes, seed); the
// measured fields are left for the caller.
TrialResult ResultFor(const Task& task);
// A variant's row for one target: what its prune stage measured (accuracy, sizes, layers, the
// variant) with what the benchmark on that target measured (every benchmark figure, the
// target, the worker and its hardware). The one place that knows which fields are which.
TrialResult MergeStageAndBenchmark(const TrialResult& stage, const TrialResult& bench);

// A confirmation round (confirm@TARGET): every model timed single-stream in each round, in
// rotating order, on one worker; the worker writes it into its row's benchmark_json
// ({"confirmation": ...}) and the decision reads it back. Figures are relative to the
// baseline measured in the same round, so the moment a round ran does not move them.
struct ConfirmedModel {
  std::string task_id;           // the row it confirms ("base@T" for the baseline)
  std::string form;              // execution form timed
  std::vector<double> p90_ms;    // per round
  std::vector<double> ratio;     // per round: p90_ms / the baseline's p90 in that round
  double median_p90_ms = 0;
  double median_ratio = 0;       // < 1: faster than dense
  double min_ratio = 0;
  double max_ratio = 0;
};
struct ConfirmationRound {
  uint32_t rounds = 0;
  uint32_t threads = 0;                 // intra-op threads of every timing
  std::string skipped;                  // set when no round ran, with why
  std::string verdict = "clean";        // interference verdict over the whole round
  std::vector<std::string> invalid_reasons;
  std::vector<ConfirmedModel> models;   // the baseline first
  // Two candidates are within noise of each other when their ratio ranges over the rounds
  // overlap.
  static bool WithinNoise(const ConfirmedModel& a, const ConfirmedModel& b) {
    return a.min_ratio <= b.max_ratio && b.min_ratio <= a.max_ratio;
  }
  const ConfirmedModel* Find(const std::string& task_id) const;
};
// Fills ratio and the medians from p90_ms (models[0] is the baseline).
void SummarizeConfirmation(ConfirmationRound* round);
nlohmann::json ToJson(const ConfirmationRound& round);
// From a confirm row's benchmark_json; NotFound when it has no "confirmation".
StatusOr<ConfirmationRound> ConfirmationFromJson(const std::string& benchmark_json);

// Whether a row is one of a sweep's result rows as tables, fronts and reports list them: not
// the baseline's training, not a confirmation round that ran (its figures appear beside the
// rows it confirms; a failed one is listed with its reason).
inline bool IsTableRow(const TrialResult& r) {
  return r.kind != TaskKind::kTrainBaseline && !(r.kind == TaskKind::kConfirmTarget && r.ok);
}

// Parses JSON text without throwing.
StatusOr<nlohmann::json> ParseJson(const std::string& text);
// Serializes for output (CLI --json, the HTTP API): never throws; a string that is not valid
// UTF-8 is written with U+FFFD in place of the bad bytes.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace prunelab
