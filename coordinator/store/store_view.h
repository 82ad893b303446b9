// Read-only views over a Store's records, shared by the coordinator and by CLI commands
// that read a data directory directly (`prunelab results --data-dir`).
#pragma once

#include <string>
#include <vector>

#include "common/base/types.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

// Key layout (all values JSON unless noted):
//   sweep/<id>            {id, name, spec_yaml, created_ms, order, priority, paused, cancelled}
//   task/<id>/<task>      {task, state, worker, slot, attempt_errors}
//   run/<id>/<task>       {attempt, worker, slot} while a task is assigned (small, written per
//                         assignment; the task record is rewritten only when its state settles)
//   stage/<id>/<task>     TrialResult of a pruning stage whose rows are its variant's benchmarks
//   result/<id>/<task>    TrialResult (see common/records.h)
//   artifact/<hash>       raw bytes (TorchScript module)
//   baseline/<key>        artifact hash of the trained dense baseline
//   meta/sweep_seq        next sweep sequence number
inline std::string SweepKey(const std::string& id) { return "sweep/" + id; }
inline std::string TaskKey(const std::string& id, const std::string& task) { return "task/" + id + "/" + task; }
inline std::string RunKey(const std::string& id, const std::string& task) { return "run/" + id + "/" + task; }
inline std::string StageKey(const std::string& id, const std::string& task) { return "stage/" + id + "/" + task; }
inline std::string ResultKey(const std::string& id, const std::string& task) { return "result/" + id + "/" + task; }
inline std::string ArtifactKey(const std::string& hash) { return "artifact/" + hash; }
inline std::string BaselineCacheKey(const std::string& key) { return "baseline/" + key; }
// A client's submission id -> the sweep it stored (written with the sweep, in one batch).
inline std::string SubmissionKey(const std::string& id) { return "submission/" + id; }

StatusOr<std::vector<SweepStatus>> ReadSweepStatuses(Store& store);
// Results of one sweep in task order. NotFound when the sweep does not exist.
StatusOr<std::vector<TrialResult>> ReadResults(Store& store, const std::string& sweep_id);
// The YAML the sweep was submitted with. NotFound when the sweep does not exist.
StatusOr<std::string> ReadSpecYaml(Store& store, const std::string& sweep_id);

}  // namespace prunelab::coordinator
