#include "worker/daemon/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <fmt/printf.h>

#include "common/base/hash.h"
#include "common/base/log.h"
#include "common/net/artifact_fetch.h"
#include "common/net/rpc.h"
#include "common/spec/objectives.h"
#include "worker/daemon/artifact_cache.h"

namespace prunelab::worker {

namespace {

// "worker ID: text", through the process log (common/base/log.h: one format, thread-safe).
void Log(const std::string& who, const std::string& text) {
  log::Info("worker " + (who.empty() ? std::string("-") : who) + ": " + text);
}

std::string Describe(const Task& t) {
  if (t.kind == TaskKind::kPruneTrial || t.kind == TaskKind::kBenchmarkVariant)
    return fmt::sprintf("%s/%s (%s %s %s %.0f%%, attempt %u)", t.sweep_id.c_str(), t.task_id.c_str(),
                  t.kind == TaskKind::kPruneTrial ? "prune" : "benchmark", t.trial.criterion.c_str(),
                  t.trial.granularity.c_str(), t.trial.sparsity * 100, t.attempt);
  return fmt::sprintf("%s/%s (%s, attempt %u)", t.sweep_id.c_str(), t.task_id.c_str(), TaskKindName(t.kind), t.attempt);
}

std::string Outcome(const TrialResult& r, double secs) {
  if (!r.ok)
    return fmt::sprintf("FAILED in %.1f s: %.400s", secs, r.error.c_str());
  if (r.kind == TaskKind::kConfirmTarget)
    return fmt::sprintf("done in %.1f s: confirmation round (`prunelab pareto` shows it)", secs);
  if (r.latency_p90_ms > 0)
    return fmt::sprintf("done in %.1f s: p90 %.3f ms, %.0f samples/s%s%s", secs, r.latency_p90_ms,
                  r.throughput_sps,
                  r.speedup_p90 > 0 ? (", " + std::to_string(r.speedup_p90).substr(0, 4) + "x vs dense").c_str() : "",
                  r.bench_valid ? "" : "; benchmark INVALID (`prunelab summary` says why)");
  // The task's quality: "accuracy 87.30 %", or a language model's "perplexity 41.27".
  return fmt::sprintf("done in %.1f s: %s%s", secs, ScoredByPerplexity(r) ? "" : "accuracy ", QualityText(r));
}

// flock() on a per-host file; released when the returned handle is destroyed.
std::shared_ptr<void> HostLock(const std::string& path, bool exclusive) {
  if (path.empty()) return nullptr;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return nullptr;  // cannot coordinate; measure anyway
  while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 && errno == EINTR) {
  }
  return std::shared_ptr<void>(nullptr, [fd](void*) {
    flock(fd, LOCK_UN);
    close(fd);
  });
}

// What one slot is doing: read by the heartbeat thread and by re-registration (which
// reports running tasks), written by the slot's thread.
struct SlotState {
  std::mutex mu;
  std::string sweep_id;
  std::string task_id;
  uint32_t attempt = 0;
  std::string phase = "idle";
  double progress = 0;
};

// One run of the daemon: registration, the heartbeat thread, and one loop per slot.
class Session {
 public:
  Session(ZmqContext& ctx, TrialExecutor& executor, const WorkerOptions& options, const HardwareFingerprint& hardware,
          const Clock& clock, const std::atomic<bool>& stop, const std::atomic<bool>* drain)
      : ctx_(ctx), executor_(executor), options_(options), hardware_(hardware), clock_(clock), stop_(stop),
        drain_(drain), cache_(options.cache_dir), slots_(static_cast<uint32_t>(std::max(1, options.slots))),
        id_(options.worker_id), reg_rpc_(ctx, options.coordinator, options.security) {
    for (uint32_t i = 0; i < slots_; ++i) live_.push_back(std::make_unique<SlotState>());
  }

  int Run() {
    if (Status st = cache_.Init(); !st.ok()) {
      Log(id_, st.ToString());
      return 2;
    }
    if (!Register()) return 0;
    Log(CurrentId(), "registered with " + options_.coordinator + " as target '" + options_.target + "' (" +
                         std::to_string(slots_) + " slot(s), " + std::to_string(hardware_.threads) + " threads, BLAS " +
                         hardware_.blas + ")");
    std::thread heartbeat([this] { HeartbeatLoop(); });
    std::vector<std::thread> threads;
    for (uint32_t i = 1; i < slots_; ++i) threads.emplace_back([this, i] { SlotLoop(i); });
    SlotLoop(0);
    for (auto& t : threads) t.join();
    if (Draining() && !stop_.load())
      Log(CurrentId(), "drained: " + std::to_string(tasks_done_.load()) + " task(s) run and reported; exiting");
    heartbeat_stop_ = true;
    heartbeat.join();
    Log(CurrentId(), "stopped");
    return 0;
  }

 private:
  bool Draining() const { return drain_ && drain_->load(); }
  std::string CurrentId() {
    std::lock_guard<std::mutex> lock(id_mu_);
    return id_;
  }

  // Registers (again): tells the coordinator what every slot is still running, so a
  // restarted coordinator keeps those tasks with this worker instead of running them twice.
  bool Register() {
    std::lock_guard<std::mutex> lock(id_mu_);
    for (int tries = 0; !stop_.load(); ++tries) {
      RegisterMsg msg{id_, options_.target, hardware_, slots_, {}};
      for (uint32_t i = 0; i < slots_; ++i) {
        std::lock_guard<std::mutex> l(live_[i]->mu);
        if (!live_[i]->task_id.empty())
          msg.running.push_back({live_[i]->sweep_id, live_[i]->task_id, live_[i]->attempt, i});
      }
      auto reply = reg_rpc_.Call(msg, 5000);
      if (reply.ok()) {
        if (auto* r = std::get_if<RegisterReplyMsg>(&reply.value())) {
          id_ = r->worker_id;
          heartbeat_ms_ = r->heartbeat_interval_ms;
          return true;
        }
        if (auto* e = std::get_if<ErrorMsg>(&reply.value())) Log(id_, "registration refused: " + e->message);
      } else if (tries % 6 == 0) {
        Log(id_, "waiting for the coordinator at " + options_.coordinator + " (" + reply.status().message() +
                     "); retrying");
      }
      clock_.WaitMs(1000, &stop_);
    }
    return false;
  }

  // Every slot's state, every heartbeat interval, on a socket of its own: heartbeats go on
  // while a slot trains.
  void HeartbeatLoop() {
    std::unique_ptr<DealerSocket> sock;
    while (!heartbeat_stop_.load()) {
      if (!sock) {
        auto s = DealerSocket::Connect(ctx_, options_.coordinator, "", options_.security);
        if (s.ok()) sock = std::move(s).value();
      }
      const std::string wid = CurrentId();
      for (uint32_t i = 0; i < slots_ && sock; ++i) {
        HeartbeatMsg hb;
        {
          std::lock_guard<std::mutex> lock(live_[i]->mu);
          std::string task = live_[i]->task_id.empty() ? "" : live_[i]->sweep_id + "/" + live_[i]->task_id;
          hb = HeartbeatMsg{wid, task, live_[i]->phase, live_[i]->progress, i};
        }
        (void)sock->Send(Encode(hb));
      }
      clock_.WaitMs(heartbeat_ms_.load(), &heartbeat_stop_);
    }
  }

  void SetSlot(SlotState& me, const Task* task, const std::string& phase) {
    std::lock_guard<std::mutex> lock(me.mu);
    me.sweep_id = task ? task->sweep_id : "";
    me.task_id = task ? task->task_id : "";
    me.attempt = task ? task->attempt : 0;
    me.phase = phase;
    me.progress = 0;
  }

  // Pulls work until stopped, drained, or the task limit is reached.
  void SlotLoop(uint32_t slot) {
    RpcClient rpc(ctx_, options_.coordinator, options_.security);
    int quiet_polls = 0;
    while (!stop_.load() && !limit_reached_.load() && !Draining()) {
      const std::string wid = CurrentId();
      auto reply = rpc.Call(RequestWorkMsg{wid, slot}, options_.rpc_timeout_ms);
      if (!reply.ok()) {
        Log(wid, "coordinator unreachable (" + reply.status().message() + "); retrying");
        clock_.WaitMs(1000, &stop_);
        continue;
      }
      if (auto* e = std::get_if<ErrorMsg>(&reply.value())) {
        Log(wid, "coordinator says " + e->code + ": " + e->message);
        if (e->code == "unregistered" && CurrentId() == wid && !Register()) break;
        clock_.WaitMs(500, &stop_);
        continue;
      }
      if (auto* nw = std::get_if<NoWorkMsg>(&reply.value())) {
        if (slot == 0 && quiet_polls++ % 60 == 0) Log(wid, "idle: " + nw->reason);
        clock_.WaitMs(nw->retry_after_ms, &stop_);
        continue;
      }
      auto* assign = std::get_if<AssignMsg>(&reply.value());
      if (!assign) continue;
      quiet_polls = 0;
      if (!RunTask(slot, rpc, assign->task)) break;
      int n = ++tasks_done_;
      if (options_.max_tasks > 0 && n >= options_.max_tasks) limit_reached_ = true;
    }
  }

  // Runs one task and delivers its result. False when the worker stopped during it (the
  // task is abandoned; the coordinator runs it again).
  bool RunTask(uint32_t slot, RpcClient& rpc, const Task& task) {
    SlotState& me = *live_[slot];
    const std::string wid = CurrentId();
    Log(wid, (slots_ > 1 ? "slot " + std::to_string(slot) + ": " : std::string()) + "running " + Describe(task));
    SetSlot(me, &task, "starting");
    ExecutionContext ctx;
    ctx.worker_id = wid;
    ctx.hardware = hardware_;
    ctx.fetch_artifact = [this, &rpc](const std::string& hash) { return Fetch(rpc, hash); };
    ctx.host_lock = [this](bool exclusive) { return HostLock(options_.host_lock_path, exclusive); };
    ctx.interference = options_.interference;
    ctx.cache_dir = options_.cache_dir;
    ctx.on_progress = [this, &me, &task, wid](const std::string& phase, double p) {
      bool disturbed = false;
      {
        std::lock_guard<std::mutex> lock(me.mu);
        disturbed = phase != me.phase && phase.rfind("benchmark disturbed", 0) == 0;
        me.phase = phase;
        me.progress = p;
      }
      if (disturbed) Log(wid, Describe(task) + ": " + phase);  // a retry the user should know of
      return !stop_.load();
    };
    ctx.cancelled = [this] { return stop_.load(); };
    auto t0 = std::chrono::steady_clock::now();
    ExecutionOutput out = executor_.Execute(task, ctx);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stop_.load()) {
      Log(wid, "stopping: abandoned " + Describe(task) + "; the coordinator will run it again");
      return false;
    }
    Log(wid, Describe(task) + " " + Outcome(out.result, secs));
    SubmitResultMsg submit{CurrentId(), out.result, ""};
    if (!out.artifact.empty()) {
      if (submit.result.artifact_hash.empty()) submit.result.artifact_hash = ContentHash(out.artifact);
      SetSlot(me, &task, "uploading");
      if (!Upload(rpc, me, submit.result, out.artifact)) return false;
    }
    SetSlot(me, &task, "reporting");
    Deliver(rpc, submit);
    SetSlot(me, nullptr, "idle");
    return true;
  }

  // The model a result names goes first, in hash-checked chunks, retried (and resumed where
  // the coordinator is) until it is stored. A refusal that will not change (the coordinator's
  // size limit, a full disk) turns the result into a failed one with that reason. False when
  // the worker stopped meanwhile.
  bool Upload(RpcClient& rpc, SlotState& me, TrialResult& result, const std::string& artifact) {
    ChunkedUploadOptions uo;
    uo.on_progress = [this, &me](uint64_t done, uint64_t total) {
      std::lock_guard<std::mutex> lock(me.mu);
      me.progress = static_cast<double>(done) / static_cast<double>(std::max<uint64_t>(1, total));
      return !stop_.load();
    };
    for (int attempt = 0; !stop_.load(); ++attempt) {
      ChunkedUploadStats us;
      Status st = UploadArtifactChunked([&](const Message& m) { return rpc.Call(m, options_.rpc_timeout_ms); },
                                        result.artifact_hash, artifact, uo, &us);
      if (us.corrupt_chunks > 0)
        Log(CurrentId(), "upload of " + result.artifact_hash.substr(0, 12) + ": " + std::to_string(us.corrupt_chunks) +
                             " corrupted chunk(s) sent again");
      if (us.shrunk > 0)
        Log(CurrentId(), "upload of " + result.artifact_hash.substr(0, 12) + ": slow link, chunks cut to " +
                             std::to_string(us.smallest_chunk >> 10) + " KiB after " + std::to_string(us.shrunk) +
                             " unanswered one(s)");
      if (st.ok()) {
        (void)cache_.Put(result.artifact_hash, artifact);  // a task of this worker that needs it next skips the download
        return true;
      }
      if (stop_.load()) break;
      if (st.code() != Status::Code::kUnavailable) {
        Log(CurrentId(), "the coordinator refused the model of " + result.task_id + ": " + st.message());
        result.ok = false;
        result.error = "the model this task produced (" + std::to_string(artifact.size() >> 20) +
                       " MiB) was refused by the coordinator: " + st.message();
        result.artifact_hash.clear();
        return true;
      }
      Log(CurrentId(), "upload of " + result.artifact_hash.substr(0, 12) + ": " + st.message() + "; retrying");
      clock_.WaitMs(std::min(10000, 500 * (1 << std::min(attempt, 5))), &stop_);
    }
    Log(CurrentId(), "stopping: abandoned the upload of " + result.task_id + "; the coordinator will run it again");
    return false;
  }

  // Sends until acknowledged: the coordinator records a task's result once and acks
  // duplicates, so resending after a timeout is safe.
  void Deliver(RpcClient& rpc, const SubmitResultMsg& submit) {
    for (int attempt = 0; !stop_.load(); ++attempt) {
      auto ack = rpc.Call(submit, options_.rpc_timeout_ms);
      if (ack.ok()) {
        if (auto* a = std::get_if<ResultAckMsg>(&ack.value())) {
          if (!a->accepted) Log(submit.worker_id, "result not used: " + a->note);
          return;
        }
        if (auto* e = std::get_if<ErrorMsg>(&ack.value()))
          Log(submit.worker_id, "result not recorded yet (" + e->message + ")");
      } else {
        Log(submit.worker_id, "result delivery: " + ack.status().message() + "; retrying");
      }
      clock_.WaitMs(std::min(10000, 500 * (1 << std::min(attempt, 5))), &stop_);
    }
  }

  // From the local cache, else from the coordinator in hash-checked chunks (then cached).
  StatusOr<std::string> Fetch(RpcClient& rpc, const std::string& hash) {
    if (auto hit = cache_.Get(hash)) return *hit;
    ChunkedFetchOptions fo;
    fo.on_progress = [this](uint64_t, uint64_t) { return !stop_.load(); };
    ChunkedFetchStats fs;
    auto bytes = FetchArtifactChunked([&](const Message& m) { return rpc.Call(m, options_.rpc_timeout_ms); }, hash, fo, &fs);
    if (fs.corrupt_chunks > 0)
      Log(CurrentId(), "artifact " + hash + ": " + std::to_string(fs.corrupt_chunks) + " corrupted chunk(s) fetched again");
    if (fs.shrunk > 0)
      Log(CurrentId(), "artifact " + hash.substr(0, 12) + ": slow link, chunks cut to " +
                           std::to_string(fs.smallest_chunk >> 10) + " KiB after " + std::to_string(fs.shrunk) +
                           " unanswered one(s)");
    if (!bytes.ok()) return bytes.status();
    PRUNELAB_RETURN_IF_ERROR(cache_.Put(hash, bytes.value()));  // verifies the hash again
    return bytes;
  }

  ZmqContext& ctx_;
  TrialExecutor& executor_;
  const WorkerOptions& options_;
  const HardwareFingerprint& hardware_;
  const Clock& clock_;
  const std::atomic<bool>& stop_;
  const std::atomic<bool>* drain_;
  ArtifactCache cache_;
  const uint32_t slots_;
  std::vector<std::unique_ptr<SlotState>> live_;
  std::mutex id_mu_;  // guards id_ and registration
  std::string id_;
  RpcClient reg_rpc_;
  std::atomic<uint32_t> heartbeat_ms_{1000};
  std::atomic<bool> heartbeat_stop_{false};
  std::atomic<int> tasks_done_{0};
  std::atomic<bool> limit_reached_{false};
};

}  // namespace

WorkerDaemon::WorkerDaemon(ZmqContext& ctx, TrialExecutor& executor, WorkerOptions options, HardwareFingerprint hardware,
                           const Clock& clock)
    : options_(std::move(options)), ctx_(ctx), executor_(executor), hardware_(std::move(hardware)), clock_(clock) {}

int WorkerDaemon::Run(const std::atomic<bool>& stop, const std::atomic<bool>* drain) {
  Session session(ctx_, executor_, options_, hardware_, clock_, stop, drain);
  return session.Run();
}

}  // namespace prunelab::worker
