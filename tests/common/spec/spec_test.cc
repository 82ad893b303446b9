#include <gtest/gtest.h>

#include <algorithm>

#include <map>
#include <set>

#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "common/spec/task_graph.h"
#include "tests/status_matchers.h"

namespace prunelab {
namespace {

const char* kGood = R"(
name: t1
model: cnn
dataset: {train_subset: 1000, test_subset: 500}
training: {epochs: 1, batch_size: 32, learning_rate: 0.05, seed: 7}
sweep:
  criterion: [l1]
  granularity: [unstructured, channel]
  sparsity: [0.25, 0.5, 0.75]
  schedule: [{type: one_shot, finetune_epochs: 2, learning_rate: 0.02}]
benchmark: {warmup_queries: 5, min_queries: 10, min_duration_s: 0.1}
targets: [cpu-a, cpu-b]
)";

TEST(SpecTest, ParsesGoodSpec) {
  auto s = ParseSpec(kGood);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->name, "t1");
  EXPECT_EQ(s->dataset.train_subset, 1000u);
  EXPECT_EQ(s->training.batch_size, 32u);
  EXPECT_EQ(s->training.seed, 7u);
  EXPECT_EQ(s->granularities, (std::vector<std::string>{"unstructured", "channel"}));
  EXPECT_EQ(s->sparsities, (std::vector<double>{0.25, 0.5, 0.75}));
  ASSERT_EQ(s->schedules.size(), 1u);
  EXPECT_EQ(s->schedules[0].finetune_epochs, 2.0);
  EXPECT_DOUBLE_EQ(s->schedules[0].finetune_learning_rate, 0.02);
  EXPECT_EQ(s->benchmark.min_queries, 10u);
  EXPECT_EQ(s->targets, (std::vector<std::string>{"cpu-a", "cpu-b"}));
}

TEST(SpecTest, ShippedExamplesAreValid) {
  for (const char* f : {"/examples/fashion-mnist-quick.yaml", "/examples/fashion-mnist-full.yaml",
                        "/examples/fashion-mnist-criteria.yaml", "/examples/family-mlp.yaml",
                        "/examples/family-resnet.yaml", "/examples/family-vit.yaml", "/examples/oneshot-vs-iterative.yaml",
                        "/examples/sensitivity.yaml", "/examples/user-model/sweep.yaml"}) {
    auto text = ReadSpecFile(std::string(PRUNELAB_SOURCE_DIR) + f);
    ASSERT_TRUE(text.ok()) << f;
    auto s = ParseSpec(text.value());
    EXPECT_TRUE(s.ok()) << f << ": " << s.status().ToString();
  }
}

struct BadCase {
  std::string yaml;
  std::vector<std::string> expected_fragments;  // all must appear in the error
};

TEST(SpecTest, RejectsBadSpecsNamingFieldAndAllowedValues) {
  std::vector<BadCase> cases = {
      {"name: x\nsweep: {criterion: l1, granularity: chanel, sparsity: [0.5]}\n",
       {"sweep.granularity", "'chanel'", "unstructured, structured"}},
      {"name: x\nsweep: {criterion: [l1, l7], granularity: channel, sparsity: 0.5}\n",
       {"sweep.criterion[1]", "'l7'", "allowed values: random, l1, l2, gradient, taylor"}},
      {"name: x\nsweep: {criterion: l1, granularity: channel, sparsity: [0.5, 1.5]}\n",
       {"sweep.sparsity[1]", "(0, 1)"}},
      {"name: x\nmodel: resnet152\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n",
       {"model", "'resnet152'", "cnn"}},
      {"name: x\ntraining: {epochs: two}\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n",
       {"training.epochs", "number"}},
      {"name: x\ntraining: {epoch: 2}\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n",
       {"training.epoch", "unknown field", "epochs"}},
      {"name: x\n", {"sweep", "required"}},
      {"name: x\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5, schedule: {type: gradual}}\n",
       {"sweep.schedule.type", "one_shot"}},
      {"name: x\nsweep: {criterion: l1, granularity: channel, sparsity: [0.5, 0.5]}\n", {"sweep.sparsity[1]", "twice"}},
      {"name: 'bad name!'\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n", {"name"}},
      {"name: x\nsweep: [1, 2\n", {"not valid YAML", "line"}},
      {"- just\n- a list\n", {"top level must be a mapping"}},
      {"name: x\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\ntargets: []\n", {"targets"}},
  };
  for (const auto& c : cases) {
    auto s = ParseSpec(c.yaml);
    ASSERT_FALSE(s.ok()) << "accepted:\n" << c.yaml;
    EXPECT_EQ(s.status().code(), Status::Code::kInvalidArgument);
    for (const auto& frag : c.expected_fragments)
      EXPECT_NE(s.status().message().find(frag), std::string::npos)
          << "missing '" << frag << "' in: " << s.status().message() << "\nfor:\n" << c.yaml;
  }
}

TEST(SpecTest, NmPatternsAreGranularitiesWithTheirOwnSparsity) {
  auto s = ParseSpec("name: x\nmodel: cnn\nsweep: {criterion: [l1, taylor], granularity: [channel, '2:4', '4:8'], sparsity: [0.3, 0.6]}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // per criterion: channel x 2 sparsities + 2:4 once + 4:8 once
  EXPECT_EQ(TrialCount(s.value()), 2u * (2 + 1 + 1));
  auto tasks = ExpandTasks(s.value(), "sw-1");
  EXPECT_EQ(tasks.size(), 1u + 1u + 2 * TrialCount(s.value()) + 1u);  // train, base, prune + benchmark per trial, confirm
  int nm = 0;
  for (const auto& t : tasks) {
    if (t.kind == TaskKind::kPruneTrial && (t.trial.granularity == "2:4" || t.trial.granularity == "4:8")) {
      ++nm;
      EXPECT_DOUBLE_EQ(t.trial.sparsity, 0.5);
    }
  }
  EXPECT_EQ(nm, 4);
  for (const char* bad : {"4:2", "2:x", "0:4", "2:4:8", ":4"}) {
    auto r = ParseSpec(std::string("name: x\nmodel: cnn\nsweep: {criterion: l1, granularity: '") + bad + "', sparsity: 0.5}\n");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("N:M"), std::string::npos) << r.status().message();
  }
}

TEST(SpecTest, PriorityIsAnIntegerInRange) {
  auto s = ParseSpec("name: x\nmodel: cnn\npriority: 7\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->priority, 7);
  auto bad = ParseSpec("name: x\nmodel: cnn\npriority: 500\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("priority: must be in [-100, 100]"), std::string::npos) << bad.status().message();
}

TEST(SpecTest, ReportSectionTakesObjectivesGatesAndRuleAndNamesMistakes) {
  const std::string head = "name: x\nmodel: cnn\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5}\n";
  auto ok = ParseSpec(head + "report:\n  objectives: [accuracy:max, latency_p99_ms:min]\n  recommend: knee\n"
                             "  gates: {max_accuracy_drop: 1.5, latency_budget_ms: {latency_p90_ms: 0.2}, max_memory_fraction: 0}\n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->report.objectives, "accuracy:max,latency_p99_ms:min");
  EXPECT_EQ(ok->report.recommend, "knee");
  EXPECT_DOUBLE_EQ(ok->report.gates.max_accuracy_drop, 1.5);
  EXPECT_DOUBLE_EQ(ok->report.gates.latency_budget_ms.at("latency_p90_ms"), 0.2);
  EXPECT_DOUBLE_EQ(ok->report.gates.max_memory_fraction, 0);
  auto bad = ParseSpec(head + "report:\n  objectives: [speed:max]\n  recommend: cheapest\n"
                              "  gates: {latency_budget_ms: {accuracy: 1}, max_drop: 2}\n");
  ASSERT_FALSE(bad.ok());
  const std::string msg = bad.status().message();
  for (const char* frag : {"report.objectives", "unknown field 'speed'", "report.recommend", "fastest, most_accurate, knee",
                           "report.gates.latency_budget_ms.accuracy", "not a latency field", "report.gates.max_drop"})
    EXPECT_NE(msg.find(frag), std::string::npos) << "missing '" << frag << "' in: " << msg;
}

TEST(SpecTest, ReportsEveryProblemAtOnce) {
  auto s = ParseSpec("name: x\nmodel: vgg\nsweep: {criterion: l9, granularity: channel, sparsity: 2}\n");
  ASSERT_FALSE(s.ok());
  const std::string msg = s.status().message();
  EXPECT_NE(msg.find("3 problems"), std::string::npos) << msg;
  // Each of the three, with its field and what is allowed.
  for (const char* frag : {"model", "vgg", "sweep.criterion", "l9", "sweep.sparsity", "2"})
    EXPECT_NE(msg.find(frag), std::string::npos) << "missing '" << frag << "' in: " << msg;
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 3) << "one line per problem after the summary: " << msg;
}

TEST(SpecTest, ExpandsCartesianProductIntoATaskGraph) {
  auto s = ParseSpec(kGood);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(TrialCount(s.value()), 6u);
  auto tasks = ExpandTasks(s.value(), "sw-0009");
  // 1 train + 2 baseline evals + 6 prune tasks (any worker) + 6 x 2 targets benchmarks + 2 confirmation rounds
  ASSERT_EQ(tasks.size(), 1u + 2u + 6u + 12u + 2u);
  EXPECT_EQ(tasks[21].task_id, "confirm@cpu-a");
  EXPECT_EQ(tasks[21].kind, TaskKind::kConfirmTarget);
  EXPECT_EQ(tasks[22].target, "cpu-b");
  EXPECT_TRUE(tasks[22].depends_on.empty()) << "released by the coordinator when its target's rows are in";
  EXPECT_EQ(tasks[0].kind, TaskKind::kTrainBaseline);
  EXPECT_EQ(tasks[0].task_id, "train");
  EXPECT_TRUE(tasks[0].target.empty());
  std::set<std::string> ids;
  std::set<std::tuple<std::string, std::string, double>> combos;
  for (const auto& t : tasks) {
    EXPECT_EQ(t.sweep_id, "sw-0009");
    EXPECT_TRUE(ids.insert(t.task_id).second) << "duplicate id " << t.task_id;
    EXPECT_EQ(t.baseline_key, tasks[0].baseline_key);
    if (t.kind == TaskKind::kPruneTrial) {
      EXPECT_TRUE(t.target.empty()) << "pruning runs on any worker";
      EXPECT_TRUE(t.depends_on.empty());
      EXPECT_EQ(t.trial.finetune_epochs, 2u);
    }
    if (t.kind == TaskKind::kBenchmarkVariant) {
      combos.insert({t.target, t.trial.granularity, t.trial.sparsity});
      EXPECT_EQ(t.task_id, t.depends_on + "@" + t.target);
      EXPECT_TRUE(ids.count(t.depends_on)) << "the prune task comes first";
    }
  }
  EXPECT_EQ(combos.size(), 12u);  // every (target, granularity, sparsity) benchmarked exactly once
  EXPECT_EQ(tasks[1].task_id, "base@cpu-a");
  EXPECT_EQ(tasks[3].task_id, "t001");
  EXPECT_EQ(tasks[9].task_id, "t001@cpu-a");
  EXPECT_EQ(tasks[10].task_id, "t001@cpu-b");
}

TEST(SpecTest, BaselineKeyDependsOnlyOnModelDataTraining) {
  auto a = ParseSpec(kGood);
  std::string other = kGood;
  other.replace(other.find("[0.25, 0.5, 0.75]"), 17, "[0.9]");
  auto b = ParseSpec(other);
  std::string retrained = kGood;
  retrained.replace(retrained.find("seed: 7"), 7, "seed: 8");
  auto c = ParseSpec(retrained);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(BaselineKey(a.value()), BaselineKey(b.value()));
  EXPECT_NE(BaselineKey(a.value()), BaselineKey(c.value()));
}

}  // namespace
}  // namespace prunelab

namespace prunelab {
namespace {

TEST(SpecTest, PruningSectionSchedulesAndSensitivityExpand) {
  auto s = ParseSpec(R"(
name: p
model: resnet
training: {epochs: 10}
pruning: {scope: global, min_keep: 0.1, exclude: [first, res3], overrides: {b2a: 0.3}, round_to: 8}
sweep:
  criterion: [activation]
  granularity: [structured]
  sparsity: [0.5]
  schedule:
    - {type: one_shot, finetune_fraction: 0.2}
    - {type: iterative, rounds: 5, curve: linear, finetune_epochs: 2, rewind: 0.1}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto tasks = ExpandTasks(s.value(), "sw");
  ASSERT_EQ(tasks.size(), 7u);  // train, base, one-shot, iterative, their benchmarks, the confirmation round
  const TrialConfig& one = tasks[2].trial;
  EXPECT_DOUBLE_EQ(one.finetune_epochs, 2.0) << "20 % of 10 baseline epochs";
  EXPECT_EQ(one.scope, "global");
  EXPECT_EQ(one.exclude, (std::vector<std::string>{"first", "res3"}));
  ASSERT_EQ(one.overrides.size(), 1u);
  EXPECT_EQ(one.round_to, 8u);
  EXPECT_EQ(one.rounds, 1u);
  const TrialConfig& it = tasks[3].trial;
  EXPECT_EQ(it.schedule, "iterative");
  EXPECT_EQ(it.rounds, 5u);
  EXPECT_EQ(it.curve, "linear");
  EXPECT_DOUBLE_EQ(it.rewind, 0.1);
  EXPECT_FALSE(tasks[3].spec_hash.empty());

  auto sens = ParseSpec("name: s\nmodel: cnn\nsweep: {mode: sensitivity, criterion: l1, granularity: unstructured, "
                        "sparsity: [0.5, 0.9]}\n");
  ASSERT_TRUE(sens.ok()) << sens.status().ToString();
  EXPECT_EQ(TrialCount(sens.value()), 8u) << "4 layers x 2 sparsities";
  auto st = ExpandTasks(sens.value(), "sw");
  ASSERT_EQ(st.size(), 2u + 8u) << "sensitivity trials are evaluated only: no benchmark tasks, no confirmation round";
  EXPECT_EQ(st[2].task_id, "t001");
  EXPECT_EQ(st[2].trial.layer, "conv1");
  EXPECT_EQ(st[2].trial.schedule, "sensitivity");
  EXPECT_EQ(st[2].trial.finetune_epochs, 0.0);
}

TEST(SpecTest, TimingThreadsBelongToTheTargetAndTheConfirmationRoundIsConfigurable) {
  auto s = ParseSpec(R"(
name: th
model: cnn
sweep: {criterion: l1, granularity: structured, sparsity: 0.5}
benchmark: {threads: 2, confirm_rounds: 7, confirm_candidates: 2}
targets: [edge, {name: server, threads: 8}]
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->targets, (std::vector<std::string>{"edge", "server"}));
  std::map<std::string, uint32_t> threads;
  size_t confirms = 0;
  for (const auto& t : ExpandTasks(s.value(), "sw")) {
    if (!t.target.empty()) threads[t.task_id] = t.benchmark.threads;
    if (t.kind == TaskKind::kConfirmTarget) {
      ++confirms;
      EXPECT_EQ(t.benchmark.confirm_rounds, 7u);
      EXPECT_EQ(t.benchmark.confirm_candidates, 2u);
    }
  }
  EXPECT_EQ(confirms, 2u);
  EXPECT_EQ(threads["base@edge"], 2u);
  EXPECT_EQ(threads["t001@edge"], 2u);
  EXPECT_EQ(threads["base@server"], 8u) << "the target's own threads";
  EXPECT_EQ(threads["t001@server"], 8u);
  EXPECT_EQ(threads["confirm@server"], 8u);
  auto defaults = ParseSpec("name: d\nmodel: cnn\nsweep: {criterion: l1, granularity: structured, sparsity: 0.5}\n");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->benchmark.threads, 1u) << "one thread unless the target says otherwise";
  auto off = ParseSpec("name: d\nmodel: cnn\nsweep: {criterion: l1, granularity: structured, sparsity: 0.5}\n"
                       "benchmark: {confirm_rounds: 0}\n");
  ASSERT_TRUE(off.ok());
  for (const auto& t : ExpandTasks(off.value(), "sw")) EXPECT_NE(t.kind, TaskKind::kConfirmTarget);
  for (const auto& [yaml, frags] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"targets: [{name: a, threads: 0}]", {"targets[0].threads", "[1, 1024]"}},
           {"targets: [{name: a, cores: 2}]", {"targets[0].cores", "unknown field", "name, threads"}},
           {"targets: [{threads: 2}]", {"targets[0].name", "a target name"}},
           {"benchmark: {confirm_candidates: 9}", {"benchmark.confirm_candidates", "[1, 7]"}},
           {"benchmark: {threads: 1.5}", {"benchmark.threads", "whole number"}}}) {
    auto e = ParseSpec("name: d\nmodel: cnn\nsweep: {criterion: l1, granularity: structured, sparsity: 0.5}\n" + yaml + "\n");
    ASSERT_FALSE(e.ok()) << yaml;
    for (const auto& f : frags)
      EXPECT_NE(e.status().message().find(f), std::string::npos) << "missing '" << f << "' in " << e.status().message();
  }
}

TEST(SpecTest, ScheduleDistillTakesTemperatureAndAlphaAndNamesMistakes) {
  auto s = ParseSpec(R"(
name: kd
model: cnn
sweep:
  criterion: l1
  granularity: channel
  sparsity: [0.7]
  schedule:
    - {type: one_shot, finetune_epochs: 1}
    - {type: one_shot, finetune_epochs: 1, distill: {temperature: 3, alpha: 0.7}}
    - {type: iterative, rounds: 2, distill: {}}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto tasks = ExpandTasks(s.value(), "sw");
  ASSERT_EQ(tasks.size(), 9u);  // train, base, 3 trials, 3 benchmarks, the confirmation round
  EXPECT_EQ(tasks[2].trial.distill_temperature, 0.0) << "off unless asked for";
  EXPECT_DOUBLE_EQ(tasks[3].trial.distill_temperature, 3.0);
  EXPECT_DOUBLE_EQ(tasks[3].trial.distill_alpha, 0.7);
  EXPECT_DOUBLE_EQ(tasks[4].trial.distill_temperature, 4.0) << "defaults: temperature 4, alpha 0.5";
  EXPECT_DOUBLE_EQ(tasks[4].trial.distill_alpha, 0.5);
  for (const char* bad : {"{temperature: 0.1}", "{alpha: 1.5}", "{temp: 4}", "yes"}) {
    auto e = ParseSpec(std::string("name: kd\nmodel: cnn\nsweep: {criterion: l1, granularity: channel, sparsity: 0.5, "
                                   "schedule: {type: one_shot, distill: ") + bad + "}}\n");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_NE(e.status().message().find("sweep.schedule.distill"), std::string::npos) << bad << ": " << e.status().message();
  }
}

TEST(SpecTest, TrainingPrecisionIsFp32OrBf16AndKeysTheBaseline) {
  auto fp = ParseSpec("name: p\nmodel: cnn\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n");
  auto bf = ParseSpec("name: p\nmodel: cnn\ntraining: {precision: bf16}\n"
                      "sweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n");
  ASSERT_TRUE(fp.ok() && bf.ok()) << bf.status().ToString();
  EXPECT_EQ(fp->training.precision, "fp32");
  EXPECT_EQ(bf->training.precision, "bf16");
  EXPECT_NE(BaselineKey(fp.value()), BaselineKey(bf.value())) << "a bf16 baseline is another baseline";
  EXPECT_EQ(ExpandTasks(bf.value(), "sw")[0].training.precision, "bf16");
  auto bad = ParseSpec("name: p\nmodel: cnn\ntraining: {precision: fp16}\n"
                       "sweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("training.precision"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("bf16"), std::string::npos) << bad.status().message();
}

TEST(SpecTest, DepthRanksBlocksWithItsOwnCriteriaAndNamesWhatDoesNotApply) {
  auto s = ParseSpec(R"(
name: d
model: resnet
pruning: {exclude: [b3]}
sweep:
  criterion: [loss, angular, random]
  granularity: depth
  sparsity: [0.25, 0.5]
  schedule: {type: one_shot, finetune_epochs: 1, distill: {}}
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(TrialCount(s.value()), 6u);
  auto tasks = ExpandTasks(s.value(), "sw");
  EXPECT_EQ(tasks[2].trial.granularity, "depth");
  EXPECT_EQ(tasks[2].trial.exclude, std::vector<std::string>{"b3"});
  std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"name: x\nmodel: resnet\nsweep: {criterion: l1, granularity: depth, sparsity: 0.5}\n",
       {"sweep.criterion", "'l1'", "loss, angular, random"}},
      {"name: x\nmodel: resnet\nsweep: {criterion: loss, granularity: [depth, structured], sparsity: 0.5}\n",
       {"sweep.criterion", "'loss'", "granularity depth only"}},
      {"name: x\nmodel: cnn\nsweep: {criterion: loss, granularity: depth, sparsity: 0.5}\n",
       {"sweep.granularity", "'cnn' has no residual blocks"}},
      {"name: x\nmodel: vit\npruning: {exclude: [b7]}\nsweep: {criterion: loss, granularity: depth, sparsity: 0.5}\n",
       {"pruning.exclude[0]", "blocks: b0, b1"}},
      {"name: x\nmodel: vit\npruning: {overrides: {b0: 0.5}}\nsweep: {criterion: loss, granularity: depth, sparsity: 0.5}\n",
       {"pruning.overrides", "removed whole"}},
      {"name: x\nmodel: resnet\nsweep: {criterion: loss, granularity: depth, sparsity: 0.5, schedule: {type: one_shot, rewind: 0}}\n",
       {"rewind", "depth"}},
      {"name: x\nmodel: resnet\nsweep: {mode: sensitivity, criterion: loss, granularity: depth, sparsity: 0.5}\n",
       {"sweep.granularity", "sensitivity"}},
      {"name: x\nmodel: resnet\nsweep: {criterion: loss, granularity: deep, sparsity: 0.5}\n",
       {"sweep.granularity", "depth (whole residual blocks)"}},
  };
  for (const auto& [yaml, frags] : cases) {
    auto e = ParseSpec(yaml);
    ASSERT_FALSE(e.ok()) << yaml;
    for (const auto& f : frags)
      EXPECT_NE(e.status().message().find(f), std::string::npos) << "missing '" << f << "' in " << e.status().message();
  }
}

TEST(SpecTest, QuantizeIsAnAxisAndAddsTheQuantizedDenseBaseline) {
  auto s = ParseSpec(R"(
name: q
model: cnn
sweep:
  criterion: l1
  granularity: structured
  sparsity: [0.3, 0.5]
  quantize: [none, int8]
)");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(TrialCount(s.value()), 5u) << "2 sparsities x 2 modes + the dense model in int8";
  std::vector<std::string> seen;
  std::set<std::string> ids;
  for (const auto& t : ExpandTasks(s.value(), "sw")) {
    if (t.kind != TaskKind::kPruneTrial) continue;
    EXPECT_TRUE(ids.insert(t.task_id).second) << t.task_id;
    seen.push_back(t.trial.granularity + "/" + std::to_string(t.trial.sparsity).substr(0, 3) + "/" + t.trial.quantize);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"structured/0.3/none", "structured/0.3/int8", "structured/0.5/none",
                                            "structured/0.5/int8", "dense/0.0/int8"}));
  auto plain = ParseSpec("name: q\nmodel: cnn\nsweep: {criterion: l1, granularity: structured, sparsity: 0.5}\n");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(TrialCount(plain.value()), 1u) << "no quantize axis: nothing quantized, no extra trial";
  EXPECT_EQ(ExpandTasks(plain.value(), "sw")[2].trial.quantize, "none");
  for (const auto& [yaml, frags] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"name: q\nmodel: cnn\nsweep: {criterion: l1, granularity: structured, sparsity: 0.5, quantize: int4}\n",
            {"sweep.quantize", "none, int8, int8_dynamic"}},
           {"name: q\nmodel: cnn\nsweep: {mode: sensitivity, criterion: l1, granularity: structured, sparsity: 0.5, quantize: int8}\n",
            {"sweep.quantize", "sensitivity"}}}) {
    auto e = ParseSpec(yaml);
    ASSERT_FALSE(e.ok()) << yaml;
    for (const auto& f : frags)
      EXPECT_NE(e.status().message().find(f), std::string::npos) << "missing '" << f << "' in " << e.status().message();
  }
}

TEST(SpecTest, CrossSectionMistakesNameTheFieldAndTheChoices) {
  std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"name: x\nmodel: cnn\nsweep: {criterion: apoz, granularity: [structured, unstructured], sparsity: 0.5}\n",
       {"sweep.criterion", "'apoz'", "structured only"}},
      {"name: x\nmodel: cnn\npruning: {exclude: [conv3]}\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n",
       {"pruning.exclude[0]", "'conv3'", "conv1, conv2, fc1, fc2"}},
      {"name: x\nmodel: vit\nsweep: {mode: sensitivity, layers: [b0_q], criterion: l1, granularity: structured, sparsity: 0.5}\n",
       {"sweep.layers[0]", "b0_heads, b0_mlp"}},
      {"name: x\nmodel: {torchscript: m.pt}\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n",
       {"model.input_shape", "is required"}},
      {"name: x\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5, schedule: {type: one_shot, rounds: 3}}\n",
       {"rounds", "iterative only"}},
      {"name: x\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5, schedule: {type: iterative, curve: exp}}\n",
       {"curve", "linear, cubic"}},
      {"name: x\nmodel: mlp\npruning: {scope: model}\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n",
       {"pruning.scope", "layer, global"}},
  };
  for (const auto& [yaml, frags] : cases) {
    auto s = ParseSpec(yaml);
    ASSERT_FALSE(s.ok()) << yaml;
    for (const auto& f : frags) EXPECT_NE(s.status().message().find(f), std::string::npos) << "missing '" << f << "' in " << s.status().message();
  }
}

}  // namespace
}  // namespace prunelab

namespace prunelab {
namespace {

// "A scalar or a list" and "listed twice" are one code path for every list field.
TEST(SpecTest, ScalarOrListAndListedTwiceBehaveAlikeInEveryListField) {
  auto scalars = ParseSpec("name: x\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n"
                           "targets: local\n");
  ASSERT_TRUE(scalars.ok()) << scalars.status().ToString();
  EXPECT_EQ(scalars->sparsities, std::vector<double>{0.5});
  EXPECT_EQ(scalars->targets, std::vector<std::string>{"local"});
  EXPECT_EQ(scalars->granularities, std::vector<std::string>{"unstructured"});
  auto twice = ParseSpec("name: x\nmodel: mlp\n"
                         "sweep: {criterion: [l1, l1], granularity: [2:4, 2:4], sparsity: [0.5, 0.5]}\n"
                         "targets: [a, a]\n");
  ASSERT_FALSE(twice.ok());
  const std::string msg = twice.status().message();
  for (const char* frag : {"sweep.criterion[1]: 'l1' is listed twice", "sweep.granularity[1]: '2:4' is listed twice",
                           "sweep.sparsity[1]: 0.5 is listed twice", "targets[1]: 'a' is listed twice"})
    EXPECT_NE(msg.find(frag), std::string::npos) << "missing '" << frag << "' in: " << msg;
  auto empty = ParseSpec("name: x\nmodel: mlp\nsweep: {criterion: [], granularity: [], sparsity: []}\ntargets: []\n");
  ASSERT_FALSE(empty.ok());
  for (const char* frag : {"sweep.criterion: must not be empty", "sweep.granularity: must not be empty",
                           "sweep.sparsity: must not be empty", "targets: must not be empty"})
    EXPECT_NE(empty.status().message().find(frag), std::string::npos) << frag << " in: " << empty.status().message();
}

}  // namespace
}  // namespace prunelab

namespace prunelab {
namespace {

const char* kHead = "name: x\nmodel: mlp\n";

TEST(SpecLimitsTest, DuplicateKeysAreRefusedWithTheirLine) {
  auto s = ParseSpec(std::string(kHead) + "model: cnn\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("model: appears twice (line 3)"), std::string::npos) << s.status().message();
  auto nested = ParseSpec(std::string(kHead) + "sweep: {criterion: l1, criterion: l2, granularity: unstructured, sparsity: 0.5}\n");
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("sweep.criterion: appears twice"), std::string::npos) << nested.status().message();
}

TEST(SpecLimitsTest, SizeNestingAndListLengthsHaveLimitsThatTheErrorsName) {
  auto big = ParseSpec(std::string(kHead) + "# " + std::string(kMaxSpecBytes, 'x') + "\n");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("the limit is 1048576 bytes"), std::string::npos) << big.status().message();
  auto deep = ParseSpec(std::string(kHead) + "sweep: {criterion: l1, granularity: unstructured, sparsity: " +
                        std::string(5000, '[') + std::string(5000, ']') + "}\n");
  ASSERT_FALSE(deep.ok()) << "refused before yaml-cpp recurses 5000 levels";
  EXPECT_NE(deep.status().message().find("the limit is 32"), std::string::npos) << deep.status().message();
  std::string many;
  for (int i = 1; i <= 1001; ++i) many += (i > 1 ? "," : "") + std::to_string(i / 1002.0);
  auto list = ParseSpec(std::string(kHead) + "sweep: {criterion: l1, granularity: unstructured, sparsity: [" + many + "]}\n");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.status().message().find("sweep.sparsity: has 1001 items; the limit is 1000"), std::string::npos)
      << list.status().message().substr(0, 300);
  std::string targets;
  for (int i = 0; i < 65; ++i) targets += (i ? "," : "") + std::string("t") + std::to_string(i);
  auto tg = ParseSpec(std::string(kHead) + "sweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\ntargets: [" +
                      targets + "]\n");
  ASSERT_FALSE(tg.ok());
  EXPECT_NE(tg.status().message().find("targets: has 65 items; the limit is 64"), std::string::npos);
}

TEST(SpecLimitsTest, ALongOrBinaryNameIsQuotedShortAndTextMustBeUtf8) {
  auto s = ParseSpec("name: " + std::string(100000, 'n') + "\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n");
  ASSERT_FALSE(s.ok());
  EXPECT_LT(s.status().message().size(), 400u) << "the error quotes a short prefix, not the whole name";
  EXPECT_NE(s.status().message().find("(100000 bytes)"), std::string::npos) << s.status().message();
  auto bad = ParseSpec(std::string(kHead) + "# caf\xFF\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not valid UTF-8"), std::string::npos);
}

}  // namespace
}  // namespace prunelab

namespace prunelab {
namespace {

using prunelab::testing::IsError;

// task: causal_lm: the zoo decoder or the user's, a text or tokens dataset, AdamW defaults;
// every mix-up names its field and the choices.
TEST(SpecTest, ALanguageModelSweepHasItsOwnDataTrainingAndChoices) {
  auto s = ParseSpec("name: lm\ntask: causal_lm\nmodel: gpt\n"
                     "sweep: {criterion: l2, granularity: structured, sparsity: 0.5}\n");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->dataset.task, "causal_lm");
  EXPECT_EQ(s->dataset.name, "text");
  EXPECT_EQ(s->dataset.path, "/usr/share/games/fortunes");
  EXPECT_EQ(s->dataset.vocab_size, 512u);
  EXPECT_EQ(s->dataset.sequence_length, 64u);
  EXPECT_EQ(s->training.optimizer, "adamw");
  EXPECT_DOUBLE_EQ(s->schedules.at(0).finetune_learning_rate, 1e-3) << "AdamW's fine-tuning rate";
  auto tasks = ExpandTasks(s.value(), "sw");
  ASSERT_FALSE(tasks.empty());
  EXPECT_EQ(tasks[0].dataset.task, "causal_lm") << "every task carries what it learns";
  auto image = ParseSpec("name: i\nmodel: cnn\nsweep: {criterion: l1, granularity: structured, sparsity: 0.5}\n");
  ASSERT_TRUE(image.ok());
  EXPECT_NE(BaselineKey(image.value()), BaselineKey(s.value()));
  EXPECT_EQ(image->dataset.task, "image_classification");
  EXPECT_EQ(image->training.optimizer, "sgd");

  auto tokens = ParseSpec("name: lm\ntask: causal_lm\nmodel: {torchscript: lm.pt}\n"
                          "dataset: {name: tokens, path: /data/owt, vocab_size: 50304, sequence_length: 256}\n"
                          "training: {epochs: 0}\n"
                          "sweep: {criterion: l2, granularity: structured, sparsity: 0.5}\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(tokens->dataset.vocab_size, 50304u);
  EXPECT_TRUE(tokens->input_shape.empty()) << "the windows are the input";

  const std::string sweep = "sweep: {criterion: l2, granularity: structured, sparsity: 0.5}\n";
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: lm\nmodel: gpt\n" + sweep), Status::Code::kInvalidArgument,
                      "task: 'lm' is not allowed (allowed values: image_classification, causal_lm)"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: cnn\n" + sweep), Status::Code::kInvalidArgument,
                      "model: 'cnn' is an image classifier; task causal_lm takes gpt"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\nmodel: gpt\n" + sweep), Status::Code::kInvalidArgument,
                      "'gpt' is a language model: give task: causal_lm"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\ndataset: {name: npy}\n" + sweep),
                      Status::Code::kInvalidArgument, "dataset.name: 'npy' is not allowed (allowed values: text, tokens)"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\ndataset: {name: tokens, path: /d}\n" + sweep),
                      Status::Code::kInvalidArgument, "dataset.vocab_size: is required for name tokens"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\n"
                                "dataset: {name: text, tokenizer: t.model, vocab_size: 100}\n" + sweep),
                      Status::Code::kInvalidArgument, "give vocab_size (prunelab trains a tokenizer of that size) or tokenizer"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\ndataset: {sequence_length: 1}\n" + sweep),
                      Status::Code::kInvalidArgument, "dataset.sequence_length"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\ndataset: {mean: [0.5]}\n" + sweep),
                      Status::Code::kInvalidArgument, "dataset.mean"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: {torchscript: m.pt, input_shape: [64]}\n" + sweep),
                      Status::Code::kInvalidArgument, "model.input_shape: does not apply to task causal_lm"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\nmodel: cnn\ntraining: {optimizer: adam}\n" + sweep),
                      Status::Code::kInvalidArgument, "training.optimizer: 'adam' is not allowed (allowed values: sgd, adamw)"));
  EXPECT_TRUE(IsError(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\n"
                                "sweep: {criterion: [wanda, sparsegpt], granularity: [unstructured, structured], sparsity: 0.5}\n"),
                      Status::Code::kInvalidArgument, "'sparsegpt' prunes single weights from what the layer sees"));
  EXPECT_TRUE(ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\n"
                        "sweep: {criterion: [l1, wanda, sparsegpt], granularity: [unstructured, \"2:4\"], sparsity: 0.5}\n")
                  .ok());
  auto gate = ParseSpec("name: x\ntask: causal_lm\nmodel: gpt\n" + sweep + "report: {gates: {max_perplexity_ratio: 1.1}}\n");
  ASSERT_TRUE(gate.ok()) << gate.status().ToString();
  EXPECT_DOUBLE_EQ(gate->report.gates.max_perplexity_ratio, 1.1);
}

}  // namespace
}  // namespace prunelab
