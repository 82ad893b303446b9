#include "common/spec/task_graph.h"

#include <fmt/printf.h>

namespace prunelab {

// N:M patterns fix their own sparsity (1 - N/M): one trial each, whatever the sparsity axis.
static std::vector<double> SparsitiesFor(const SweepSpec& spec, const std::string& granularity) {
  int n = 0, m = 0;
  if (ParseNm(granularity, &n, &m)) return {1.0 - static_cast<double>(n) / m};
  return spec.sparsities;
}

size_t TrialCount(const SweepSpec& spec) {
  size_t per_schedule = 0;
  for (const auto& g : spec.granularities) per_schedule += SparsitiesFor(spec, g).size();
  if (spec.mode == "sensitivity") return spec.criteria.size() * per_schedule * spec.layers.size();
  size_t quantized_dense = 0;
  for (const auto& q : spec.quantize) quantized_dense += q != "none";
  return spec.criteria.size() * per_schedule * spec.schedules.size() * spec.quantize.size() + quantized_dense;
}

std::vector<Task> ExpandTasks(const SweepSpec& spec, const std::string& sweep_id) {
  std::vector<Task> tasks;
  Task base;
  base.sweep_id = sweep_id;
  base.model = spec.model;
  base.dataset = spec.dataset;
  base.training = spec.training;
  base.benchmark = spec.benchmark;
  base.baseline_key = BaselineKey(spec);
  base.model_artifact = spec.model_artifact;
  base.input_shape = spec.input_shape;
  base.spec_hash = spec.spec_hash;
  const PruningSpec& p = spec.pruning;
  base.trial.scope = p.scope;
  base.trial.min_keep = p.min_keep;
  base.trial.exclude = p.exclude;
  base.trial.overrides = p.overrides;
  base.trial.round_to = p.round_to;
  base.trial.calibration_batches = p.calibration_batches;

  Task train = base;
  train.task_id = "train";
  train.kind = TaskKind::kTrainBaseline;
  tasks.push_back(train);

  // Every timing on a target uses the threads its deployment gives the model.
  auto on_target = [&](Task t, const std::string& target) {
    t.target = target;
    auto th = spec.target_threads.find(target);
    if (th != spec.target_threads.end()) t.benchmark.threads = th->second;
    return t;
  };
  for (const auto& target : spec.targets) {
    Task eval = on_target(base, target);
    eval.task_id = "base@" + target;
    eval.kind = TaskKind::kEvaluateBaseline;
    tasks.push_back(eval);
  }
  // A variant is pruned and fine-tuned once, on any worker (tNNN), then benchmarked on
  // every target (tNNN@TARGET, after tNNN): its result row is the one for that target.
  std::vector<Task> benches;
  int index = 0;
  auto trial = [&](const std::string& criterion, const std::string& granularity, double sparsity) {
    Task t = base;
    t.task_id = fmt::sprintf("t%03d", ++index);
    t.kind = TaskKind::kPruneTrial;
    t.trial.criterion = criterion;
    t.trial.granularity = granularity;
    t.trial.sparsity = sparsity;
    return t;
  };
  auto add = [&](const Task& t) {
    tasks.push_back(t);
    if (t.trial.schedule == "sensitivity") return;  // evaluated only: its own row
    for (const auto& target : spec.targets) {
      Task b = on_target(t, target);
      b.task_id = t.task_id + "@" + target;
      b.kind = TaskKind::kBenchmarkVariant;
      b.depends_on = t.task_id;
      benches.push_back(b);
    }
  };
  if (spec.mode == "sensitivity") {
    // One trial per (layer, sparsity): that layer pruned alone, evaluated without fine-tuning.
    for (const auto& criterion : spec.criteria)
      for (const auto& granularity : spec.granularities)
        for (const auto& layer : spec.layers)
          for (double sparsity : SparsitiesFor(spec, granularity)) {
            Task t = trial(criterion, granularity, sparsity);
            t.trial.schedule = "sensitivity";
            t.trial.finetune_epochs = 0;
            t.trial.rounds = 1;
            t.trial.layer = layer;
            add(t);
          }
  } else {
    for (const auto& criterion : spec.criteria)
      for (const auto& granularity : spec.granularities)
        for (double sparsity : SparsitiesFor(spec, granularity))
          for (const auto& schedule : spec.schedules) {
            Task t = trial(criterion, granularity, sparsity);
            t.trial.schedule = schedule.type;
            t.trial.finetune_epochs = schedule.finetune_fraction >= 0
                                          ? schedule.finetune_fraction * spec.training.epochs
                                          : schedule.finetune_epochs;
            t.trial.finetune_learning_rate = schedule.finetune_learning_rate;
            t.trial.rounds = schedule.type == "iterative" ? schedule.rounds : 1;
            t.trial.curve = schedule.curve;
            t.trial.rewind = schedule.rewind;
            t.trial.distill_temperature = schedule.distill_temperature;
            t.trial.distill_alpha = schedule.distill_alpha;
            for (const auto& q : spec.quantize) {
              Task v = t;
              if (&q != &spec.quantize.front()) {
                v.task_id = fmt::sprintf("t%03d", ++index);
              }
              v.trial.quantize = q;
              add(v);
            }
          }
    // The dense baseline quantized alone, the reference for pruned + quantized rows.
    for (const auto& q : spec.quantize) {
      if (q == "none") continue;
      Task t = trial("none", "dense", 0.0);
      t.trial.schedule = "one_shot";
      t.trial.finetune_epochs = 0;
      t.trial.rounds = 1;
      t.trial.quantize = q;
      add(t);
    }
  }
  tasks.insert(tasks.end(), benches.begin(), benches.end());
  // Last, per target: the confirmation round over its best candidates, released by the
  // coordinator once every other row of the target is in (its candidates are chosen then).
  if (spec.mode != "sensitivity" && spec.benchmark.confirm_rounds > 0 && !benches.empty())
    for (const auto& target : spec.targets) {
      Task confirm = on_target(base, target);
      confirm.task_id = "confirm@" + target;
      confirm.kind = TaskKind::kConfirmTarget;
      tasks.push_back(confirm);
    }
  return tasks;
}

bool ProducesResultRow(const Task& t) {
  if (t.kind == TaskKind::kTrainBaseline) return false;
  if (t.kind == TaskKind::kPruneTrial) return t.trial.schedule == "sensitivity";
  return true;
}

}  // namespace prunelab
