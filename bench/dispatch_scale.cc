// Dispatch throughput and latency of the coordinator: N simulated workers over real ZeroMQ
// sockets on loopback, the real state machine and Asio service, a durable RocksDB store
// (every result in a synced batch before its ack). Tasks are no-ops: a worker asks, gets a
// task, and reports an ok result at once (a pruning task with a tiny variant, which its
// benchmark task then needs). Every worker keeps one request outstanding, so the
// coordinator sees N concurrent workers; dispatch latency is request sent -> task received.
// Usage: dispatch_scale [--json] [--tasks N] (default 5000 per worker count)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/hash.h"
#include "coordinator/coordinator.h"
#include "coordinator/service.h"
#include "worker/engine/latency_stats.h"

using namespace prunelab;
using namespace prunelab::coordinator;
using Steady = std::chrono::steady_clock;

namespace {

// A sweep of about `tasks` no-op trials (criteria x sparsities), one target.
std::string Spec(int tasks) {
  const int criteria = 5, per = (tasks + criteria - 1) / criteria;
  std::string sp;
  for (int i = 1; i <= per; ++i) sp += (i > 1 ? ", " : "") + std::to_string(static_cast<double>(i) / (per + 1));
  return "name: scale\nmodel: cnn\nsweep: {criterion: [random, l1, l2, gradient, taylor], granularity: unstructured, "
         "sparsity: [" + sp + "]}\n";
}

struct SimWorker {
  std::unique_ptr<DealerSocket> sock;
  std::string id;
  Steady::time_point sent;
  bool finished = false;  // told there is no work left
};

template <typename T>
T Ask(DealerSocket& s, const Message& m) {
  (void)s.Send(Encode(m));
  for (;;) {
    auto r = s.Receive(30000);
    if (!r.ok() || !r.value()) throw std::runtime_error("no reply from the coordinator");
    auto msg = Decode(*r.value());
    if (msg.ok() && std::holds_alternative<T>(msg.value())) return std::get<T>(msg.value());
    if (msg.ok() && std::holds_alternative<ErrorMsg>(msg.value()))
      throw std::runtime_error(std::get<ErrorMsg>(msg.value()).message);
  }
}

struct Figures {
  int workers = 0;
  uint64_t tasks = 0;
  double seconds = 0;
  worker::LatencySummary latency;
};

Figures Run(int n_workers, int n_tasks, bool group_commit) {
  auto dir = std::filesystem::temp_directory_path() / ("prunelab-scale-" + std::to_string(getpid()) + "-" + std::to_string(n_workers));
  std::filesystem::remove_all(dir);
  auto store = OpenRocksDbStore(dir.string());
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  SystemClock clock;
  CoordinatorOptions co;
  co.heartbeat_interval_ms = 600000;  // simulated workers do not heartbeat
  Coordinator core(*store.value(), clock, co);
  std::vector<std::unique_ptr<ZmqContext>> ctxs;
  ctxs.push_back(std::make_unique<ZmqContext>());
  ServiceOptions so;
  so.worker_endpoint = "tcp://127.0.0.1:*";
  so.client_endpoint = "tcp://127.0.0.1:*";
  so.group_commit = group_commit;
  CoordinatorService service(*ctxs[0], core, so);
  if (!service.Bind().ok()) throw std::runtime_error("bind failed");
  std::thread loop([&] { service.Run(false); });

  auto client = DealerSocket::Connect(*ctxs[0], service.client_endpoint()).value();
  auto sub = Ask<SubmitReplyMsg>(*client, SubmitSweepMsg{Spec(n_tasks), ""});
  // ZeroMQ's default is 1023 sockets per context.
  std::vector<SimWorker> ws(n_workers);
  for (int i = 0; i < n_workers; ++i) {
    if (i % 500 == 499) ctxs.push_back(std::make_unique<ZmqContext>());
    ws[i].sock = DealerSocket::Connect(*ctxs.back(), service.worker_endpoint()).value();
    ws[i].id = Ask<RegisterReplyMsg>(*ws[i].sock, RegisterMsg{"", "local", {}}).worker_id;
  }
  // The baseline first (it gates every trial), as a real worker would deliver it.
  auto train = Ask<AssignMsg>(*ws[0].sock, RequestWorkMsg{ws[0].id}).task;
  SubmitResultMsg tr{ws[0].id, {}, "baseline-bytes"};
  tr.result.sweep_id = train.sweep_id;
  tr.result.task_id = train.task_id;
  tr.result.attempt = train.attempt;
  tr.result.kind = train.kind;
  tr.result.ok = true;
  tr.result.artifact_hash = ContentHash("baseline-bytes");
  (void)Ask<ResultAckMsg>(*ws[0].sock, tr);

  Figures f;
  f.workers = n_workers;
  std::vector<double> lat_ms;
  const uint64_t total = sub.tasks - 1;  // every task but the baseline
  auto t0 = Steady::now();
  for (auto& w : ws) {
    w.sent = Steady::now();
    (void)w.sock->Send(Encode(RequestWorkMsg{w.id}));
  }
  // Each worker: request -> assign -> result -> ack -> request ... until nothing is left.
  size_t finished = 0;
  while (f.tasks < total && finished < ws.size()) {
    for (auto& w : ws) {
      if (w.finished) continue;
      auto r = w.sock->Receive(0);
      if (!r.ok() || !r.value()) continue;
      auto msg = Decode(*r.value());
      if (!msg.ok()) continue;
      if (auto* a = std::get_if<AssignMsg>(&msg.value())) {
        lat_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - w.sent).count());
        SubmitResultMsg m{w.id, {}, ""};
        m.result.sweep_id = a->task.sweep_id;
        m.result.task_id = a->task.task_id;
        m.result.attempt = a->task.attempt;
        m.result.kind = a->task.kind;
        m.result.target = a->task.target;
        m.result.ok = true;
        if (a->task.kind == TaskKind::kPruneTrial) {  // a (tiny) variant for its benchmarks
          m.artifact = "variant-" + a->task.task_id;
          m.result.artifact_hash = ContentHash(m.artifact);
        }
        (void)w.sock->Send(Encode(m));
      } else if (std::holds_alternative<ResultAckMsg>(msg.value())) {
        ++f.tasks;
        w.sent = Steady::now();
        (void)w.sock->Send(Encode(RequestWorkMsg{w.id}));
      } else if (std::holds_alternative<NoWorkMsg>(msg.value())) {
        w.finished = true;
        ++finished;
      }
    }
  }
  f.seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  f.latency = worker::Summarize(lat_ms);
  service.Stop();
  loop.join();
  ws.clear();
  client.reset();
  std::filesystem::remove_all(dir);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  bool json_out = bench::WantJson(argc, argv);
  int tasks = bench::IntFlag(argc, argv, "--tasks", 5000);
  nlohmann::json out{{"tasks_per_run", tasks}, {"store", "rocksdb, synced batch per result"}, {"runs", nlohmann::json::array()}};
  if (!json_out)
    std::printf("coordinator dispatch, no-op tasks, real sockets on loopback, durable results (%d tasks per run)\n", tasks);
  for (int n : {10, 100, 1000}) {
    double per_sync = 0;
    for (bool group : {false, true}) {  // per-change WAL sync vs group commit, side by side
      Figures f = Run(n, tasks, group);
      double tps = f.tasks / f.seconds;
      out["runs"].push_back({{"workers", n}, {"group_commit", group}, {"tasks", f.tasks}, {"seconds", f.seconds},
                             {"tasks_per_s", tps}, {"dispatch_p50_ms", f.latency.p50_ms},
                             {"dispatch_p90_ms", f.latency.p90_ms}, {"dispatch_p99_ms", f.latency.p99_ms}});
      if (group) out["runs"].back()["group_over_per_sync"] = tps / per_sync;
      else per_sync = tps;
      if (!json_out)
        std::printf("  %5d workers, %-19s %6llu tasks in %6.2f s = %7.0f tasks/s%s; dispatch p50 %.3f ms, p90 %.3f ms, p99 %.3f ms\n",
                    n, group ? "group commit:" : "sync per change:", static_cast<unsigned long long>(f.tasks), f.seconds, tps,
                    group ? (" (" + std::to_string(tps / per_sync).substr(0, 4) + "x)").c_str() : "", f.latency.p50_ms,
                    f.latency.p90_ms, f.latency.p99_ms);
    }
  }
  out["dask"] = "not measured: python3-distributed is not installed";
  if (json_out) std::printf("%s\n", out.dump().c_str());
  else std::printf("  Dask comparison: not measured (python3-distributed is not installed)\n");
  return 0;
}
