// Releases, rollback and continuous evaluation through the coordinator's state machine
// (FakeClock, in-memory store): a sweep is driven to its end with fixed figures, then its
// variants are released, evaluated on "clean" and "shifted" data and rolled back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/base/hash.h"
#include "tests/status_matchers.h"
#include "common/codec/records.h"
#include "coordinator/release/assess.h"
#include "coordinator/release/releases.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {
namespace {

using prunelab::testing::IsError;

using nlohmann::json;

const char* kSpec = R"(
name: release-me
model: cnn
sweep: {criterion: l1, granularity: [channel], sparsity: [0.5, 0.7]}
targets: [edge]
)";

// Per trial: accuracy and model bytes pruning measured (t001 passes the gates, t002 loses 5 points).
struct Figures {
  double accuracy;
  uint64_t bytes;
};
const std::map<std::string, Figures> kTrials = {{"t001", {0.895, 300}}, {"t002", {0.85, 200}}};

class ReleaseTest : public ::testing::Test {
 protected:
  ReleaseTest() : store_(NewMemoryStore()) { Restart(); }

  void Restart() {
    core_ = std::make_unique<Coordinator>(*store_, clock_);
    ASSERT_TRUE(core_->Recover().ok());
    worker_ = std::get<RegisterReplyMsg>(*core_->Handle(RegisterMsg{"", "edge", {}, 1, {}})).worker_id;
  }

  std::optional<Task> Pull() {
    auto r = core_->Handle(RequestWorkMsg{worker_, 0});
    if (auto* a = std::get_if<AssignMsg>(&*r)) return a->task;
    return std::nullopt;
  }

  ResultAckMsg Report(const Task& t, TrialResult r, std::string artifact = "") {
    r.sweep_id = t.sweep_id;
    r.task_id = t.task_id;
    r.attempt = t.attempt;
    r.kind = t.kind;
    r.target = t.target;
    r.worker_id = worker_;
    SubmitResultMsg m{worker_, r, artifact};
    return std::get<ResultAckMsg>(*core_->Handle(m));
  }

  // Runs the sweep to its end with the figures above.
  std::string RunSweep() {
    auto sub = std::get<SubmitReplyMsg>(*core_->Handle(SubmitSweepMsg{kSpec, ""}));
    while (auto t = Pull()) {
      TrialResult r;
      r.ok = true;
      std::string artifact;
      if (t->kind == TaskKind::kTrainBaseline) {
        artifact = "dense-model";
        r.artifact_hash = ContentHash(artifact);
      } else if (t->kind == TaskKind::kEvaluateBaseline) {
        r.baseline = true;
        r.accuracy = 0.9;
        r.per_class_accuracy = {0.95, 0.85};
        r.model_bytes = 1000;
        r.latency_p90_ms = 1.0;
      } else if (t->kind == TaskKind::kPruneTrial) {
        artifact = "variant-" + t->task_id;
        r.artifact_hash = ContentHash(artifact);
        r.accuracy = kTrials.at(t->task_id).accuracy;
        r.per_class_accuracy = {0.94, 0.85};
        r.model_bytes = kTrials.at(t->task_id).bytes;
        r.granularity = "channel";
        r.criterion = "l1";
      } else {
        r.latency_p90_ms = 0.5;
        r.latency_p95_ms = 0.55;
        r.throughput_sps = 5000;
      }
      EXPECT_TRUE(Report(*t, r, artifact).accepted);
    }
    EXPECT_EQ(core_->Sweeps().back().state, "done");
    return sub.sweep_id;
  }

  StatusOr<json> Ask(ReleaseCommandMsg m) {
    if (m.released_by.empty()) m.released_by = "alice";
    auto r = core_->Handle(m);
    if (auto* e = std::get_if<ErrorMsg>(&*r)) return Status::InvalidArgument(e->code + ": " + e->message);
    return json::parse(std::get<ReleaseReplyMsg>(*r).json);
  }

  // What a worker reports for an evaluation: brightness histogram counts over the release's
  // 3 bins, predicted-class counts, per-class accuracy; the reference run includes the teacher.
  TrialResult Evaluation(const Task& t, std::vector<uint64_t> counts, std::vector<uint64_t> predicted,
                         std::vector<double> per_class, double accuracy) {
    TrialResult r;
    r.ok = true;
    r.accuracy = accuracy;
    r.per_class_accuracy = per_class;
    r.latency_p95_ms = 0.6;
    r.throughput_sps = 4000;
    r.bench_valid = true;
    r.model_bytes = 300;
    json ev{{"release", t.evaluation.release}, {"reference", t.evaluation.reference}, {"labels", true}, {"samples", 1000},
            {"predicted", predicted}, {"features", {{"brightness_c0", {{"edges", {0.1, 0.2}}, {"counts", counts}}}}}};
    if (t.evaluation.compare_dense)
      ev["dense"] = {{"accuracy", 0.9}, {"per_class_accuracy", {0.95, 0.85}}, {"model_bytes", 1000}, {"latency_p95_ms", 1.1}};
    r.trial_json = json{{"evaluation", ev}}.dump();
    return r;
  }

  // Releases `trial`, runs its reference evaluation on the worker; returns the version.
  std::string ReleaseAndReference(const std::string& sweep, const std::string& trial, bool force = false) {
    ReleaseCommandMsg m{"release", "edge", sweep, trial, "first"};
    m.force = force;
    m.reason = force ? "accepted by the product owner" : "";
    auto r = Ask(m);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    auto t = Pull();
    EXPECT_TRUE(t.has_value());
    EXPECT_EQ(t->kind, TaskKind::kEvaluateRelease);
    EXPECT_TRUE(t->evaluation.reference);
    EXPECT_TRUE(t->evaluation.compare_dense) << "the reference run measures the teacher on the same data";
    EXPECT_EQ(t->variant_artifact, (*r)["artifact"]);
    EXPECT_EQ(t->baseline_artifact, ContentHash("dense-model"));
    EXPECT_TRUE(Report(*t, Evaluation(*t, {300, 400, 300}, {500, 500}, {0.94, 0.85}, 0.895)).accepted);
    return (*r)["version"];
  }

  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> core_;
  std::string worker_;
};

TEST_F(ReleaseTest, ReleaseGatesChangelogRollbackAndEvaluationLoopSurviveARestart) {
  const std::string sweep = RunSweep();

  // Nothing to evaluate before a release; unknown trials and targets are named.
  auto none = Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/x", "npy"});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("has no release"), std::string::npos);
  auto wrong = Ask({"release", "gpu", sweep, "recommended"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("its targets: edge"), std::string::npos);

  // v1: the recommendation (t001: 0.5 points down, 30 % of the dense bytes).
  EXPECT_EQ(ReleaseAndReference(sweep, "recommended"), "v1");
  auto h = Ask({"releases", "edge"});
  ASSERT_TRUE(h.ok());
  json v1 = (*h)["targets"][0]["releases"][0];
  EXPECT_EQ(v1["trial"], "t001@edge");
  EXPECT_EQ(v1["released_by"], "alice");
  EXPECT_EQ(v1["status"], "ok");
  EXPECT_TRUE(v1["known_good"].get<bool>());
  EXPECT_EQ(v1["changelog"]["against"], "the dense baseline");
  EXPECT_NEAR(v1["changelog"]["deltas"]["accuracy_points"].get<double>(), -0.5, 1e-9);
  EXPECT_EQ(v1["changelog"]["pattern"], "channel");

  // t002 fails the accuracy gate: refused with the gate named, then forced with a reason.
  auto refused = Ask({"release", "edge", sweep, "t002"});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("fails the release gates"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--force --reason"), std::string::npos);
  ReleaseCommandMsg no_reason{"release", "edge", sweep, "t002"};
  no_reason.force = true;
  EXPECT_TRUE(IsError(Ask(no_reason), Status::Code::kInvalidArgument, "--force needs --reason"));
  EXPECT_EQ(ReleaseAndReference(sweep, "t002", /*force=*/true), "v2");
  h = Ask({"releases", "edge"});
  json v2 = (*h)["targets"][0]["releases"][1];
  EXPECT_TRUE(v2["forced"].get<bool>());
  EXPECT_EQ(v2["force_reason"], "accepted by the product owner");
  EXPECT_EQ(v2["changelog"]["against"], "v1");
  EXPECT_EQ((*h)["targets"][0]["current"], "v2");

  // Policy: roll back on critical; a bad value is named.
  auto bad = Ask({"policy", "edge", "", "", "", false, "", "", "", "", "", false, R"({"on_critical": "panic"})"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("notify, rollback, resweep"), std::string::npos);
  ASSERT_TRUE(Ask({"policy", "edge", "", "", "", false, "", "", "", "", "", false, R"({"on_critical": "rollback"})"}).ok());

  // Clean data: the reference's distribution, the release's accuracy: every level ok.
  auto q = Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/clean", "npy"});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto t = Pull();
  ASSERT_TRUE(t && t->kind == TaskKind::kEvaluateRelease);
  EXPECT_FALSE(t->evaluation.reference);
  EXPECT_EQ(t->dataset.path, "/data/clean");
  EXPECT_EQ(t->dataset.mean, std::vector<double>{kFashionMnistMean}) << "IDX-trained model, npy data: same normalization";
  EXPECT_EQ(json::parse(t->evaluation.bins_json)["brightness_c0"], json({0.1, 0.2}));
  ASSERT_TRUE(Report(*t, Evaluation(*t, {310, 390, 300}, {490, 510}, {0.94, 0.85}, 0.895)).accepted);
  auto evs = Ask({"evaluations", "edge"});
  ASSERT_TRUE(evs.ok());
  json clean = (*evs)["evaluations"][0];
  EXPECT_EQ(clean["level"], "ok") << clean.dump(2);

  // Shifted data: brightness moved to the top bin, class 1 collapsed -> critical, rolled back.
  ASSERT_TRUE(Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/shifted", "npy"}).ok());
  t = Pull();
  ASSERT_TRUE(t);
  ASSERT_TRUE(Report(*t, Evaluation(*t, {20, 80, 900}, {900, 100}, {0.93, 0.40}, 0.70)).accepted);
  evs = Ask({"evaluations", "edge"});
  json shifted = (*evs)["evaluations"][0];
  EXPECT_EQ(shifted["level"], "critical");
  EXPECT_EQ(shifted["assessment"]["worst_slice"]["class"], 1) << "the slice that dropped most is named";
  EXPECT_NEAR(shifted["assessment"]["worst_slice"]["drop_points"].get<double>(), 45, 1e-9);
  EXPECT_EQ(shifted["action"], "rolled back to v1");
  std::map<std::string, std::string> levels;
  for (const auto& m : shifted["assessment"]["metrics"]) levels[m["metric"]] = m["level"];
  EXPECT_EQ(levels["psi_input"], "critical");
  EXPECT_EQ(levels["psi_predicted"], "critical");
  EXPECT_EQ(levels["accuracy_drop"], "critical");
  EXPECT_EQ(levels["latency_p95_ms"], "ok");

  // A restart keeps every release, event and evaluation.
  const std::string before = Ask({"releases", ""}).value().dump();
  Restart();
  h = Ask({"releases", ""});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->dump(), before);
  const json& target = (*h)["targets"][0];
  EXPECT_EQ(target["current"], "v1");
  ASSERT_EQ(target["events"].size(), 3u);  // release v1, release v2, rollback
  EXPECT_EQ(target["events"][2]["action"], "rollback");
  EXPECT_TRUE(target["events"][2]["automatic"].get<bool>());
  EXPECT_EQ(target["releases"][1]["status"], "critical");
  EXPECT_FALSE(target["releases"][1]["known_good"].get<bool>());

  // By hand: back to v2 explicitly, then the default goes to the last known-good (v1).
  auto to2 = Ask({"rollback", "edge", "", "", "", false, "", "v2"});
  ASSERT_TRUE(to2.ok()) << to2.status().ToString();
  EXPECT_EQ((*to2)["to"], "v2");
  auto back = Ask({"rollback", "edge"});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)["to"], "v1");
  auto nothing = Ask({"rollback", "edge"});
  ASSERT_FALSE(nothing.ok()) << "v1 has no known-good release before it";
  EXPECT_NE(nothing.status().message().find("no known-good release before v1"), std::string::npos);

  // Metrics: the latest evaluation of each release with its level.
  const std::string text = ReleaseBook::MetricsText(*store_);
  EXPECT_NE(text.find("prunelab_evaluation_level{target=\"edge\",release=\"v2\",current=\"false\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("prunelab_release_current_version{target=\"edge\"} 1"), std::string::npos);
  EXPECT_NE(text.find("prunelab_release_rollbacks_total{target=\"edge\"} 3"), std::string::npos);
}

TEST_F(ReleaseTest, AnEvaluationThatFailsOnTheWorkerIsRecordedAndTheReferenceMustBeReady) {
  const std::string sweep = RunSweep();
  ASSERT_TRUE(Ask({"release", "edge", sweep, "t001"}).ok());
  auto early = Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/clean", "npy"});
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.status().message().find("is pending"), std::string::npos);
  auto t = Pull();
  ASSERT_TRUE(t);
  TrialResult failed;
  failed.ok = false;
  failed.error = "dataset.path: no '/nope/test_images.npy'";
  ASSERT_TRUE(Report(*t, failed).accepted);
  auto h = Ask({"releases", "edge"});
  EXPECT_EQ((*h)["targets"][0]["releases"][0]["reference"], "failed");
  auto again = Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/clean", "npy"});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("test_images.npy"), std::string::npos) << "the worker's reason is passed on";
  // A malformed evaluation row from a peer: the evaluation is recorded as failed with the reason.
  ASSERT_TRUE(Ask({"release", "edge", sweep, "t001"}).ok());
  t = Pull();
  ASSERT_TRUE(t && t->evaluation.reference);
  TrialResult garbled;
  garbled.ok = true;
  garbled.trial_json = R"({"evaluation": {"features": 7}})";
  ASSERT_TRUE(Report(*t, garbled).accepted);
  auto evs = Ask({"evaluations", "edge"});
  ASSERT_TRUE(evs.ok());
  EXPECT_EQ((*evs)["evaluations"][0]["state"], "failed");
  EXPECT_NE((*evs)["evaluations"][0]["error"].get<std::string>().find("no readable evaluation section"), std::string::npos);
  auto bad_format = Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/clean", "parquet"});
  EXPECT_TRUE(IsError(bad_format, Status::Code::kInvalidArgument, "--format 'parquet': allowed values are npy, fashion-mnist, folder"));
  auto relative = Ask({"evaluate", "edge", "", "", "", false, "", "", "", "data/clean", "npy"});
  EXPECT_TRUE(IsError(relative, Status::Code::kInvalidArgument, "--data: an absolute path"));
}

TEST_F(ReleaseTest, ResweepPolicySubmitsTheReleasedSweepAgainOnTheNewDataNotifyOnlyRecords) {
  const std::string sweep = RunSweep();
  EXPECT_EQ(ReleaseAndReference(sweep, "t001"), "v1");
  ASSERT_TRUE(Ask({"policy", "edge", "", "", "", false, "", "", "", "", "", false, R"({"on_critical": "resweep"})"}).ok());
  ASSERT_TRUE(Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/shifted", "npy"}).ok());
  auto t = Pull();
  ASSERT_TRUE(t);
  ASSERT_TRUE(Report(*t, Evaluation(*t, {20, 80, 900}, {900, 100}, {0.93, 0.40}, 0.70)).accepted);
  auto evs = Ask({"evaluations", "edge"});
  json e = (*evs)["evaluations"][0];
  EXPECT_EQ(e["level"], "critical");
  EXPECT_EQ(e["action"], "resweep of " + sweep + " with /data/shifted as its dataset");
  const auto sweeps = core_->Sweeps();
  ASSERT_EQ(sweeps.back().id, "sw-0004") << "sw-0001, ev-000002, ev-000003, then the resweep";
  EXPECT_EQ(sweeps.back().name, "release-me");
  auto yaml = ReadSpecYaml(*store_, "sw-0004");
  ASSERT_TRUE(yaml.ok());
  EXPECT_NE(yaml->find("/data/shifted"), std::string::npos) << *yaml;
  EXPECT_NE(yaml->find("npy"), std::string::npos);
  auto h = Ask({"releases", "edge"});
  EXPECT_EQ((*h)["targets"][0]["current"], "v1") << "a resweep does not roll back";

  // notify: the row and its level only.
  ASSERT_TRUE(Ask({"policy", "edge", "", "", "", false, "", "", "", "", "", false, R"({"on_critical": "notify"})"}).ok());
  ASSERT_TRUE(Ask({"evaluate", "edge", "", "", "", false, "", "", "", "/data/shifted2", "npy"}).ok());
  t = Pull();
  ASSERT_TRUE(t);
  ASSERT_TRUE(Report(*t, Evaluation(*t, {20, 80, 900}, {900, 100}, {0.93, 0.40}, 0.70)).accepted);
  evs = Ask({"evaluations", "edge", "", "", "", false, "", "", "", "", "", false, "", 1});
  ASSERT_EQ((*evs)["evaluations"].size(), 1u) << "limit";
  EXPECT_EQ((*evs)["evaluations"][0]["action"], "notified (log and metric)");
  int sweeps_now = 0;
  for (const auto& sw : core_->Sweeps()) sweeps_now += sw.id.rfind("sw-", 0) == 0;
  EXPECT_EQ(sweeps_now, 2) << "no new sweep";
}

TEST(AssessTest, LevelsFollowTheBandsAndPoliciesNameTheirFields) {
  Band drop{2, 5};
  EXPECT_EQ(drop.Of(1.9), Level::kOk);
  EXPECT_EQ(drop.Of(2), Level::kWarning);
  EXPECT_EQ(drop.Of(5), Level::kWarning);
  EXPECT_EQ(drop.Of(5.1), Level::kCritical);
  Band qps{1000, 500, false};
  EXPECT_EQ(qps.Of(1000), Level::kOk);
  EXPECT_EQ(qps.Of(700), Level::kWarning);
  EXPECT_EQ(qps.Of(499), Level::kCritical);
  auto p = ParsePolicy(json::parse(R"({"psi": [0.2, 0.4], "on_critical": "resweep"})"));
  ASSERT_TRUE(p.ok());
  EXPECT_DOUBLE_EQ(p->psi.warn, 0.2);
  EXPECT_EQ(p->on_critical, "resweep");
  EXPECT_DOUBLE_EQ(p->accuracy_drop.critical, 5) << "unset fields keep their defaults";
  // Disturbed timing runs are shown, not judged: a p95 far over its budget stays out of the level.
  TargetPolicy budget;
  budget.latency_p95_ms = Band{1, 1.2};
  Measured slow;
  slow.latency_p95_ms = 50;
  slow.throughput_sps = 10;
  slow.bench_valid = false;
  json a = Assess(slow, Reference{}, budget, {});
  EXPECT_EQ(a["level"], "ok") << a.dump(2);
  EXPECT_EQ(a["metrics"][0]["level"], "not judged");
  EXPECT_NE(a["why"].get<std::string>().find("evaluate again on a quiet machine"), std::string::npos);
  slow.bench_valid = true;
  EXPECT_EQ(Assess(slow, Reference{}, budget, {})["level"], "critical");
  for (const char* bad : {R"({"psi": [0.4, 0.2]})", R"({"psi": 0.1})", R"({"throughput_sps": [500, 1000]})",
                          R"({"latency": [1, 2]})", R"({"memory": [-1, 2]})"}) {
    auto e = ParsePolicy(json::parse(bad));
    EXPECT_FALSE(e.ok()) << bad;
  }
  EXPECT_NE(ParsePolicy(json::parse(R"({"latency": [1, 2]})")).status().message().find("allowed: on_critical"), std::string::npos);
}

}  // namespace
}  // namespace prunelab::coordinator
