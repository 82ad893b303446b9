// The coordinator's state machine with a FakeClock and an in-memory store: no sockets,
// no sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/base/hash.h"
#include "tests/status_matchers.h"
#include "common/codec/codec.h"
#include "common/codec/records.h"
#include "coordinator/decide/decision.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/store/store_view.h"
#include "coordinator/store/store_wrapper.h"

namespace prunelab::coordinator {
namespace {

using prunelab::testing::IsError;

// What a TorchScript file starts with (a zip archive); the coordinator checks the magic.
const std::string kZipBytes = std::string("PK\x03\x04", 4) + "torchscript-bytes";


const char* kSpec = R"(
name: tiny
model: cnn
sweep: {criterion: l1, granularity: [unstructured, channel], sparsity: [0.5]}
targets: [a, b]
)";

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() : store_(NewMemoryStore()), core_(std::make_unique<Coordinator>(*store_, clock_)) {}

  std::string Register(const std::string& target) {
    auto r = core_->Handle(RegisterMsg{"", target, {}});
    return std::get<RegisterReplyMsg>(*r).worker_id;
  }
  std::string Submit(const char* spec = kSpec) {
    auto r = core_->Handle(SubmitSweepMsg{spec, ""});
    return std::get<SubmitReplyMsg>(*r).sweep_id;
  }
  std::optional<Task> Pull(const std::string& worker, uint32_t slot = 0) {
    auto r = core_->Handle(RequestWorkMsg{worker, slot});
    if (auto* a = std::get_if<AssignMsg>(&*r)) return a->task;
    return std::nullopt;
  }
  ResultAckMsg Report(const std::string& worker, const Task& t, bool ok = true) {
    SubmitResultMsg m;
    m.worker_id = worker;
    m.result.sweep_id = t.sweep_id;
    m.result.task_id = t.task_id;
    m.result.attempt = t.attempt;
    m.result.kind = t.kind;
    m.result.target = t.target;
    m.result.ok = ok;
    m.result.worker_id = worker;
    if (!ok) m.result.error = "NaN loss";
    if (t.kind == TaskKind::kTrainBaseline && ok) {
      m.artifact = "model-bytes";
      m.result.artifact_hash = ContentHash(m.artifact);
    }
    if (t.kind == TaskKind::kPruneTrial && ok) {  // the variant, and what pruning measured
      m.artifact = "variant-of-" + t.task_id;
      m.result.artifact_hash = ContentHash(m.artifact);
      m.result.accuracy = 0.8;
      m.result.params = 1234;
    }
    if (t.kind == TaskKind::kBenchmarkVariant && ok) m.result.latency_p90_ms = 0.5;  // what a target measured
    return std::get<ResultAckMsg>(*core_->Handle(m));
  }
  size_t ResultCount(const std::string& sweep) { return ReadResults(*store_, sweep).value().size(); }

  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> core_;
};

TEST_F(CoordinatorTest, InvalidSpecIsRejectedAndNothingStored) {
  auto r = core_->Handle(SubmitSweepMsg{"name: x\nsweep: {criterion: l1, granularity: cube, sparsity: 0.5}\n", ""});
  auto* e = std::get_if<ErrorMsg>(&*r);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->code, "invalid_spec");
  EXPECT_NE(e->message.find("sweep.granularity"), std::string::npos);
  int keys = 0;
  ASSERT_TRUE(store_->Scan("", [&](const std::string&, const std::string&) { ++keys; }).ok());
  EXPECT_EQ(keys, 0);
}

TEST_F(CoordinatorTest, TaskGraphBaselineThenPruneAnywhereThenBenchmarkPerTargetEachRecordedOnce) {
  std::string sweep = Submit();
  std::string wa = Register("a"), wb = Register("b");
  auto train = Pull(wa);
  ASSERT_TRUE(train);
  EXPECT_EQ(train->kind, TaskKind::kTrainBaseline);
  EXPECT_EQ(train->attempt, 1u);
  EXPECT_FALSE(Pull(wb)) << "everything else waits for the baseline";
  ASSERT_TRUE(Report(wa, *train).accepted);

  // The baseline artifact is now served to anyone who asks.
  auto art = std::get<ArtifactReplyMsg>(*core_->Handle(FetchArtifactMsg{ContentHash("model-bytes")}));
  EXPECT_TRUE(art.found);
  EXPECT_EQ(art.data, "model-bytes");
  EXPECT_EQ(art.total_bytes, 11u);

  // b prunes both variants (any worker may); a evaluates its baseline first (bound to it).
  auto base_a = Pull(wa);
  ASSERT_TRUE(base_a && base_a->task_id == "base@a");
  auto base_b = Pull(wb);
  ASSERT_TRUE(base_b && base_b->task_id == "base@b") << "tasks bound to the worker's target come first";
  ASSERT_TRUE(Report(wb, *base_b).accepted);
  core_->Handle(RegisterMsg{wb, "b", {}, 4, {}});  // 4 slots: it takes every task it may
  std::vector<Task> prunes;
  for (uint32_t slot = 0; slot < 4; ++slot) {
    auto t = Pull(wb, slot);
    if (!t) break;
    ASSERT_EQ(t->kind, TaskKind::kPruneTrial);
    EXPECT_TRUE(t->target.empty());
    prunes.push_back(*t);
  }
  ASSERT_EQ(prunes.size(), 2u) << "benchmarks wait for their variant";
  EXPECT_EQ(core_->Sweeps()[0].running, 5u) << "1 baseline eval + 4 benchmarks whose variants are being pruned";
  for (const auto& p : prunes) ASSERT_TRUE(Report(wb, p).accepted);
  ASSERT_TRUE(Report(wa, *base_a).accepted);

  int benches = 0;
  for (const auto& w : {wa, wb}) {
    while (auto t = Pull(w)) {
      ASSERT_EQ(t->kind, TaskKind::kBenchmarkVariant);
      EXPECT_EQ(t->target, w == wa ? "a" : "b") << "each target benchmarks on its own workers";
      EXPECT_EQ(t->baseline_artifact, ContentHash("model-bytes"));
      EXPECT_EQ(t->variant_artifact, ContentHash("variant-of-" + t->depends_on));
      ASSERT_TRUE(Report(w, *t).accepted);
      EXPECT_FALSE(Report(w, *t).accepted) << "a duplicate must not be recorded";
      ++benches;
    }
  }
  EXPECT_EQ(benches, 4);  // 2 variants x 2 targets
  auto s = core_->Sweeps();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].state, "done");
  EXPECT_EQ(s[0].trials, 6u);  // rows: 2 baseline evals + 2 variants x 2 targets
  EXPECT_EQ(s[0].done, 6u);
  auto rows = ReadResults(*store_, sweep).value();
  EXPECT_EQ(rows.size(), 9u);  // incl. the training result and each target's confirmation round
  int merged = 0;
  for (const auto& r : rows) {
    if (r.task_id.rfind("t0", 0) != 0) continue;
    ++merged;
    EXPECT_EQ(r.kind, TaskKind::kPruneTrial);
    EXPECT_DOUBLE_EQ(r.accuracy, 0.8) << "pruning's accuracy on every target's row";
    EXPECT_DOUBLE_EQ(r.latency_p90_ms, 0.5) << "the target's own benchmark";
    EXPECT_EQ(r.params, 1234u);
    EXPECT_EQ(r.target, r.task_id.substr(r.task_id.find('@') + 1));
    EXPECT_EQ(r.artifact_hash, ContentHash("variant-of-" + r.task_id.substr(0, 4)));
  }
  EXPECT_EQ(merged, 4);
}

TEST_F(CoordinatorTest, AFailedPruneFailsItsBenchmarksWithItsReason) {
  std::string sweep = Submit();
  std::string w = Register("a");
  Register("b");
  ASSERT_TRUE(Report(w, *Pull(w)).accepted);           // train
  ASSERT_TRUE(Report(w, *Pull(w)).accepted);           // base@a
  auto prune = Pull(w);
  ASSERT_TRUE(prune && prune->kind == TaskKind::kPruneTrial);
  ASSERT_TRUE(Report(w, *prune, /*ok=*/false).accepted);
  int failed = 0;
  auto rows = ReadResults(*store_, sweep).value();
  for (const auto& r : rows) {
    if (r.task_id.rfind(prune->task_id + "@", 0) != 0) continue;
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("NaN loss"), std::string::npos) << r.error;
    ++failed;
  }
  EXPECT_EQ(failed, 2) << "one failed row per target, not retried";
}

TEST_F(CoordinatorTest, HigherPriorityFirstAndEqualPrioritiesShareWorkersFairly) {
  auto spec = [](const char* name, int prio) {
    return std::string("name: ") + name + "\nmodel: mlp\npriority: " + std::to_string(prio) +
           "\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.1, 0.2, 0.3, 0.4]}\ntargets: [a]\n";
  };
  std::string low = Submit(spec("low", 0).c_str());
  std::string w = Register("a");
  ASSERT_TRUE(Report(w, *Pull(w)).accepted);  // low's baseline (cached for the others)
  std::string high = Submit(spec("high", 5).c_str());
  std::string peer = Submit(spec("peer", 0).c_str());
  // A worker with 8 slots fills them: high priority first, then low and peer alternate.
  core_->Handle(RegisterMsg{w, "a", {}, 8, {}});
  std::vector<std::string> got;
  for (uint32_t slot = 0; slot < 8; ++slot) {
    auto t = Pull(w, slot);
    ASSERT_TRUE(t);
    got.push_back(t->sweep_id);
  }
  // high: base@a + 4 prunes first
  for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i], high) << i;
  EXPECT_NE(got[5], got[6]) << "equal priorities alternate (fewest running tasks first)";
  EXPECT_TRUE((got[5] == low || got[5] == peer) && (got[6] == low || got[6] == peer));
  auto workers = core_->Workers();
  EXPECT_EQ(workers[0].slots, 8u);
  EXPECT_NE(workers[0].task_id.find(", "), std::string::npos) << "every slot's task is listed";
  auto bad = core_->Handle(RequestWorkMsg{w, 8});
  EXPECT_EQ(std::get<ErrorMsg>(*bad).code, "bad_request") << "slot out of range";
}

TEST_F(CoordinatorTest, GpuWorkersGetPruningFirstCpuWorkersWhenNoGpuSlotIsFree) {
  Submit(R"(
name: g
model: mlp
sweep: {criterion: l1, granularity: unstructured, sparsity: [0.1, 0.2]}
targets: [a]
)");
  HardwareFingerprint gpu;
  gpu.device = "cuda:0";
  std::string g = std::get<RegisterReplyMsg>(*core_->Handle(RegisterMsg{"", "gpu-box", gpu, 1, {}})).worker_id;
  std::string c = Register("a");
  auto train = Pull(c);
  EXPECT_FALSE(train) << "training goes to the idle GPU worker";
  train = Pull(g);
  ASSERT_TRUE(train);
  ASSERT_TRUE(Report(g, *train).accepted);
  auto t1 = Pull(g);
  ASSERT_TRUE(t1 && t1->kind == TaskKind::kPruneTrial);
  auto base = Pull(c);
  ASSERT_TRUE(base && base->task_id == "base@a");
  ASSERT_TRUE(Report(c, *base).accepted);
  auto t2 = Pull(c);
  ASSERT_TRUE(t2 && t2->kind == TaskKind::kPruneTrial) << "the GPU's only slot is busy: the CPU worker prunes";
}

TEST_F(CoordinatorTest, StatusNamesTargetsThatHaveNoLiveWorker) {
  Submit();
  std::string wa = Register("a");
  auto train = Pull(wa);
  ASSERT_TRUE(Report(wa, *train).accepted);
  auto note = core_->Sweeps()[0].note;
  EXPECT_NE(note.find("no live worker for target(s): b ("), std::string::npos) << note;  // not a: it has one
  Register("b");
  EXPECT_TRUE(core_->Sweeps()[0].note.empty());
}

TEST_F(CoordinatorTest, SilentWorkerIsDeclaredDeadAndItsTaskRequeuedLateResultCountedOnce) {
  std::string sweep = Submit();
  std::string w1 = Register("a");
  auto train = Pull(w1);
  ASSERT_TRUE(train);
  clock_.AdvanceMs(2000);
  core_->Tick();
  EXPECT_TRUE(core_->Workers()[0].alive) << "2 s is within 3 heartbeat intervals";
  clock_.AdvanceMs(1500);
  core_->Tick();
  EXPECT_FALSE(core_->Workers()[0].alive);

  std::string w2 = Register("b");
  auto again = Pull(w2);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->task_id, "train");
  EXPECT_EQ(again->attempt, 2u);
  // The "dead" worker comes back with its result: accepted once (first result wins)...
  ASSERT_TRUE(Report(w1, *train).accepted);
  // ...and the second attempt's result is a duplicate.
  EXPECT_FALSE(Report(w2, *again).accepted);
  EXPECT_EQ(ResultCount(sweep), 1u);
}

// A partition: the worker is declared dead and its task requeued, but it kept running it.
// Its first heartbeat after the heal gives the task back to it (nobody else took it), so the
// work is not done twice; a task someone else took meanwhile stays theirs.
TEST_F(CoordinatorTest, AWorkerBackFromAPartitionKeepsTheTaskItStillRunsUnlessTaken) {
  std::string sweep = Submit();
  std::string w1 = Register("a");
  auto train = Pull(w1);
  ASSERT_TRUE(train);
  clock_.AdvanceMs(3500);
  core_->Tick();
  ASSERT_FALSE(core_->Workers()[0].alive);
  core_->Handle(HeartbeatMsg{w1, sweep + "/train", "training", 0.7, 0});
  EXPECT_TRUE(core_->Workers()[0].alive);
  std::string w2 = Register("b");
  EXPECT_FALSE(Pull(w2)) << "train is w1's again: nothing else is ready";
  ASSERT_TRUE(Report(w1, *train).accepted);
  EXPECT_EQ(ResultCount(sweep), 1u);

  // Now w1 is cut off while pruning, and w2 takes the requeued trial before w1 comes back.
  auto prune = Pull(w1);
  ASSERT_TRUE(prune);
  if (prune->kind != TaskKind::kPruneTrial) {  // base@a first: w1's own target
    ASSERT_TRUE(Report(w1, *prune).accepted);
    prune = Pull(w1);
    ASSERT_TRUE(prune);
  }
  ASSERT_EQ(prune->kind, TaskKind::kPruneTrial);
  clock_.AdvanceMs(3500);
  core_->Handle(HeartbeatMsg{w2, "", "idle", 0, 0});
  core_->Tick();
  std::optional<Task> taken;
  for (int i = 0; i < 10 && !(taken && taken->task_id == prune->task_id); ++i) {
    if (taken) ASSERT_TRUE(Report(w2, *taken).accepted);
    taken = Pull(w2);
    ASSERT_TRUE(taken);
  }
  ASSERT_EQ(taken->task_id, prune->task_id);
  core_->Handle(HeartbeatMsg{w1, sweep + "/" + prune->task_id, "fine-tuning", 0.9, 0});
  EXPECT_EQ(core_->Workers()[0].task_id, "") << "taken by w2 meanwhile: not w1's again";
  EXPECT_TRUE(Report(w1, *prune).accepted) << "the first result is recorded, whatever its attempt";
  EXPECT_FALSE(Report(w2, *taken).accepted);
}

TEST_F(CoordinatorTest, TaskFailsAfterMaxAttemptsWithEveryReason) {
  std::string sweep = Submit();
  for (int i = 0; i < 3; ++i) {
    std::string w = Register("a");
    ASSERT_TRUE(Pull(w));
    clock_.AdvanceMs(10000);
    core_->Tick();
  }
  auto results = ReadResults(*store_, sweep).value();
  ASSERT_FALSE(results.empty());
  EXPECT_FALSE(results[0].ok);
  EXPECT_NE(results[0].error.find("gave up after 3 attempts"), std::string::npos) << results[0].error;
  // The lost baseline fails its dependents too (the confirmation rounds included), so the sweep still finishes.
  EXPECT_EQ(results.size(), 9u);
  EXPECT_EQ(core_->Sweeps()[0].failed, 6u);
  EXPECT_EQ(core_->Sweeps()[0].state, "done");
}

TEST_F(CoordinatorTest, FailedBaselineFailsEveryDependentTrialWithReason) {
  std::string sweep = Submit();
  std::string w = Register("a");
  auto train = Pull(w);
  ASSERT_TRUE(Report(w, *train, /*ok=*/false).accepted);
  auto results = ReadResults(*store_, sweep).value();
  ASSERT_EQ(results.size(), 9u);  // the confirmation rounds fail with the same reason
  for (const auto& r : results) {
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("NaN loss"), std::string::npos);
  }
  EXPECT_EQ(core_->Sweeps()[0].state, "done");
  EXPECT_EQ(core_->Sweeps()[0].failed, 6u);
}

TEST_F(CoordinatorTest, CorruptedBaselineArtifactIsRecordedAsFailure) {
  std::string sweep = Submit();
  std::string w = Register("a");
  auto train = Pull(w);
  SubmitResultMsg m;
  m.worker_id = w;
  m.result.sweep_id = sweep;
  m.result.task_id = "train";
  m.result.kind = TaskKind::kTrainBaseline;
  m.result.ok = true;
  m.artifact = "model-bytes";
  m.result.artifact_hash = ContentHash("other-bytes");
  core_->Handle(m);
  auto results = ReadResults(*store_, sweep).value();
  EXPECT_FALSE(results[0].ok);
  EXPECT_NE(results[0].error.find("hash mismatch"), std::string::npos);
}

TEST_F(CoordinatorTest, RestartKeepsRunningTasksWithWorkersThatReportThemAndRequeuesTheRest) {
  std::string sweep = Submit();
  std::string w = Register("a"), lost = Register("b");
  ASSERT_TRUE(Report(w, *Pull(w)).accepted);  // train
  core_->Handle(RegisterMsg{w, "a", {}, 2, {}});
  auto t0 = Pull(w, 0), t1 = Pull(w, 1), t2 = Pull(lost);
  ASSERT_TRUE(t0 && t1 && t2);
  // "Kill" the coordinator: a new one on the same store.
  core_ = std::make_unique<Coordinator>(*store_, clock_);
  ASSERT_TRUE(core_->Recover().ok());
  auto s = core_->Sweeps();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, sweep);
  // w asks for work: it is told to register again...
  auto r = core_->Handle(RequestWorkMsg{w, 0});
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(*r));
  EXPECT_EQ(std::get<ErrorMsg>(*r).code, "unregistered");
  // ...and does, reporting that slot 1 still runs t1 (slot 0 lost its task).
  core_->Handle(RegisterMsg{w, "a", {}, 2, {{sweep, t1->task_id, t1->attempt, 1}}});
  // The silent worker's task is requeued after the dead-worker interval; t1 is not.
  clock_.AdvanceMs(3500);
  core_->Handle(HeartbeatMsg{w, "", "fine-tuning", 0.5, 1});
  core_->Tick();
  std::set<std::string> handed;
  for (const auto& w2 : {Register("a"), Register("b")})
    while (auto t = Pull(w2)) {
      handed.insert(t->task_id + "#" + std::to_string(t->attempt));
      ASSERT_TRUE(Report(w2, *t).accepted);
    }
  EXPECT_TRUE(handed.count(t0->task_id + "#2")) << "slot 0's task was run again";
  EXPECT_TRUE(handed.count(t2->task_id + "#2")) << "the silent worker's task was run again";
  EXPECT_FALSE(handed.count(t1->task_id + "#2")) << "t1 stayed with the worker that reported it";
  auto ack = Report(w, *t1);
  EXPECT_TRUE(ack.accepted) << ack.note;
  EXPECT_EQ(Submit(), "sw-0002") << "sweep ids continue after a restart";
}

TEST_F(CoordinatorTest, SecondSweepReusesCachedBaseline) {
  Submit();
  std::string w = Register("a");
  auto train = Pull(w);
  ASSERT_TRUE(Report(w, *train).accepted);
  std::string second = Submit();
  auto t = Pull(w);
  ASSERT_TRUE(t);
  // The first sweep's remaining tasks come first; drain until we reach the second sweep.
  while (t && t->sweep_id != second) {
    ASSERT_TRUE(Report(w, *t).accepted);
    t = Pull(w);
  }
  ASSERT_TRUE(t);
  EXPECT_NE(t->kind, TaskKind::kTrainBaseline) << "baseline must come from the cache";
  EXPECT_EQ(t->baseline_artifact, ContentHash("model-bytes"));
}

TEST_F(CoordinatorTest, UnexpectedMessagesGetAnErrorNotACrash) {
  auto r = core_->Handle(AssignMsg{});
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<ErrorMsg>(*r).code, "unexpected_message");
  EXPECT_FALSE(core_->Handle(ErrorMsg{"x", "y"}).has_value());
  auto unknown = std::get<ResultAckMsg>(*core_->Handle(SubmitResultMsg{"w", TrialResult{}, ""}));
  EXPECT_FALSE(unknown.accepted);
  auto missing = core_->Handle(StatusRequestMsg{"sw-9999"});
  EXPECT_EQ(std::get<ErrorMsg>(*missing).code, "not_found");
}

// A worker whose timings are noisy by design: the machine's speed at the moment of a timing
// multiplies every latency (0.5x to 1.8x, the 2x spread a user saw between runs), A/B rounds
// see a little of it, and a confirmation round times every model in each round, so a round's
// moment cancels out of the ratios. Truly: dense 2.0 ms, t001 (30 %) 1.0 ms, t002 (50 %)
// 1.15 ms; t002 is smaller. Only the confirmation round can tell which is faster.
class NoisyTimingExecutor {
 public:
  SubmitResultMsg Run(const std::string& worker, const Task& t) {
    SubmitResultMsg m;
    m.worker_id = worker;
    TrialResult& r = m.result;
    r = ResultFor(t);
    r.ok = true;
    r.worker_id = worker;
    switch (t.kind) {
      case TaskKind::kTrainBaseline:
        m.artifact = "dense-model";
        r.artifact_hash = ContentHash(m.artifact);
        break;
      case TaskKind::kPruneTrial:
        m.artifact = "variant-" + t.task_id;
        r.artifact_hash = ContentHash(m.artifact);
        r.accuracy = 0.895;
        r.model_bytes = t.trial.sparsity < 0.4 ? 450 : 400;  // both pass the 50 % memory gate
        break;
      case TaskKind::kEvaluateBaseline:
        r.accuracy = 0.90;
        r.model_bytes = 1000;
        r.latency_p90_ms = 2.0 * 1.0;  // a calm moment
        r.deployable_form = "frozen";
        break;
      case TaskKind::kBenchmarkVariant: {
        // t001 timed at a slow moment, t002 at a fast one; their A/B rounds each a bit off.
        const bool t001 = t.task_id.rfind("t001", 0) == 0;
        r.latency_p90_ms = t001 ? 1.0 * 1.8 : 1.15 * 0.5;
        r.speedup_p90 = t001 ? 1.6 : 2.2;  // truly 2.0 and 1.74
        r.deployable_form = "dense";
        break;
      }
      case TaskKind::kConfirmTarget: {
        confirm_task = t;
        ConfirmationRound round;
        round.rounds = t.benchmark.confirm_rounds;
        round.threads = t.benchmark.threads;
        const double moments[] = {1.0, 1.8, 0.5, 1.3, 0.7, 1.6, 0.9};
        for (const auto& c : t.candidates) {
          const double truth = c.task_id == "base@local" ? 2.0 : c.task_id.rfind("t001", 0) == 0 ? 1.0 : 1.15;
          ConfirmedModel cm{c.task_id, c.form, {}};
          for (uint32_t i = 0; i < round.rounds; ++i)
            cm.p90_ms.push_back(truth * moments[i % 7] * (1 + 0.02 * (((i + cm.task_id.size()) % 3) - 1.0)));
          round.models.push_back(cm);
        }
        SummarizeConfirmation(&round);
        r.benchmark_json = nlohmann::json{{"confirmation", ToJson(round)}}.dump();
        break;
      }
      default:
        break;
    }
    return m;
  }
  std::optional<Task> confirm_task;
};

TEST_F(CoordinatorTest, TheConfirmationRoundWaitsForItsTargetAndChoosesTheTrulyFasterVariant) {
  const char* spec = R"(
name: noisy
model: cnn
sweep: {criterion: l1, granularity: channel, sparsity: [0.3, 0.5]}
benchmark: {threads: 2, confirm_rounds: 5}
targets: [local]
)";
  std::string sweep = Submit(spec);
  std::string w = Register("local");
  NoisyTimingExecutor worker;
  std::vector<std::string> order;
  for (int step = 0; step < 20; ++step) {
    auto t = Pull(w);
    if (!t) break;
    order.push_back(t->task_id);
    if (t->kind == TaskKind::kBenchmarkVariant || t->kind == TaskKind::kEvaluateBaseline || t->kind == TaskKind::kConfirmTarget)
      EXPECT_EQ(t->benchmark.threads, 2u) << t->task_id << ": timed with the target's threads";
    auto ack = std::get<ResultAckMsg>(*core_->Handle(worker.Run(w, *t)));
    ASSERT_TRUE(ack.accepted) << t->task_id << ": " << ack.note;
  }
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(order.back(), "confirm@local") << "the round runs once every other row of its target is in";
  ASSERT_TRUE(worker.confirm_task);
  std::vector<std::string> candidates;
  for (const auto& c : worker.confirm_task->candidates) candidates.push_back(c.task_id);
  EXPECT_EQ(candidates, (std::vector<std::string>{"base@local", "t002@local", "t001@local"}))
      << "the baseline first, then by the A/B-scaled latency";
  EXPECT_EQ(worker.confirm_task->candidates[0].artifact, ContentHash("dense-model"));
  EXPECT_EQ(worker.confirm_task->candidates[0].form, "frozen") << "each in the form its benchmark chose";
  EXPECT_EQ(worker.confirm_task->candidates[1].artifact, ContentHash("variant-t002"));

  auto results = ReadResults(*store_, sweep);
  ASSERT_TRUE(results.ok());
  DecisionOptions o;
  auto d = Decide(results.value(), o);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_NE(d[0].recommended, nullptr) << d[0].why;
  EXPECT_EQ(d[0].recommended->task_id, "t001@local") << d[0].why;
  // Without the round the same rows pick t002: the noise would have decided.
  std::vector<TrialResult> without;
  for (const auto& r : results.value())
    if (r.kind != TaskKind::kConfirmTarget) without.push_back(r);
  auto guess = Decide(without, o);
  ASSERT_NE(guess[0].recommended, nullptr);
  EXPECT_EQ(guess[0].recommended->task_id, "t002@local") << guess[0].why;
  auto status = std::get<StatusReplyMsg>(*core_->Handle(StatusRequestMsg{sweep}));
  ASSERT_EQ(status.sweeps.size(), 1u);
  EXPECT_EQ(status.sweeps[0].state, "done");
}

// A coordinator restarted while a target's round waits to run hands it out as it was chosen;
// one restarted after every row was in but before the round was released (a crash between the
// two writes) releases it on recovery.
TEST_F(CoordinatorTest, AConfirmationRoundSurvivesARestartAndIsReleasedOnRecovery) {
  const char* spec = R"(
name: restart
model: cnn
sweep: {criterion: l1, granularity: channel, sparsity: [0.3, 0.5]}
targets: [local]
)";
  std::string sweep = Submit(spec);
  std::string w = Register("local");
  NoisyTimingExecutor worker;
  for (int step = 0; step < 20; ++step) {
    auto t = Pull(w);
    ASSERT_TRUE(t);
    if (t->kind == TaskKind::kConfirmTarget) break;  // chosen and handed out once
    ASSERT_TRUE(std::get<ResultAckMsg>(*core_->Handle(worker.Run(w, *t))).accepted);
  }
  // Restart: the round (pending, its worker gone) comes back with the same candidates.
  core_ = std::make_unique<Coordinator>(*store_, clock_);
  ASSERT_TRUE(core_->Recover().ok());
  clock_.AdvanceMs(60000);
  core_->Tick();
  w = Register("local");
  auto again = Pull(w);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->task_id, "confirm@local");
  ASSERT_EQ(again->candidates.size(), 3u);
  EXPECT_EQ(again->candidates[0].task_id, "base@local");

  // The crash between the last row and the release: put the round back to blocked in the
  // store, as it was before the release was written, and recover.
  auto rec = store_->Get(TaskKey(sweep, "confirm@local"));
  ASSERT_TRUE(rec.ok() && rec.value());
  auto record = DecodeTaskRecord(*rec.value());
  ASSERT_TRUE(record.ok());
  record->state = "blocked";
  record->worker.clear();
  record->task.candidates.clear();
  ASSERT_TRUE(store_->Apply({{TaskKey(sweep, "confirm@local"), EncodeTaskRecord(record.value())},
                             {RunKey(sweep, "confirm@local"), std::nullopt}})
                  .ok());
  core_ = std::make_unique<Coordinator>(*store_, clock_);
  ASSERT_TRUE(core_->Recover().ok());
  w = Register("local");
  auto released = Pull(w);
  ASSERT_TRUE(released) << "recovery releases a round whose target is complete";
  EXPECT_EQ(released->task_id, "confirm@local");
  EXPECT_EQ(released->candidates.size(), 3u);
  ASSERT_TRUE(std::get<ResultAckMsg>(*core_->Handle(worker.Run(w, *released))).accepted);
  EXPECT_EQ(core_->Sweeps()[0].state, "done");
}

TEST_F(CoordinatorTest, AConfirmationRoundWithNothingToCompareIsSkippedWithItsReason) {
  const char* spec = R"(
name: alone
model: cnn
sweep: {criterion: l1, granularity: channel, sparsity: [0.5]}
targets: [local]
)";
  std::string sweep = Submit(spec);
  std::string w = Register("local");
  NoisyTimingExecutor worker;
  for (int step = 0; step < 10; ++step) {
    auto t = Pull(w);
    if (!t) break;
    ASSERT_NE(t->kind, TaskKind::kConfirmTarget) << "nothing to confirm: the variant failed";
    SubmitResultMsg m = worker.Run(w, *t);
    if (t->kind == TaskKind::kPruneTrial) {
      m.result.ok = false;
      m.result.error = "NaN loss";
      m.artifact.clear();
    }
    ASSERT_TRUE(std::get<ResultAckMsg>(*core_->Handle(m)).accepted);
  }
  auto results = ReadResults(*store_, sweep);
  ASSERT_TRUE(results.ok());
  bool skipped = false;
  for (const auto& r : results.value())
    if (r.kind == TaskKind::kConfirmTarget) {
      EXPECT_TRUE(r.ok);
      auto round = ConfirmationFromJson(r.benchmark_json);
      ASSERT_TRUE(round.ok());
      EXPECT_EQ(round->skipped, "fewer than two models benchmarked on this target");
      skipped = true;
    }
  EXPECT_TRUE(skipped);
  auto d = Decide(results.value(), DecisionOptions{});
  bool noted = false;
  for (const auto& n : d[0].notes) noted |= n.find("no confirmation round: fewer than two") != std::string::npos;
  EXPECT_TRUE(noted);
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

TEST_F(CoordinatorTest, IterativeRoundsAreStoredAsRowsWithTheFinalResultAndVariantsKept) {
  std::string sweep = Submit(R"(
name: iter
model: mlp
sweep: {criterion: l1, granularity: unstructured, sparsity: [0.9], schedule: {type: iterative, rounds: 3}}
targets: [a]
)");
  std::string w = Register("a");
  ASSERT_TRUE(Report(w, *Pull(w)).accepted);  // baseline
  auto eval = Pull(w);
  ASSERT_TRUE(eval && eval->kind == TaskKind::kEvaluateBaseline);
  ASSERT_TRUE(Report(w, *eval).accepted);
  auto trial = Pull(w);
  ASSERT_TRUE(trial && trial->kind == TaskKind::kPruneTrial);
  EXPECT_EQ(trial->trial.rounds, 3u);
  SubmitResultMsg m;
  m.worker_id = w;
  m.result.sweep_id = sweep;
  m.result.task_id = trial->task_id;
  m.result.attempt = trial->attempt;
  m.result.kind = TaskKind::kPruneTrial;
  m.result.ok = true;
  m.result.round = 3;
  m.artifact = "pruned-bytes";
  m.result.artifact_hash = ContentHash(m.artifact);
  for (uint32_t r = 1; r <= 2; ++r) {
    TrialResult im = m.result;
    im.round = r;
    im.artifact_hash.clear();
    m.result.intermediates.push_back(im);
  }
  auto ack = std::get<ResultAckMsg>(*core_->Handle(m));
  ASSERT_TRUE(ack.accepted) << ack.note;
  auto bench = Pull(w);
  ASSERT_TRUE(bench && bench->kind == TaskKind::kBenchmarkVariant);
  ASSERT_TRUE(Report(w, *bench).accepted);
  auto rows = ReadResults(*store_, sweep).value();
  std::set<std::string> ids;
  for (const auto& r : rows) ids.insert(r.task_id);
  EXPECT_TRUE(ids.count(trial->task_id + "@a/r1")) << "round 1 is a row of its own, per target";
  EXPECT_TRUE(ids.count(trial->task_id + "@a/r2"));
  EXPECT_TRUE(ids.count(trial->task_id + "@a"));
  EXPECT_FALSE(ids.count(trial->task_id)) << "the pruning stage is not a row";
  auto art = std::get<ArtifactReplyMsg>(*core_->Handle(FetchArtifactMsg{ContentHash("pruned-bytes")}));
  EXPECT_TRUE(art.found) << "the pruned variant is kept for export";
}

TEST_F(CoordinatorTest, UserModelTravelsWithTheSpecAndIsServedToWorkers) {
  const char* spec = R"(
name: mine
model: {torchscript: net.pt, input_shape: [1, 28, 28]}
training: {epochs: 0}
sweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}
)";
  auto missing = core_->Handle(SubmitSweepMsg{spec, ""});
  ASSERT_NE(std::get_if<ErrorMsg>(&*missing), nullptr) << "the file must come with the spec";
  auto not_torchscript = core_->Handle(SubmitSweepMsg{spec, "#!/bin/sh\necho hi\n"});
  ASSERT_NE(std::get_if<ErrorMsg>(&*not_torchscript), nullptr);
  EXPECT_NE(std::get<ErrorMsg>(*not_torchscript).message.find("is not a TorchScript file"), std::string::npos)
      << std::get<ErrorMsg>(*not_torchscript).message;
  EXPECT_TRUE(core_->Sweeps().empty()) << "nothing stored for a refused submission";
  auto ok = std::get<SubmitReplyMsg>(*core_->Handle(SubmitSweepMsg{spec, kZipBytes}));
  std::string w = Register("local");
  auto train = Pull(w);
  ASSERT_TRUE(train);
  EXPECT_EQ(train->model_artifact, ContentHash(kZipBytes));
  EXPECT_EQ(train->input_shape, (std::vector<int64_t>{1, 28, 28}));
  auto art = std::get<ArtifactReplyMsg>(*core_->Handle(FetchArtifactMsg{train->model_artifact}));
  EXPECT_TRUE(art.found);
  EXPECT_FALSE(ok.sweep_id.empty());
}

TEST_F(CoordinatorTest, PausedSweepsHoldTheirTasksAndCancelledOnesFailWhatIsUnfinished) {
  std::string sweep = Submit();
  std::string w = Register("a");
  auto control = [&](const std::string& action) {
    auto r = core_->Handle(SweepControlMsg{sweep, action});
    if (auto* e = std::get_if<ErrorMsg>(&*r)) return "error: " + e->message;
    return std::get<StatusReplyMsg>(*r).sweeps.at(0).state;
  };
  EXPECT_EQ(control("pause"), "paused");
  EXPECT_FALSE(Pull(w)) << "a paused sweep hands out nothing";
  // The pause survives a coordinator restart.
  core_ = std::make_unique<Coordinator>(*store_, clock_);
  ASSERT_TRUE(core_->Recover().ok());
  w = Register("a");
  EXPECT_FALSE(Pull(w));
  EXPECT_EQ(control("resume"), "running");
  auto train = Pull(w);
  ASSERT_TRUE(train);
  EXPECT_EQ(control("cancel"), "cancelled");
  auto late = Report(w, *train);
  EXPECT_FALSE(late.accepted) << "the running task was cancelled: its late result is discarded";
  auto rows = ReadResults(*store_, sweep).value();
  EXPECT_EQ(rows.size(), 8u);  // per target a and b: the baseline evaluation, 2 trials and the confirmation round
  for (const auto& r : rows) {
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("cancelled by the user"), std::string::npos) << r.error;
  }
  EXPECT_NE(control("stop"), "cancelled");
  auto unknown = core_->Handle(SweepControlMsg{"sw-9999", "pause"});
  EXPECT_TRUE(std::holds_alternative<ErrorMsg>(*unknown));
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

// A store whose writes fail while `broken` is set (a full disk, an I/O error), behind the
// same interface as the real ones.
class FlakyStore final : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  bool broken = false;
  Status Apply(const std::vector<StoreWrite>& b) override {
    return broken ? Status::IoError("injected: no space left on device") : StoreWrapper::Apply(b);
  }
  Status Sync() override { return broken ? Status::IoError("injected: fsync failed") : StoreWrapper::Sync(); }
};

TEST(CoordinatorStoreFaultTest, AFailedWriteIsNotAcknowledgedAndTheResentResultIsRecordedOnce) {
  auto mem = NewMemoryStore();
  FlakyStore store(*mem);
  FakeClock clock;
  Coordinator core(store, clock);
  auto sub = std::get<SubmitReplyMsg>(*core.Handle(SubmitSweepMsg{
      "name: f\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n", ""}));
  std::string w = std::get<RegisterReplyMsg>(*core.Handle(RegisterMsg{"", "local", {}, 1, {}})).worker_id;
  Task train = std::get<AssignMsg>(*core.Handle(RequestWorkMsg{w, 0})).task;
  SubmitResultMsg m{w, ResultFor(train), "model-bytes"};
  m.result.ok = true;
  m.result.artifact_hash = ContentHash("model-bytes");
  store.broken = true;
  auto refused = core.Handle(m);
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(*refused)) << "never acknowledge what is not on disk";
  EXPECT_EQ(std::get<ErrorMsg>(*refused).code, "store_error");
  EXPECT_NE(std::get<ErrorMsg>(*refused).message.find("send it again"), std::string::npos);
  EXPECT_TRUE(IsError(core.Commit(), Status::Code::kIoError, ""));
  EXPECT_EQ(core.Sweeps()[0].state, "running");
  // A worker asking for work while the store is broken, with a task ready for it (a second
  // sweep's training), gets a store error and no task.
  store.broken = false;
  ASSERT_TRUE(std::holds_alternative<SubmitReplyMsg>(*core.Handle(SubmitSweepMsg{
      "name: g\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n", ""})));
  ASSERT_TRUE(core.Commit().ok());
  std::string w2 = std::get<RegisterReplyMsg>(*core.Handle(RegisterMsg{"", "local", {}, 1, {}})).worker_id;
  ASSERT_TRUE(core.Commit().ok());
  store.broken = true;
  auto none = core.Handle(RequestWorkMsg{w2, 0});
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(*none)) << "no task may be handed out that the store did not record";
  EXPECT_EQ(std::get<ErrorMsg>(*none).code, "store_error");
  store.broken = false;
  auto later = core.Handle(RequestWorkMsg{w2, 0});
  ASSERT_TRUE(std::holds_alternative<AssignMsg>(*later)) << "the ready task is still there once the store writes";
  EXPECT_EQ(std::get<AssignMsg>(*later).task.sweep_id, "sw-0002");
  auto ack = std::get<ResultAckMsg>(*core.Handle(m));
  EXPECT_TRUE(ack.accepted) << ack.note;
  EXPECT_FALSE(std::get<ResultAckMsg>(*core.Handle(m)).accepted) << "the retry after success is a duplicate";
  auto rows = ReadResults(*mem, sub.sweep_id).value();
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(), [](const TrialResult& r) { return r.task_id == "train"; }), 1);
}

TEST(CoordinatorStoreFaultTest, ASilentWorkersTaskIsRequeuedOnceTheStoreWritesAgain) {
  auto mem = NewMemoryStore();
  FlakyStore store(*mem);
  FakeClock clock;
  Coordinator core(store, clock);
  core.Handle(SubmitSweepMsg{"name: f\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n", ""});
  std::string w = std::get<RegisterReplyMsg>(*core.Handle(RegisterMsg{"", "local", {}, 1, {}})).worker_id;
  ASSERT_TRUE(std::holds_alternative<AssignMsg>(*core.Handle(RequestWorkMsg{w, 0})));
  store.broken = true;
  clock.AdvanceMs(5000);
  core.Tick();
  EXPECT_FALSE(core.Workers()[0].alive);
  EXPECT_FALSE(core.Workers()[0].task_id.empty()) << "the requeue could not be written: the task stays held";
  store.broken = false;
  core.Tick();
  EXPECT_TRUE(core.Workers()[0].task_id.empty());
  std::string w2 = std::get<RegisterReplyMsg>(*core.Handle(RegisterMsg{"", "local", {}, 1, {}})).worker_id;
  auto again = core.Handle(RequestWorkMsg{w2, 0});
  ASSERT_TRUE(std::holds_alternative<AssignMsg>(*again));
  EXPECT_EQ(std::get<AssignMsg>(*again).task.task_id, "train");
  EXPECT_EQ(std::get<AssignMsg>(*again).task.attempt, 2u);
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

// Limits are checked before anything is stored, and the error names the limit and the value.
TEST(CoordinatorLimitsTest, ASweepOverTheTrialLimitIsRefusedBeforeAnythingIsStored) {
  auto store = NewMemoryStore();
  FakeClock clock;
  CoordinatorOptions o;
  o.max_trials_per_sweep = 100;
  Coordinator core(*store, clock, o);
  std::string sparsities;
  for (int i = 1; i <= 101; ++i) sparsities += (i > 1 ? ", " : "") + std::to_string(i / 102.0);
  auto r = core.Handle(SubmitSweepMsg{"name: big\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, "
                                      "sparsity: [" + sparsities + "]}\n", ""});
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(*r));
  const std::string msg = std::get<ErrorMsg>(*r).message;
  EXPECT_NE(msg.find("101 trials"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at most 100"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--max-trials"), std::string::npos) << msg;
  size_t keys = 0;
  ASSERT_TRUE(store->Scan("", [&](const std::string&, const std::string&) { ++keys; }).ok());
  EXPECT_EQ(keys, 0u);
  EXPECT_TRUE(core.Sweeps().empty());
}

TEST(CoordinatorLimitsTest, AWorkerClaimingTooManySlotsIsRefused) {
  auto store = NewMemoryStore();
  FakeClock clock;
  Coordinator core(*store, clock);
  auto r = core.Handle(RegisterMsg{"", "local", {}, 7000, {}});
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(*r));
  EXPECT_NE(std::get<ErrorMsg>(*r).message.find("at most 256 slots"), std::string::npos);
  EXPECT_TRUE(core.Workers().empty());
  EXPECT_TRUE(std::holds_alternative<RegisterReplyMsg>(*core.Handle(RegisterMsg{"", "local", {}, 256, {}})));
}

// Cancelling a big sweep writes bounded batches (memory for one batch, not the sweep), and
// every unfinished task still ends failed with the reason.
TEST(CoordinatorLimitsTest, CancellingABigSweepWritesInBoundedBatches) {
  class BatchSizes final : public StoreWrapper {
   public:
    using StoreWrapper::StoreWrapper;
    Status Apply(const std::vector<StoreWrite>& b) override {
      largest = std::max(largest, b.size());
      return StoreWrapper::Apply(b);
    }
    size_t largest = 0;
  };
  auto mem = NewMemoryStore();
  BatchSizes store(*mem);
  FakeClock clock;
  Coordinator core(store, clock);
  std::string sparsities;
  for (int i = 1; i <= 900; ++i) sparsities += (i > 1 ? ", " : "") + std::to_string(i / 901.0);
  auto sub = core.Handle(SubmitSweepMsg{"name: big\nmodel: mlp\nsweep: {criterion: [l1, l2, random], granularity: unstructured, "
                                        "sparsity: [" + sparsities + "]}\n", ""});
  ASSERT_TRUE(std::holds_alternative<SubmitReplyMsg>(*sub));
  store.largest = 0;
  auto r = core.Handle(SweepControlMsg{"sw-0001", "cancel"});
  ASSERT_TRUE(std::holds_alternative<StatusReplyMsg>(*r));
  EXPECT_LE(store.largest, 3u * 1000 + 1) << "one batch of at most 1000 tasks";
  const auto& st = std::get<StatusReplyMsg>(*r).sweeps.at(0);
  EXPECT_EQ(st.state, "cancelled");
  EXPECT_EQ(st.pending + st.running, 0u);
  auto rows = ReadResults(*mem, "sw-0001").value();
  EXPECT_EQ(rows.size(), 2700u + 1u + 1u)
      << "every trial's row (3 criteria x 900 sparsities), the baseline's and the confirmation round's, each failed";
  for (const auto& row : rows) EXPECT_EQ(row.error, "cancelled by the user") << row.task_id;
}

// A resend of one submission (its reply was lost) is answered with the stored sweep.
TEST(CoordinatorLimitsTest, AResentSubmissionIsStoredOnceAndAnsweredWithItsId) {
  auto store = NewMemoryStore();
  FakeClock clock;
  Coordinator core(*store, clock);
  const std::string spec = "name: s\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n";
  auto first = std::get<SubmitReplyMsg>(*core.Handle(SubmitSweepMsg{spec, "", "abc123"}));
  EXPECT_FALSE(first.already_stored);
  auto again = std::get<SubmitReplyMsg>(*core.Handle(SubmitSweepMsg{spec, "", "abc123"}));
  EXPECT_TRUE(again.already_stored);
  EXPECT_EQ(again.sweep_id, first.sweep_id);
  EXPECT_EQ(again.tasks, first.tasks);
  EXPECT_EQ(core.Sweeps().size(), 1u);
  auto other = std::get<SubmitReplyMsg>(*core.Handle(SubmitSweepMsg{spec, "", "def456"}));
  EXPECT_NE(other.sweep_id, first.sweep_id) << "another submission is another sweep";
  // The mapping is durable: a restarted coordinator still knows it.
  Coordinator restarted(*store, clock);
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(std::get<SubmitReplyMsg>(*restarted.Handle(SubmitSweepMsg{spec, "", "abc123"})).sweep_id, first.sweep_id);
}

}  // namespace
}  // namespace prunelab::coordinator
