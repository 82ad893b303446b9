// prunelab run: a sweep on this machine with an embedded coordinator and local worker
// processes; shows progress and prints the Pareto result.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/printf.h>

#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "common/spec/task_graph.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/local_cluster.h"
#include "coordinator/decide/decision.h"
#include "coordinator/decide/pareto.h"

namespace prunelab::cli {

namespace pc = ::prunelab::coordinator;


std::string WorkerBinary() {
  if (const char* env = std::getenv("PRUNELAB_WORKER_BIN")) return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "prunelab-worker").string();
}

std::string ProgressLine(const pl::SweepStatus& s, const std::vector<pl::WorkerStatus>& workers, double elapsed) {
  std::string line = fmt::sprintf("[%5.0f s] %s: %u/%u results (%u failed), %u running", elapsed, s.id,
                                  s.done + s.failed, s.trials, s.failed, s.running);
  for (const auto& w : workers) {
    if (!w.alive) continue;
    line += " | " + w.worker_id.substr(0, 4) + ": ";
    if (w.task_id.empty()) {
      line += "idle";
    } else {
      auto slash = w.task_id.find('/');
      line += fmt::sprintf("%s %s %.0f%%", w.task_id.substr(slash + 1), w.phase, w.progress * 100);
    }
  }
  return line;
}


// Polls the embedded coordinator until the sweep ends, every worker has exited, or Ctrl-C;
// shows progress. Returns 0 when the sweep ended, the exit code otherwise.
int FollowSweep(pl::RpcClient& rpc, const std::string& id, pc::LocalWorkers& workers, const std::string& data_dir) {
  const bool tty = isatty(2);
  auto start = std::chrono::steady_clock::now();
  auto last_print = start;
  int rc = 0;
  while (!g_interrupted) {
    auto st = AskFor<pl::StatusReplyMsg>(rpc, pl::StatusRequestMsg{id});
    auto wk = AskFor<pl::WorkersReplyMsg>(rpc, pl::WorkersRequestMsg{});
    if (!st.ok() || st->sweeps.empty()) {
      rc = Fail("lost the embedded coordinator: " + st.status().ToString());
      break;
    }
    const auto& s = st->sweeps[0];
    const bool ended = s.state == "done" || s.state == "cancelled";
    std::string line = ProgressLine(s, wk.ok() ? wk->workers : std::vector<pl::WorkerStatus>{}, SecondsSince(start));
    auto now = std::chrono::steady_clock::now();
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", line.substr(0, 200).c_str());
    } else if (now - last_print > std::chrono::seconds(10) || ended) {
      std::fprintf(stderr, "%s\n", line.c_str());
      last_print = now;
    }
    if (ended) break;
    int alive = workers.Poll([](size_t i, int status, const std::string& log) {
      std::fprintf(stderr, "\nprunelab: worker %zu exited (status %d); see %s\n", i + 1, status, log.c_str());
    });
    if (alive == 0) {
      rc = Fail("every worker has exited before the sweep finished; see the logs in " + data_dir + "/logs");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (tty) std::fprintf(stderr, "\n");
  return rc;
}

int PrintFinalResults(pl::RpcClient& rpc, const std::string& id, const pl::SweepSpec& spec, const std::string& data_dir,
                      double elapsed) {
  auto res = AskFor<pl::ResultsReplyMsg>(rpc, pl::ResultsRequestMsg{id}, 60000);
  if (!res.ok()) return Fail(res.status().ToString());
  auto rows = ResultRows(res->results);
  std::printf("\nSweep %s '%s' finished in %.1f s.\n\nAll results:\n%s\n", id.c_str(), spec.name.c_str(), elapsed,
              pc::FormatResultsTable(rows).c_str());
  std::printf("%s", pc::FormatParetoTable(res->results, "").c_str());
  auto opts = pc::OptionsFromSpec(spec.report);
  if (opts.ok()) std::printf("%s\n", pc::FormatDecisions(pc::Decide(res->results, opts.value()), opts.value()).c_str());
  std::printf("Stored in %s. More: prunelab report %s -o report/ --data-dir %s (HTML) | prunelab pareto %s --data-dir %s --json\n",
              data_dir.c_str(), id.c_str(), data_dir.c_str(), id.c_str(), data_dir.c_str());
  return 0;
}

// prunelab run: everything is checked before anything starts; the embedded coordinator and
// the workers are owners, so each return below stops and reaps them.
int CmdRun(const Args& a) {
  const std::string spec_path = a.positional[0];
  auto text = pl::ReadSpecFile(spec_path);
  if (!text.ok()) return Fail(text.status().ToString());
  auto spec = pl::ParseSpec(text.value());
  if (!spec.ok()) return Fail(spec_path + ": " + spec.status().message());
  auto msg = SubmitMessage(spec_path, text.value(), spec.value());
  if (!msg.ok()) return Fail(msg.status().ToString());
  // The workers are local: their dataset is on this machine, so check it now.
  if (auto st = pl::CheckDatasetFiles(spec->dataset); !st.ok()) return Fail(st.ToString());
  const int n_workers = static_cast<int>(a.Integer("--workers", 2));
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = a.Has("--threads") ? static_cast<int>(a.Integer("--threads", 1)) : std::max(1, cores / n_workers);
  const std::string data_dir = a.Get("--data-dir", "prunelab-data");
  const std::string bin = WorkerBinary();
  if (access(bin.c_str(), X_OK) != 0) return Fail("worker binary not found at " + bin + " (build it, or set PRUNELAB_WORKER_BIN)");
  std::error_code ec;
  std::filesystem::create_directories(data_dir + "/logs", ec);
  if (ec) return Fail("cannot create " + data_dir + "/logs: " + ec.message() + "; use another --data-dir");

  auto embedded = pc::EmbeddedCoordinator::Start(data_dir, static_cast<int>(a.Integer("--http", -1)));
  if (!embedded.ok()) return Fail(embedded.status().ToString());
  pc::EmbeddedCoordinator& coord = *embedded.value();
  std::fprintf(stderr, "embedded coordinator on %s (plain mode, loopback only: no authentication; for a lab network "
                       "see README \"Authentication\")\n", coord.worker_endpoint().c_str());
  if (coord.http_port()) std::fprintf(stderr, "prunelab: dashboard at http://127.0.0.1:%u/ (metrics at /metrics)\n", coord.http_port());
  signal(SIGINT, OnSigint);
  signal(SIGTERM, OnSigint);

  pc::LocalWorkers workers(bin);
  for (int i = 0; i < n_workers; ++i) {
    const std::string n = std::to_string(i + 1);
    workers.Spawn({"--coordinator", coord.worker_endpoint(), "--target", spec->targets[i % spec->targets.size()],
                   "--threads", std::to_string(threads), "--cache-dir", data_dir + "/cache/worker-" + n},
                  data_dir + "/logs/worker-" + n + ".log");
  }
  std::fprintf(stderr, "prunelab: embedded coordinator on %s; %d local worker(s) with %d thread(s) each; logs in %s/logs\n",
               coord.worker_endpoint().c_str(), n_workers, threads, data_dir.c_str());

  pl::RpcClient rpc(coord.context(), coord.client_endpoint());
  auto sub = Submit(rpc, msg.value());
  if (!sub.ok()) return Fail(sub.status().ToString());
  const std::string id = sub->sweep_id;
  std::fprintf(stderr, "prunelab: sweep '%s' is %s: %zu trial(s) x %zu target(s) + dense baseline\n", spec->name.c_str(),
               id.c_str(), pl::TrialCount(spec.value()), spec->targets.size());
  auto start = std::chrono::steady_clock::now();
  int rc = FollowSweep(rpc, id, workers, data_dir);
  // Workers drain on the first SIGTERM; after an interrupt the embedded coordinator is going
  // away, so they are told to stop at once.
  workers.Stop(/*immediately=*/g_interrupted.load());
  if (g_interrupted) {
    std::fprintf(stderr, "prunelab: interrupted; everything recorded so far is in %s. Results so far:\n"
                         "  prunelab results %s --data-dir %s\n", data_dir.c_str(), id.c_str(), data_dir.c_str());
    return 130;
  }
  if (rc != 0) return rc;
  return PrintFinalResults(rpc, id, spec.value(), data_dir, SecondsSince(start));
}

}  // namespace prunelab::cli
