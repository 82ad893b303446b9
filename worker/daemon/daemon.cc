#include "worker/daemon/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/net/artifact_fetch.h"
#include "common/net/rpc.h"
#include "worker/daemon/artifact_cache.h"

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
  if (t.kind == TaskKind::kPruneTrial || t.kind == TaskKind::kBenchmarkVariant)
    std::snprintf(buf, sizeof(buf), "%s/%s (%s %s %s %.0f%%, attempt %u)", t.sweep_id.c_str(), t.task_id.c_str(),
                  t.kind == TaskKind::kPruneTrial ? "prune" : "benchmark", t.trial.criterion.c_str(),
                  t.trial.granularity.c_str(), t.trial.sparsity * 100, t.attempt);
  else
    std::snprintf(buf, sizeof(buf), "%s/%s (%s, attempt %u)", t.sweep_id.c_str(), t.task_id.c_str(),
                  TaskKindName(t.kind), t.attempt);
  return buf;
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
  const uint32_t slots = std::max(1, options_.slots);
  std::vector<std::unique_ptr<SlotState>> live;
  for (uint32_t i = 0; i < slots; ++i) live.push_back(std::make_unique<SlotState>());
  std::mutex id_mu;  // guards id and registration
  std::string id = options_.worker_id;
  auto current_id = [&] {
    std::lock_guard<std::mutex> lock(id_mu);
    return id;
  };
  std::atomic<uint32_t> heartbeat_ms{1000};
  RpcClient reg_rpc(ctx_, options_.coordinator, options_.security);

  // Registers (again): tells the coordinator what every slot is still running, so a
  // restarted coordinator keeps those tasks with this worker instead of running them twice.
  auto register_once = [&]() -> bool {
    std::lock_guard<std::mutex> lock(id_mu);
    int tries = 0;
    while (!stop.load()) {
      RegisterMsg msg{id, options_.target, hardware_, slots, {}};
      for (uint32_t i = 0; i < slots; ++i) {
        std::lock_guard<std::mutex> l(live[i]->mu);
        if (!live[i]->task_id.empty())
          msg.running.push_back({live[i]->sweep_id, live[i]->task_id, live[i]->attempt, i});
      }
      auto reply = reg_rpc.Call(msg, 5000);
      if (reply.ok()) {
        if (auto* r = std::get_if<RegisterReplyMsg>(&reply.value())) {
          id = r->worker_id;
          heartbeat_ms = r->heartbeat_interval_ms;
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
  Log(current_id(), "registered with " + options_.coordinator + " as target '" + options_.target + "' (" +
                        std::to_string(slots) + " slot(s), " + std::to_string(hardware_.threads) + " threads, BLAS " +
                        hardware_.blas + ")");

  std::atomic<bool> hb_stop{false};
  std::thread heartbeat([&] {
    std::unique_ptr<DealerSocket> sock;
    while (!hb_stop.load()) {
      if (!sock) {
        auto s = DealerSocket::Connect(ctx_, options_.coordinator, "", options_.security);
        if (s.ok()) sock = std::move(s).value();
      }
      const std::string wid = current_id();
      for (uint32_t i = 0; i < slots && sock; ++i) {
        HeartbeatMsg hb;
        {
          std::lock_guard<std::mutex> lock(live[i]->mu);
          std::string task = live[i]->task_id.empty() ? "" : live[i]->sweep_id + "/" + live[i]->task_id;
          hb = HeartbeatMsg{wid, task, live[i]->phase, live[i]->progress, i};
        }
        (void)sock->Send(Encode(hb));
      }
      for (uint32_t waited = 0; waited < heartbeat_ms && !hb_stop.load(); waited += 20)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  std::atomic<int> tasks_done{0};
  std::atomic<bool> limit_reached{false};
  auto slot_loop = [&](uint32_t slot) {
    SlotState& me = *live[slot];
    RpcClient rpc(ctx_, options_.coordinator, options_.security);
    auto fetch = [&](const std::string& hash) -> StatusOr<std::string> {
      if (auto hit = cache.Get(hash)) return *hit;
      ChunkedFetchOptions fo;
      fo.on_progress = [&stop](uint64_t, uint64_t) { return !stop.load(); };
      ChunkedFetchStats fs;
      auto bytes = FetchArtifactChunked([&](const Message& m) { return rpc.Call(m, options_.rpc_timeout_ms); }, hash, fo, &fs);
      if (fs.corrupt_chunks > 0)
        Log(current_id(), "artifact " + hash + ": " + std::to_string(fs.corrupt_chunks) + " corrupted chunk(s) fetched again");
      if (!bytes.ok()) return bytes.status();
      PRUNELAB_RETURN_IF_ERROR(cache.Put(hash, bytes.value()));  // verifies the hash again
      return bytes;
    };
    int quiet_polls = 0;
    while (!stop.load() && !limit_reached.load()) {
      if (draining()) break;
      const std::string wid = current_id();
      auto reply = rpc.Call(RequestWorkMsg{wid, slot}, options_.rpc_timeout_ms);
      if (!reply.ok()) {
        Log(wid, "coordinator unreachable (" + reply.status().message() + "); retrying");
        SleepUnlessStopped(stop, 1000);
        continue;
      }
      if (auto* e = std::get_if<ErrorMsg>(&reply.value())) {
        Log(wid, "coordinator says " + e->code + ": " + e->message);
        if (e->code == "unregistered" && current_id() == wid && !register_once()) break;
        SleepUnlessStopped(stop, 500);
        continue;
      }
      if (auto* nw = std::get_if<NoWorkMsg>(&reply.value())) {
        if (slot == 0 && quiet_polls++ % 60 == 0) Log(wid, "idle: " + nw->reason);
        SleepUnlessStopped(stop, static_cast<int>(nw->retry_after_ms));
        continue;
      }
      auto* assign = std::get_if<AssignMsg>(&reply.value());
      if (!assign) continue;
      quiet_polls = 0;
      const Task& task = assign->task;
      Log(wid, (slots > 1 ? "slot " + std::to_string(slot) + ": " : std::string()) + "running " + Describe(task));
      {
        std::lock_guard<std::mutex> lock(me.mu);
        me.sweep_id = task.sweep_id;
        me.task_id = task.task_id;
        me.attempt = task.attempt;
        me.phase = "starting";
        me.progress = 0;
      }
      ExecutionContext ctx;
      ctx.worker_id = wid;
      ctx.hardware = hardware_;
      ctx.fetch_artifact = fetch;
      ctx.host_lock = [this](bool exclusive) { return HostLock(options_.host_lock_path, exclusive); };
      ctx.on_progress = [&](const std::string& phase, double p) {
        std::lock_guard<std::mutex> lock(me.mu);
        me.phase = phase;
        me.progress = p;
        return !stop.load();
      };
      auto t0 = std::chrono::steady_clock::now();
      ExecutionOutput out = executor_.Execute(task, ctx);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (stop.load()) {
        Log(wid, "stopping: abandoned " + Describe(task) + "; the coordinator will run it again");
        break;
      }
      char summary[256];
      if (!out.result.ok)
        std::snprintf(summary, sizeof(summary), "FAILED in %.1f s: %s", secs, out.result.error.c_str());
      else if (out.result.latency_p90_ms > 0)
        std::snprintf(summary, sizeof(summary), "done in %.1f s: p90 %.3f ms, %.0f samples/s%s", secs,
                      out.result.latency_p90_ms, out.result.throughput_sps,
                      out.result.speedup_p90 > 0 ? (", " + std::to_string(out.result.speedup_p90).substr(0, 4) + "x vs dense").c_str() : "");
      else
        std::snprintf(summary, sizeof(summary), "done in %.1f s: accuracy %.2f %%", secs, out.result.accuracy * 100);
      Log(wid, Describe(task) + " " + summary);
      {
        std::lock_guard<std::mutex> lock(me.mu);
        me.phase = "reporting";
      }
      // Deliver until acknowledged: the coordinator records a task's result once and acks
      // duplicates, so resending after a timeout is safe.
      SubmitResultMsg submit{current_id(), out.result, out.artifact};
      for (int attempt = 0; !stop.load(); ++attempt) {
        auto ack = rpc.Call(submit, options_.rpc_timeout_ms);
        if (ack.ok()) {
          if (auto* a = std::get_if<ResultAckMsg>(&ack.value())) {
            if (!a->accepted) Log(wid, "result not used: " + a->note);
            break;
          }
          if (auto* e = std::get_if<ErrorMsg>(&ack.value())) Log(wid, "result not recorded yet (" + e->message + ")");
        } else {
          Log(wid, "result delivery: " + ack.status().message() + "; retrying");
        }
        SleepUnlessStopped(stop, std::min(10000, 500 * (1 << std::min(attempt, 5))));
      }
      {
        std::lock_guard<std::mutex> lock(me.mu);
        me.sweep_id.clear();
        me.task_id.clear();
        me.phase = "idle";
        me.progress = 0;
      }
      int n = ++tasks_done;
      if (options_.max_tasks > 0 && n >= options_.max_tasks) limit_reached = true;
    }
  };
  std::vector<std::thread> threads;
  for (uint32_t i = 1; i < slots; ++i) threads.emplace_back(slot_loop, i);
  slot_loop(0);
  for (auto& t : threads) t.join();
  if (draining() && !stop.load())
    Log(current_id(), "drained: " + std::to_string(tasks_done.load()) + " task(s) run and reported; exiting");
  hb_stop = true;
  heartbeat.join();
  Log(current_id(), "stopped");
  return 0;
}

}  // namespace prunelab::worker
