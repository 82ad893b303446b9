#include "worker/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>

#include "common/rpc.h"
#include "worker/artifact_cache.h"

namespace prunelab::worker {
namespace {

void Log(const std::string& who, const std::string& line) {
  std::time_t now = std::time(nullptr);
  char ts[32];
  std::strftime(ts, sizeof(ts), "%H:%M:%S", std::localtime(&now));
  std::fprintf(stderr, "%s worker %s: %s\n", ts, who.c_str(), line.c_str());
  std::fflush(stderr);
}

void SleepUnlessStopped(const std::atomic<bool>& stop, int ms) {
  for (int waited = 0; waited < ms && !stop.load(); waited += 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

std::string Describe(const Task& t) {
  char buf[256];
  if (t.kind == TaskKind::kPruneTrial)
    std::snprintf(buf, sizeof(buf), "%s/%s (%s %s %.0f%%, attempt %u)", t.sweep_id.c_str(), t.task_id.c_str(),
                  t.trial.criterion.c_str(), t.trial.granularity.c_str(), t.trial.sparsity * 100, t.attempt);
  else
    std::snprintf(buf, sizeof(buf), "%s/%s (%s, attempt %u)", t.sweep_id.c_str(), t.task_id.c_str(),
                  TaskKindName(t.kind), t.attempt);
  return buf;
}

// What the heartbeat thread reports; written by the main thread.
struct LiveState {
  std::mutex mu;
  std::string worker_id;
  std::string task;
  std::string phase = "idle";
  double progress = 0;
};

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

}  // namespace

WorkerDaemon::WorkerDaemon(ZmqContext& ctx, TrialExecutor& executor, WorkerOptions options, HardwareFingerprint hardware)
    : options_(std::move(options)), ctx_(ctx), executor_(executor), hardware_(std::move(hardware)) {}

int WorkerDaemon::Run(const std::atomic<bool>& stop, const std::atomic<bool>* drain) {
  auto draining = [drain] { return drain && drain->load(); };
  ArtifactCache cache(options_.cache_dir);
  if (Status st = cache.Init(); !st.ok()) {
    Log("-", st.ToString());
    return 2;
  }
  RpcClient rpc(ctx_, options_.coordinator);
  LiveState live;
  std::string id = options_.worker_id;
  // Written on re-registration by this thread, read by the heartbeat thread.
  std::atomic<uint32_t> heartbeat_ms{1000};

  auto register_once = [&]() -> bool {
    int tries = 0;
    while (!stop.load()) {
      auto reply = rpc.Call(RegisterMsg{id, options_.target, hardware_}, 5000);
      if (reply.ok()) {
        if (auto* r = std::get_if<RegisterReplyMsg>(&reply.value())) {
          id = r->worker_id;
          heartbeat_ms = r->heartbeat_interval_ms;
          std::lock_guard<std::mutex> lock(live.mu);
          live.worker_id = id;
          return true;
        }
        if (auto* e = std::get_if<ErrorMsg>(&reply.value())) Log(id.empty() ? "-" : id, "registration refused: " + e->message);
      } else if (tries++ % 6 == 0) {
        Log(id.empty() ? "-" : id, "waiting for the coordinator at " + options_.coordinator + " (" +
                                       reply.status().message() + "); retrying");
      }
      SleepUnlessStopped(stop, 1000);
    }
    return false;
  };
  if (!register_once()) return 0;
  Log(id, "registered with " + options_.coordinator + " as target '" + options_.target + "' (" +
              std::to_string(hardware_.threads) + " threads, BLAS " + hardware_.blas + ")");

  std::atomic<bool> hb_stop{false};
  std::thread heartbeat([&] {
    std::unique_ptr<DealerSocket> sock;
    while (!hb_stop.load()) {
      if (!sock) {
        auto s = DealerSocket::Connect(ctx_, options_.coordinator);
        if (s.ok()) sock = std::move(s).value();
      }
      HeartbeatMsg hb;
      {
        std::lock_guard<std::mutex> lock(live.mu);
        hb = HeartbeatMsg{live.worker_id, live.task, live.phase, live.progress};
      }
      if (sock) (void)sock->Send(Encode(hb));
      for (uint32_t waited = 0; waited < heartbeat_ms && !hb_stop.load(); waited += 20)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  auto fetch = [&](const std::string& hash) -> StatusOr<std::string> {
    if (auto hit = cache.Get(hash)) return *hit;
    for (int attempt = 0; attempt < 5 && !stop.load(); ++attempt) {
      auto reply = rpc.Call(FetchArtifactMsg{hash}, options_.rpc_timeout_ms);
      if (!reply.ok()) continue;
      auto* a = std::get_if<ArtifactReplyMsg>(&reply.value());
      if (!a) continue;
      if (!a->found) return Status::NotFound("artifact " + hash + " is not on the coordinator");
      PRUNELAB_RETURN_IF_ERROR(cache.Put(hash, a->data));  // verifies the hash
      return a->data;
    }
    return Status::Unavailable("could not fetch artifact " + hash + " from " + options_.coordinator);
  };

  int tasks_done = 0;
  int quiet_polls = 0;
  while (!stop.load()) {
    if (draining()) {
      Log(id, "drained: " + std::to_string(tasks_done) + " task(s) run and reported; exiting");
      break;
    }
    auto reply = rpc.Call(RequestWorkMsg{id}, options_.rpc_timeout_ms);
    if (!reply.ok()) {
      Log(id, "coordinator unreachable (" + reply.status().message() + "); retrying");
      SleepUnlessStopped(stop, 1000);
      continue;
    }
    if (auto* e = std::get_if<ErrorMsg>(&reply.value())) {
      Log(id, "coordinator says " + e->code + ": " + e->message);
      if (e->code == "unregistered" && !register_once()) break;
      SleepUnlessStopped(stop, 500);
      continue;
    }
    if (auto* nw = std::get_if<NoWorkMsg>(&reply.value())) {
      if (quiet_polls++ % 60 == 0) Log(id, "idle: " + nw->reason);
      SleepUnlessStopped(stop, static_cast<int>(nw->retry_after_ms));
      continue;
    }
    auto* assign = std::get_if<AssignMsg>(&reply.value());
    if (!assign) continue;
    quiet_polls = 0;
    const Task& task = assign->task;
    Log(id, "running " + Describe(task));
    {
      std::lock_guard<std::mutex> lock(live.mu);
      live.task = task.sweep_id + "/" + task.task_id;
      live.phase = "starting";
      live.progress = 0;
    }
    ExecutionContext ctx;
    ctx.worker_id = id;
    ctx.hardware = hardware_;
    ctx.fetch_artifact = fetch;
    ctx.host_lock = [this](bool exclusive) { return HostLock(options_.host_lock_path, exclusive); };
    ctx.on_progress = [&](const std::string& phase, double p) {
      std::lock_guard<std::mutex> lock(live.mu);
      live.phase = phase;
      live.progress = p;
      return !stop.load();
    };
    auto t0 = std::chrono::steady_clock::now();
    ExecutionOutput out = executor_.Execute(task, ctx);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stop.load()) {
      Log(id, "stopping: abandoned " + Describe(task) + "; the coordinator will run it again");
      break;
    }
    char summary[256];
    if (out.result.ok)
      std::snprintf(summary, sizeof(summary), "done in %.1f s: accuracy %.2f %%, p90 %.3f ms, %.0f samples/s", secs,
                    out.result.accuracy * 100, out.result.latency_p90_ms, out.result.throughput_sps);
    else
      std::snprintf(summary, sizeof(summary), "FAILED in %.1f s: %s", secs, out.result.error.c_str());
    Log(id, Describe(task) + " " + summary);
    {
      std::lock_guard<std::mutex> lock(live.mu);
      live.phase = "reporting";
    }
    // Deliver until acknowledged: the coordinator records a task's result once and acks
    // duplicates, so resending after a timeout is safe.
    SubmitResultMsg submit{id, out.result, out.artifact};
    bool acked = false;
    for (int attempt = 0; !acked && !stop.load(); ++attempt) {
      auto ack = rpc.Call(submit, options_.rpc_timeout_ms);
      if (ack.ok()) {
        if (auto* a = std::get_if<ResultAckMsg>(&ack.value())) {
          acked = true;
          if (!a->accepted) Log(id, "result not used: " + a->note);
          break;
        }
        if (auto* e = std::get_if<ErrorMsg>(&ack.value())) Log(id, "result not recorded yet (" + e->message + ")");
      } else {
        Log(id, "result delivery: " + ack.status().message() + "; retrying");
      }
      SleepUnlessStopped(stop, std::min(10000, 500 * (1 << std::min(attempt, 5))));
    }
    {
      std::lock_guard<std::mutex> lock(live.mu);
      live.task.clear();
      live.phase = "idle";
      live.progress = 0;
    }
    ++tasks_done;
    if (options_.max_tasks > 0 && tasks_done >= options_.max_tasks) break;
  }
  hb_stop = true;
  heartbeat.join();
  Log(id, "stopped");
  return 0;
}

}  // namespace prunelab::worker
