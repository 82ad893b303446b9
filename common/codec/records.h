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
// Whether a task's outcome is a result row of its sweep: baseline evaluations, variant
// benchmarks and sensitivity trials. Baseline training and the pruning step of a benchmarked
// variant are stages (their outcome lives in the rows that follow from them).
bool ProducesResultRow(const Task& task);

// Parses JSON text without throwing.
StatusOr<nlohmann::json> ParseJson(const std::string& text);
// Serializes for output (CLI --json, the HTTP API): never throws; a string that is not valid
// UTF-8 is written with U+FFFD in place of the bad bytes.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace prunelab
