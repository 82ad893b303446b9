// ReleaseBook: the released variant per hardware target (versions v1, v2, ... per target),
// rollback as a recorded event, target policies (thresholds, the action on critical) and
// the record of every evaluation of a release on new data. Durable in the coordinator's
// store; the coordinator dispatches the evaluation tasks the book asks for and feeds their
// results back. Transport-free, like the Coordinator that owns it.
// Thread-safety: not thread-safe; the coordinator's event-loop thread owns it. The static
// readers (metrics, history) only read the store and may run on any thread.
//
// Store keys (JSON documents unless noted):
//   rel/T/NNNNNN       release N of target T: the variant, its card, changelog, gates, reference
//   reltask/T/NNNNNN   the task the variant was benchmarked with (binary TaskRecord): the
//                      template of its evaluation tasks (model, data normalization, benchmark)
//   relcur/T           the number of T's current release
//   relev/T/NNNNNN     release and rollback events, in order; nothing is ever deleted
//   relpol/T           T's policy (absent: the defaults)
//   releval/T/ID       evaluation ID (the id of the one-task evaluation job) of T's release
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/base/types.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

class ReleaseBook {
 public:
  // store and clock must outlive the book.
  ReleaseBook(Store& store, const Clock& clock) : store_(store), clock_(clock) {}

  // What a command (or a finished evaluation) asks of the coordinator: writes to apply in one
  // batch with its own, the reply (a JSON document), an evaluation task to dispatch as job
  // `evaluation_id` (the release's reference run; an evaluation), a sweep to submit again with
  // new data (policy resweep), and lines for the event log.
  struct Outcome {
    std::vector<StoreWrite> writes;
    std::string reply_json;
    std::optional<Task> evaluation;
    std::string evaluation_name;
    std::optional<std::string> resweep_yaml;
    std::string resweep_model_artifact;  // the user's TorchScript model of the released sweep, if any
    std::vector<std::string> events;
  };

  // release | releases | rollback | evaluate | evaluations | policy. `next_job_id` is the id the
  // coordinator will give an evaluation job this command starts. Errors name the field.
  StatusOr<Outcome> Handle(const ReleaseCommandMsg& m, const std::string& next_job_id);

  // A finished evaluateRelease task (its result, ok or failed): the evaluation's record with
  // levels, the release's reference (for its reference run) and status, and the target
  // policy's action on critical (rollback writes here; resweep in the outcome).
  StatusOr<Outcome> OnEvaluationResult(const Task& task, const TrialResult& result);

  // Prometheus text for every target's current release and each release's latest evaluation.
  static std::string MetricsText(Store& store);
  // Every target's releases, events and recent evaluations (the dashboard's history).
  static StatusOr<std::string> HistoryJson(Store& store);

 private:
  // One command with what every action needs: who asks (as the service established it), when,
  // and the id an evaluation job it starts would get.
  struct Command {
    const ReleaseCommandMsg& m;
    std::string by;
    int64_t now_ms;
    std::string next_job_id;
  };
  StatusOr<Outcome> Release(const Command& c);
  StatusOr<Outcome> Releases(const Command& c);
  StatusOr<Outcome> Rollback(const Command& c);
  StatusOr<Outcome> Evaluate(const Command& c);
  StatusOr<Outcome> Evaluations(const Command& c);
  StatusOr<Outcome> Policy(const Command& c);

  Store& store_;
  const Clock& clock_;
};

}  // namespace prunelab::coordinator
