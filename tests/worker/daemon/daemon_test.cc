// The worker daemon in-process: a fake TrialExecutor (same interface as the LibTorch one)
// against a real coordinator service on loopback, the daemon's waits on a FakeClock. Covers
// slots, heartbeats, drain and stop without LibTorch and without real sleeps in the daemon.
#include "worker/daemon/daemon.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "common/base/hash.h"
#include "common/net/rpc.h"
#include "tests/live_service.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using testing::LiveService;
using testing::TempDir;

const char* kTwoTrials = "name: d\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.3, 0.6]}\n";

// Runs tasks instantly unless told to hold them: a held task reports phase "fake-work" and
// waits until released or cancelled. Thread-safe.
class FakeExecutor final : public TrialExecutor {
 public:
  ExecutionOutput Execute(const Task& task, const ExecutionContext& ctx) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++running_;
      max_running_ = std::max(max_running_, running_);
      started_.push_back(task.task_id);
    }
    cv_.notify_all();
    ctx.on_progress("fake-work", 0.5);
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Holding: until released, or the worker stops (ctx.cancelled, as a benchmark polls it).
      while (hold_ && !(ctx.cancelled && ctx.cancelled())) cv_.wait_for(lock, std::chrono::milliseconds(5));
      saw_cancel_ = saw_cancel_ || (ctx.cancelled && ctx.cancelled());
      // Two slots: wait (a bounded while) for the other slot so concurrency is observable.
      if (want_concurrency_ > 1 && task.kind != TaskKind::kTrainBaseline)
        cv_.wait_for(lock, std::chrono::seconds(5), [&] { return max_running_ >= want_concurrency_; });
      --running_;
    }
    cv_.notify_all();
    ExecutionOutput out;
    TrialResult& r = out.result;
    r.sweep_id = task.sweep_id;
    r.task_id = task.task_id;
    r.attempt = task.attempt;
    r.kind = task.kind;
    r.target = task.target;
    r.worker_id = ctx.worker_id;
    r.ok = true;
    if (task.kind == TaskKind::kTrainBaseline) out.artifact = "model-bytes";
    if (task.kind == TaskKind::kPruneTrial) {
      out.artifact = oversize_ ? std::string((1u << 20) + 1, 'x') : "variant-of-" + task.task_id;
      r.accuracy = 0.8;
    }
    if (!out.artifact.empty()) r.artifact_hash = ContentHash(out.artifact);
    if (task.kind == TaskKind::kBenchmarkVariant) r.latency_p90_ms = 0.5;
    return out;
  }

  void Hold(bool on) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = on;
    }
    cv_.notify_all();
  }
  void WantConcurrency(int n) { want_concurrency_ = n; }
  // Prune trials return a variant of 1 MiB + 1 byte (over the limit the test sets).
  void Oversize(bool on) { oversize_ = on; }
  bool WaitStarted(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return started_.size() >= n; });
  }
  std::vector<std::string> started() {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }
  int max_running() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_running_;
  }
  bool saw_cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    return saw_cancel_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  std::atomic<int> want_concurrency_{1};
  std::atomic<bool> oversize_{false};
  int running_ = 0;
  int max_running_ = 0;
  bool saw_cancel_ = false;
  std::vector<std::string> started_;
};

// The daemon on its own thread; destruction stops it and joins.
class DaemonThread {
 public:
  DaemonThread(LiveService& live, FakeExecutor& exec, const std::string& cache_dir, int slots) {
    WorkerOptions o;
    o.coordinator = live.service().worker_endpoint();
    o.cache_dir = cache_dir;
    o.slots = slots;
    o.host_lock_path = "";
    o.rpc_timeout_ms = 5000;
    HardwareFingerprint hw;
    hw.hostname = "test";
    daemon_ = std::make_unique<WorkerDaemon>(live.ctx(), exec, o, hw, clock_);
    returned_ = returned_promise_.get_future();
    thread_ = std::thread([this] {
      rc_ = daemon_->Run(stop_, &drain_);
      returned_promise_.set_value();
    });
  }
  ~DaemonThread() {
    stop_ = true;
    Join();
  }
  void Drain() { drain_ = true; }
  void Stop() { stop_ = true; }
  // Joins (bounded: the test fails instead of hanging when the daemon does not return).
  bool JoinWithin(int ms) {
    if (returned_.wait_for(std::chrono::milliseconds(ms)) != std::future_status::ready) return false;
    Join();
    return true;
  }
  int rc() const { return rc_; }

 private:
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  FakeClock clock_;
  std::unique_ptr<WorkerDaemon> daemon_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> drain_{false};
  std::atomic<int> rc_{-1};
  std::promise<void> returned_promise_;
  std::future<void> returned_;
  std::thread thread_;
};

std::string SubmitSweep(RpcClient& client, const char* spec) {
  auto r = client.Call(SubmitSweepMsg{spec, ""}, 5000);
  EXPECT_TRUE(r.ok());
  auto* reply = r.ok() ? std::get_if<SubmitReplyMsg>(&r.value()) : nullptr;
  return reply ? reply->sweep_id : "";
}

std::vector<TrialResult> ResultsOf(RpcClient& client, const std::string& id) {
  auto r = client.Call(ResultsRequestMsg{id}, 5000);
  if (!r.ok()) return {};
  auto* s = std::get_if<ResultsReplyMsg>(&r.value());
  return s ? s->results : std::vector<TrialResult>{};
}

TEST(DaemonTest, TwoSlotsRunTasksAtOnceAndDeliverEveryResult) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  const std::string id = SubmitSweep(client, kTwoTrials);
  FakeExecutor exec;
  exec.WantConcurrency(2);
  TempDir dir;
  DaemonThread daemon(live, exec, dir.path(), /*slots=*/2);
  coordinator::DashboardSnapshot snap;
  live.WaitFor([&](const auto& d) { return LiveService::SweepIn(d, id).state == "done"; }, 20000, &snap);
  const SweepStatus s = LiveService::SweepIn(snap, id);
  ASSERT_EQ(s.state, "done") << s.done << " done, " << s.failed << " failed";
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(exec.max_running(), 2) << "both slots ran a task at the same time";
  // train, base@local, t001, t002, t001@local, t002@local: each run exactly once.
  auto started = exec.started();
  EXPECT_EQ(started.size(), 6u);
  EXPECT_EQ(std::set<std::string>(started.begin(), started.end()).size(), started.size());
  size_t rows = 0;
  for (const auto& r : ResultsOf(client, id)) {
    EXPECT_TRUE(r.ok) << r.task_id << ": " << r.error;
    ++rows;
  }
  EXPECT_EQ(rows, 5u) << "train + base@local + two variants on the target + its confirmation round";
}

// A variant over the result limit would be dropped by the transport and resent forever: the
// worker fails that trial naming the limit, and the sweep ends.
TEST(DaemonTest, AVariantOverTheArtifactLimitFailsItsTrialNamingTheLimit) {
  coordinator::CoordinatorOptions core;
  core.uploads.max_artifact_bytes = 1u << 20;
  LiveService live({}, core);
  ASSERT_TRUE(live.bound().ok());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  const std::string id = SubmitSweep(client, kTwoTrials);
  FakeExecutor exec;
  exec.Oversize(true);
  TempDir dir;
  DaemonThread daemon(live, exec, dir.path(), /*slots=*/1);
  coordinator::DashboardSnapshot snap;
  live.WaitFor(
      [&](const auto& d) {
        const std::string state = LiveService::SweepIn(d, id).state;
        return state == "done" || state == "failed";
      },
      20000, &snap);
  const SweepStatus s = LiveService::SweepIn(snap, id);
  ASSERT_TRUE(s.state == "done" || s.state == "failed") << s.state;
  size_t refused = 0;
  for (const auto& r : ResultsOf(client, id))
    if (!r.ok && r.error.find("at most 1.0 MiB per artifact (prunelab-coordinator --max-artifact-mb)") != std::string::npos)
      ++refused;
  EXPECT_EQ(refused, 2u) << "both trials failed with the limit named";
}

TEST(DaemonTest, HeartbeatsReportThePhaseWhileATaskRuns) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  SubmitSweep(client, kTwoTrials);
  FakeExecutor exec;
  exec.Hold(true);
  TempDir dir;
  DaemonThread daemon(live, exec, dir.path(), 1);
  ASSERT_TRUE(exec.WaitStarted(1));
  // The slot is inside Execute: only the heartbeat thread can tell the coordinator its phase.
  coordinator::DashboardSnapshot snap;
  live.WaitFor([](const auto& d) { return !d.workers.empty() && d.workers[0].phase == "fake-work"; }, 20000, &snap);
  ASSERT_FALSE(snap.workers.empty());
  const std::string phase = snap.workers[0].phase, task = snap.workers[0].task_id;
  EXPECT_EQ(phase, "fake-work");
  EXPECT_NE(task.find("train"), std::string::npos) << task;
  exec.Hold(false);
}

TEST(DaemonTest, DrainFinishesAndReportsTheRunningTaskThenTakesNoMore) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  const std::string id = SubmitSweep(client, kTwoTrials);
  FakeExecutor exec;
  exec.Hold(true);
  TempDir dir;
  DaemonThread daemon(live, exec, dir.path(), 1);
  ASSERT_TRUE(exec.WaitStarted(1));
  daemon.Drain();
  exec.Hold(false);
  ASSERT_TRUE(daemon.JoinWithin(20000)) << "a drained daemon returns once its task is reported";
  EXPECT_EQ(daemon.rc(), 0);
  EXPECT_EQ(exec.started(), std::vector<std::string>{"train"}) << "no task taken after the drain";
  bool train_recorded = false;
  for (const auto& r : ResultsOf(client, id)) train_recorded |= r.task_id == "train" && r.ok;
  EXPECT_TRUE(train_recorded) << "the drained task's result was delivered";
}

TEST(DaemonTest, StopAbandonsTheRunningTaskAtOnce) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  const std::string id = SubmitSweep(client, kTwoTrials);
  FakeExecutor exec;
  exec.Hold(true);  // never released: only cancellation ends the task
  TempDir dir;
  DaemonThread daemon(live, exec, dir.path(), 1);
  ASSERT_TRUE(exec.WaitStarted(1));
  daemon.Stop();
  ASSERT_TRUE(daemon.JoinWithin(5000)) << "stop must not wait for the task";
  EXPECT_TRUE(exec.saw_cancel()) << "the executor was told through ctx.cancelled";
  EXPECT_TRUE(ResultsOf(client, id).empty()) << "an abandoned task reports nothing; the coordinator runs it again";
}

}  // namespace
}  // namespace prunelab::worker
