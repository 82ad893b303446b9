// Dispatch throughput and latency of the coordinator: N simulated workers over real ZeroMQ
// sockets on loopback, the real state machine and Asio service, a durable RocksDB store
// (every result in a WAL-synced batch before its ack). Tasks are no-ops: a worker asks, gets
// a task, and reports an ok result at once (a pruning task with a tiny variant, which its
// benchmark task then needs). The simulated workers share this process and the machine's
// cores with the coordinator.
//
// Two measurements per worker count, side by side:
//  * saturated: every worker keeps one request outstanding (closed loop), so throughput is
//    the coordinator's maximum; end-to-end latency is then queueing (Little's law:
//    workers / throughput), not dispatch cost;
//  * half load: workers pause between tasks so the offered load is half the saturated
//    throughput, as real workers (whose tasks take time) do; the dispatch latency here is
//    what a worker waits for its next task.
// The coordinator-side dispatch latency (request read off the socket -> assignment handed
// to ZeroMQ) is reported for both. With python3-distributed installed, the same no-op
// workload runs through Dask's LocalCluster in the same run (bench/dask_noop.py).
// Usage: dispatch_scale [--json] [--tasks N] [--no-dask] [--workers 10,100,200,1000]
//                       [--bind ADDR] [--workers-netns NAME]   (default 20000 trials per run)
// Across hosts: started inside one network namespace with --bind its address, the simulated
// workers' sockets (and their ZeroMQ I/O threads) are made inside --workers-netns, so every
// message crosses a veth pair and a bridge (bench/dispatch_netns.sh sets it up and runs both).
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "common/base/clock.h"
#include "common/codec/codec.h"
#include "common/base/hash.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/service/service.h"
#include "worker/loadgen/latency_stats.h"

using namespace prunelab;
using namespace prunelab::coordinator;
using Steady = std::chrono::steady_clock;

namespace {

// A sweep of about `tasks` no-op trials (criteria x schedules x sparsities), one target. The
// spec limits a list to 1,000 items, so big sweeps add schedules (which differ only in their
// fine-tuning budget: the simulated workers do no work either way).
std::string Spec(int tasks) {
  const int criteria = 5, max_list = 1000;
  const int schedules = (tasks + criteria * max_list - 1) / (criteria * max_list);
  const int per = (tasks + criteria * schedules - 1) / (criteria * schedules);
  std::string sp, sc;
  for (int i = 1; i <= per; ++i) sp += (i > 1 ? ", " : "") + std::to_string(static_cast<double>(i) / (per + 1));
  for (int i = 1; i <= schedules; ++i) sc += (i > 1 ? ", " : "") + std::string("{type: one_shot, finetune_epochs: ") + std::to_string(i) + "}";
  return "name: scale\nmodel: cnn\nsweep: {criterion: [random, l1, l2, gradient, taylor], granularity: unstructured, "
         "sparsity: [" + sp + "], schedule: [" + sc + "]}\n";
}

struct SimWorker {
  std::unique_ptr<DealerSocket> sock;
  std::string id;
  Steady::time_point sent;
  Steady::time_point next_request;  // paced mode: when to ask again
  bool waiting = false;             // paced mode: between an ack and the next request
  bool finished = false;            // told there is no work left
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
  worker::LatencySummary latency;  // end to end, as the simulated workers saw it
  double coord_p50_ms = 0, coord_p99_ms = 0;  // coordinator side
  double ack_p99_ms = 0;                       // result -> durable ack
  double coord_cpu_us_per_task = 0;            // CPU time of the coordinator's event-loop thread
};

double ThreadCpuSeconds(std::thread& t) {
  clockid_t id;
  if (pthread_getcpuclockid(t.native_handle(), &id) != 0) return 0;
  timespec ts{};
  clock_gettime(id, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Where the coordinator listens and where the simulated workers' sockets live.
struct Placement {
  std::string bind = "127.0.0.1";
  int workers_netns_fd = -1;  // open /var/run/netns/NAME; -1: this namespace
  int home_netns_fd = -1;     // this process's own namespace, to come back to
};

// Moves the calling thread into `fd`'s network namespace (threads it starts inherit it).
void EnterNetns(int fd) {
  if (fd >= 0 && setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("setns: " + std::string(strerror(errno)));
}

// think_s: pause between an ack and the next request (0: closed loop).
Figures Run(int n_workers, int n_trials, bool group_commit, double think_s, const Placement& where) {
  auto dir = std::filesystem::temp_directory_path() / ("prunelab-scale-" + std::to_string(getpid()) + "-" + std::to_string(n_workers));
  std::filesystem::remove_all(dir);
  auto store = OpenRocksDbStore(dir.string());
  if (!store.ok()) throw std::runtime_error(store.status().ToString());
  SystemClock clock;
  CoordinatorOptions co;
  co.heartbeat_interval_ms = 600000;  // simulated workers do not heartbeat
  co.max_trials_per_sweep = 10'000'000;  // the bench sizes its own sweeps
  Coordinator core(*store.value(), clock, co);
  std::vector<std::unique_ptr<ZmqContext>> ctxs;
  ctxs.push_back(std::make_unique<ZmqContext>());
  ServiceOptions so;
  so.worker_endpoint = "tcp://" + where.bind + ":*";
  so.client_endpoint = "tcp://" + where.bind + ":*";
  so.group_commit = group_commit;
  CoordinatorService service(*ctxs[0], core, so);
  if (!service.Bind().ok()) throw std::runtime_error("bind failed");
  std::thread loop([&] { service.Run(false); });

  auto client = DealerSocket::Connect(*ctxs[0], service.client_endpoint()).value();
  auto sub = Ask<SubmitReplyMsg>(*client, SubmitSweepMsg{Spec(n_trials), ""});
  // The simulated workers get their own contexts (I/O threads), as separate worker
  // processes would; ZeroMQ's default is 1023 sockets per context. Made on the workers'
  // "host": the contexts' I/O threads start there and make the TCP connections.
  EnterNetns(where.workers_netns_fd);
  ctxs.push_back(std::make_unique<ZmqContext>());
  std::vector<SimWorker> ws(n_workers);
  std::vector<DealerSocket*> socks;
  for (int i = 0; i < n_workers; ++i) {
    if (i % 500 == 499) ctxs.push_back(std::make_unique<ZmqContext>());
    ws[i].sock = DealerSocket::Connect(*ctxs.back(), service.worker_endpoint()).value();
    ws[i].id = Ask<RegisterReplyMsg>(*ws[i].sock, RegisterMsg{"", "local", {}, 1, {}}).worker_id;
    socks.push_back(ws[i].sock.get());
  }
  // The baseline first (it gates every trial), as a real worker would deliver it.
  auto train = Ask<AssignMsg>(*ws[0].sock, RequestWorkMsg{ws[0].id, 0}).task;
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
  std::mt19937 rng(7);
  std::exponential_distribution<double> think(think_s > 0 ? 1.0 / think_s : 1.0);
  auto t0 = Steady::now();
  const double cpu0 = ThreadCpuSeconds(loop);
  for (auto& w : ws) {
    w.sent = Steady::now();
    (void)w.sock->Send(Encode(RequestWorkMsg{w.id, 0}));
  }
  // Each worker: request -> assign -> result -> ack -> [pause] -> request ... until nothing is left.
  size_t finished = 0;
  std::vector<size_t> ready;
  while (f.tasks < total && finished < ws.size()) {
    DealerSocket::PollAny(socks, think_s > 0 ? 1 : 100, &ready);
    for (size_t i : ready) {
      SimWorker& w = ws[i];
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
        if (think_s > 0) {
          w.waiting = true;
          w.next_request = Steady::now() + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(think(rng)));
        } else {
          w.sent = Steady::now();
          (void)w.sock->Send(Encode(RequestWorkMsg{w.id, 0}));
        }
      } else if (std::holds_alternative<NoWorkMsg>(msg.value())) {
        w.finished = true;
        ++finished;
      }
    }
    if (think_s > 0) {
      auto now = Steady::now();
      for (auto& w : ws)
        if (w.waiting && now >= w.next_request) {
          w.waiting = false;
          w.sent = now;
          (void)w.sock->Send(Encode(RequestWorkMsg{w.id, 0}));
        }
    }
  }
  f.seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  f.coord_cpu_us_per_task = f.tasks ? (ThreadCpuSeconds(loop) - cpu0) * 1e6 / f.tasks : 0;
  f.latency = worker::Summarize(lat_ms);
  f.coord_p50_ms = service.dispatch_latency().Quantile(0.5) * 1e3;
  f.coord_p99_ms = service.dispatch_latency().Quantile(0.99) * 1e3;
  f.ack_p99_ms = service.commit_latency().Quantile(0.99) * 1e3;
  service.Stop();
  loop.join();
  ws.clear();
  client.reset();
  EnterNetns(where.home_netns_fd);  // the next run's coordinator binds at home
  std::filesystem::remove_all(dir);
  return f;
}

nlohmann::json ToJson(const Figures& f, double tps) {
  return {{"workers", f.workers}, {"tasks", f.tasks}, {"seconds", f.seconds}, {"tasks_per_s", tps},
          {"dispatch_p50_ms", f.latency.p50_ms}, {"dispatch_p90_ms", f.latency.p90_ms},
          {"dispatch_p99_ms", f.latency.p99_ms}, {"coordinator_dispatch_p50_ms", f.coord_p50_ms},
          {"coordinator_dispatch_p99_ms", f.coord_p99_ms}, {"result_ack_p99_ms", f.ack_p99_ms},
          {"coordinator_loop_cpu_us_per_task", f.coord_cpu_us_per_task},
          {"coordinator_loop_capacity_tasks_per_s", f.coord_cpu_us_per_task > 0 ? 1e6 / f.coord_cpu_us_per_task : 0}};
}

// Dask's figure for the same workload, or an explanation.
nlohmann::json Dask(int tasks, int workers) {
  if (std::system("/usr/bin/python3 -c 'import distributed' > /dev/null 2>&1") != 0)
    return {{"error", "not measured: python3-distributed is not installed (cluster/install-deps.sh installs it)"}};
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/bench/dask_noop.py " + std::to_string(tasks) + " " +
                    std::to_string(workers) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {{"error", "cannot run " + cmd}};
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int rc = pclose(p);
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (rc != 0 || j.is_discarded()) return {{"error", "dask_noop.py failed (exit " + std::to_string(rc) + ")"}};
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  int trials = 20000;
  bool no_dask = false;
  std::string counts = "10,100,200,1000", workers_netns;
  Placement where;
  bench::BenchFlags flags("dispatch_scale", "coordinator dispatch throughput and latency with simulated workers");
  flags.Int("--tasks", &trials, "trials per run")
      .Bool("--no-dask", &no_dask, "skip the Dask comparison")
      .String("--workers", &counts, "simulated worker counts, comma-separated")
      .String("--bind", &where.bind, "address the coordinator listens on (its namespace's)")
      .String("--workers-netns", &workers_netns, "network namespace (ip netns) the simulated workers connect from");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  std::vector<int> worker_counts;
  {
    std::stringstream ss(counts);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      long n = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end || n < 1 || n > 100000) {
        std::fprintf(stderr, "dispatch_scale: --workers wants counts in 1..100000, comma-separated (got '%s')\n", counts.c_str());
        return 2;
      }
      worker_counts.push_back(static_cast<int>(n));
    }
  }
  if (!workers_netns.empty()) {
    where.workers_netns_fd = open(("/var/run/netns/" + workers_netns).c_str(), O_RDONLY | O_CLOEXEC);
    where.home_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (where.workers_netns_fd < 0 || where.home_netns_fd < 0) {
      std::fprintf(stderr, "dispatch_scale: --workers-netns %s: no such network namespace (ip netns list), or not root\n",
                   workers_netns.c_str());
      return 2;
    }
  }
  const bool json_out = flags.json();
  nlohmann::json out{{"trials_per_run", trials},
                     {"coordinator_address", where.bind},
                     {"workers_netns", workers_netns.empty() ? nlohmann::json(nullptr) : nlohmann::json(workers_netns)},
                     {"store", "rocksdb; results acknowledged after a WAL sync (group commit: one per round)"},
                     {"cores", std::thread::hardware_concurrency()},
                     {"runs", nlohmann::json::array()}};
  auto say = [&](const char* fmt, auto... args) {
    if (!json_out) std::printf(fmt, args...);
  };
  say("coordinator dispatch: no-op tasks (each trial = a prune task + a benchmark task), real sockets %s,\n"
      "durable results, %d trials per run; simulated workers share the %u cores\n",
      workers_netns.empty() ? ("on " + where.bind).c_str() : ("from namespace " + workers_netns + " to " + where.bind).c_str(),
      trials, std::thread::hardware_concurrency());
  double tps200 = 0, tps10 = 0;
  for (int n : worker_counts) {
    Figures sat = Run(n, trials, true, 0, where);
    double tps = sat.tasks / sat.seconds;
    if (n == 200) tps200 = tps;
    if (n == 10) tps10 = tps;
    // Half load: each worker pauses so that n workers offer half the saturated rate.
    double think_s = std::max(0.0, n / (0.5 * tps));
    Figures half = Run(n, trials, true, think_s, where);
    double half_tps = half.tasks / half.seconds;
    nlohmann::json run{{"workers", n}, {"saturated", ToJson(sat, tps)}, {"half_load", ToJson(half, half_tps)}};
    say("  %5d workers  saturated: %6llu tasks in %5.2f s = %7.0f tasks/s; end-to-end p50 %.2f ms p99 %.2f ms "
        "(queueing: %d outstanding); coordinator p50 %.3f ms p99 %.3f ms; result ack p99 %.2f ms; "
        "event loop %.1f us CPU/task (%.0f tasks/s if it had a core to itself)\n",
        n, static_cast<unsigned long long>(sat.tasks), sat.seconds, tps, sat.latency.p50_ms, sat.latency.p99_ms, n,
        sat.coord_p50_ms, sat.coord_p99_ms, sat.ack_p99_ms, sat.coord_cpu_us_per_task,
        sat.coord_cpu_us_per_task > 0 ? 1e6 / sat.coord_cpu_us_per_task : 0.0);
    say("  %5d workers  half load: %7.0f tasks/s offered %.0f; dispatch p50 %.3f ms p90 %.3f ms p99 %.3f ms; "
        "coordinator p99 %.3f ms\n",
        n, half_tps, 0.5 * tps, half.latency.p50_ms, half.latency.p90_ms, half.latency.p99_ms, half.coord_p99_ms);
    if (n == 200) {
      // Side by side: the same run with a WAL sync per state change instead of per round.
      Figures sync = Run(n, trials, false, 0, where);
      double sync_tps = sync.tasks / sync.seconds;
      run["sync_per_change"] = ToJson(sync, sync_tps);
      run["group_over_sync_per_change"] = tps / sync_tps;
      say("  %5d workers  sync per change (for comparison): %7.0f tasks/s; group commit is %.2fx\n", n, sync_tps,
          tps / sync_tps);
    }
    out["runs"].push_back(run);
  }
  out["tasks_per_s_200_workers"] = tps200;
  if (no_dask) {
    out["dask"] = {{"error", "skipped (--no-dask)"}};
  } else {
    // Dask: 10 worker processes (one thread each) on the same machine, 2x trials no-op tasks.
    nlohmann::json d = Dask(2 * trials, 10);
    out["dask"] = d;
    if (d.contains("tasks_per_s")) {
      double dtps = d["tasks_per_s"].get<double>();
      out["prunelab_10_workers_over_dask_10_workers"] = tps10 / dtps;
      out["prunelab_200_workers_over_dask_10_workers"] = tps200 / dtps;
      say("  Dask %s LocalCluster, 10 worker processes: %d no-op tasks in %.2f s = %.0f tasks/s; prunelab is %.1fx "
          "(10 workers) and %.1fx (200 workers)\n",
          d.value("dask_version", "?").c_str(), 2 * trials, d["seconds"].get<double>(), dtps, tps10 / dtps, tps200 / dtps);
    } else {
      say("  Dask: %s\n", d.value("error", "?").c_str());
    }
  }
  if (json_out) std::printf("%s\n", out.dump().c_str());
  return 0;
}
