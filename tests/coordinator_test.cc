// The coordinator's state machine with a FakeClock and an in-memory store: no sockets,
// no sleeps.
#include <gtest/gtest.h>

#include <set>

#include "common/hash.h"
#include "coordinator/coordinator.h"
#include "coordinator/store_view.h"

namespace prunelab::coordinator {
namespace {

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
  std::optional<Task> Pull(const std::string& worker) {
    auto r = core_->Handle(RequestWorkMsg{worker});
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

TEST_F(CoordinatorTest, BaselineFirstThenTrialsOnMatchingTargetsEachRecordedOnce) {
  std::string sweep = Submit();
  std::string wa = Register("a"), wb = Register("b");
  auto train = Pull(wa);
  ASSERT_TRUE(train);
  EXPECT_EQ(train->kind, TaskKind::kTrainBaseline);
  EXPECT_EQ(train->attempt, 1u);
  EXPECT_FALSE(Pull(wb)) << "trials must wait for the baseline";
  ASSERT_TRUE(Report(wa, *train).accepted);

  // The baseline artifact is now served to anyone who asks.
  auto art = std::get<ArtifactReplyMsg>(*core_->Handle(FetchArtifactMsg{ContentHash("model-bytes")}));
  EXPECT_TRUE(art.found);
  EXPECT_EQ(art.data, "model-bytes");

  int done = 0;
  for (const auto& w : {wa, wb}) {
    while (auto t = Pull(w)) {
      EXPECT_EQ(t->target, w == wa ? "a" : "b");
      EXPECT_EQ(t->baseline_artifact, ContentHash("model-bytes"));
      ASSERT_TRUE(Report(w, *t).accepted);
      EXPECT_FALSE(Report(w, *t).accepted) << "a duplicate must not be recorded";
      ++done;
    }
  }
  EXPECT_EQ(done, 6);  // 2 targets x (baseline eval + 2 trials)
  auto s = core_->Sweeps();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].state, "done");
  EXPECT_EQ(s[0].trials, 6u);
  EXPECT_EQ(s[0].done, 6u);
  EXPECT_EQ(ResultCount(sweep), 7u);  // incl. the training result
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
  // The lost baseline fails its dependents too, so the sweep still finishes.
  EXPECT_EQ(results.size(), 7u);
  EXPECT_EQ(core_->Sweeps()[0].failed, 6u);
  EXPECT_EQ(core_->Sweeps()[0].state, "done");
}

TEST_F(CoordinatorTest, FailedBaselineFailsEveryDependentTrialWithReason) {
  std::string sweep = Submit();
  std::string w = Register("a");
  auto train = Pull(w);
  ASSERT_TRUE(Report(w, *train, /*ok=*/false).accepted);
  auto results = ReadResults(*store_, sweep).value();
  ASSERT_EQ(results.size(), 7u);
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

TEST_F(CoordinatorTest, RestartRecoversSweepsAndRequeuesRunningTasks) {
  std::string sweep = Submit();
  std::string w = Register("a");
  auto train = Pull(w);
  ASSERT_TRUE(train);
  // "Kill" the coordinator: a new one on the same store.
  core_ = std::make_unique<Coordinator>(*store_, clock_);
  ASSERT_TRUE(core_->Recover().ok());
  auto s = core_->Sweeps();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, sweep);
  // The old worker is unknown now and is told to register again.
  auto r = core_->Handle(RequestWorkMsg{w});
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(*r));
  EXPECT_EQ(std::get<ErrorMsg>(*r).code, "unregistered");
  std::string w2 = Register("a");
  auto again = Pull(w2);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->task_id, "train");
  EXPECT_EQ(again->attempt, 2u);
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
  m.result.target = "a";
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
  auto rows = ReadResults(*store_, sweep).value();
  std::set<std::string> ids;
  for (const auto& r : rows) ids.insert(r.task_id);
  EXPECT_TRUE(ids.count(trial->task_id + "/r1")) << "round 1 is a row of its own";
  EXPECT_TRUE(ids.count(trial->task_id + "/r2"));
  EXPECT_TRUE(ids.count(trial->task_id));
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
  auto ok = std::get<SubmitReplyMsg>(*core_->Handle(SubmitSweepMsg{spec, "torchscript-bytes"}));
  std::string w = Register("local");
  auto train = Pull(w);
  ASSERT_TRUE(train);
  EXPECT_EQ(train->model_artifact, ContentHash("torchscript-bytes"));
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
  EXPECT_EQ(rows.size(), 6u);  // per target a and b: the baseline evaluation and 2 trials
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
