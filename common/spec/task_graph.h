// The task graph of a sweep, in one place: which tasks a spec expands to and what each one
// waits for (ExpandTasks), which outcomes are result rows and which are stages whose rows
// follow from them, and which count in a sweep's progress. The coordinator runs this graph
// (coordinator/scheduler); the store and the tables read rows by these rules.
#pragma once

#include <string>
#include <vector>

#include "common/base/types.h"
#include "common/spec/spec.h"

namespace prunelab {

// Number of pruning trials (cartesian product of the sweep axes), per target.
size_t TrialCount(const SweepSpec& spec);

// Tasks of one sweep, a graph: one trainBaseline ("train"); per target one
// evaluateBaseline ("base@TARGET"); one pruneTrial per point of the cartesian product
// ("t003", any worker); and, except in sensitivity mode, one benchmarkVariant per
// (trial, target) ("t003@TARGET", after t003), whose result is the trial's row for that
// target; and, unless benchmark.confirm_rounds is 0, one confirmTarget per target
// ("confirm@TARGET", blocked until every other row of the target is in). Task ids are
// stable and unique within the sweep.
std::vector<Task> ExpandTasks(const SweepSpec& spec, const std::string& sweep_id);

// Whether a task's outcome is a result row of its sweep: baseline evaluations, variant
// benchmarks and sensitivity trials. Baseline training and the pruning step of a benchmarked
// variant are stages (their outcome lives in the rows that follow from them).
bool ProducesResultRow(const Task& task);
// Whether a task counts in a sweep's progress (trials, done, failed): a result row of its own,
// not a confirmation round (which times rows already counted).
inline bool CountsAsTrial(const Task& task) {
  return ProducesResultRow(task) && task.kind != TaskKind::kConfirmTarget;
}
// A variant's pruning step, benchmarked per target: its outcome is stored as a stage
// (stage/), which the rows of its benchmarks complete; everything else writes under result/.
inline bool IsPruneStage(const Task& task) { return task.kind == TaskKind::kPruneTrial && !ProducesResultRow(task); }

}  // namespace prunelab
