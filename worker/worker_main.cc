// prunelab-worker: one per machine or device. See README "Running a cluster".
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/base/hardware.h"
#include "common/flags/flags.h"
#include "common/net/keys.h"
#include "worker/daemon/daemon.h"
#include "worker/engine/torch_executor.h"

namespace {
// First SIGTERM/SIGINT: drain (finish and report the running task, take no more).
// Second: stop now (the running task is abandoned; the coordinator re-runs it elsewhere).
// A phase that does not poll the stop flag (a LibTorch call, serializing a large model, an
// RPC waiting out its timeout) must not keep the process alive: one second after the second
// signal the process exits whatever it is doing. Nothing acknowledged is lost by that: the
// coordinator has every result it acknowledged, and requeues the abandoned task.
constexpr unsigned kStopGraceSeconds = 1;
std::atomic<bool> g_drain{false};
std::atomic<bool> g_stop{false};
void OnStopDeadline(int) {
  const char msg[] = "prunelab-worker: still running 1 s after the second signal; exiting now (the task is abandoned)\n";
  (void)!write(2, msg, sizeof(msg) - 1);
  _exit(143);
}
void OnSignal(int) {
  if (!g_drain.exchange(true)) {
    const char msg[] = "prunelab-worker: draining: finishing the running task; signal again to abandon it\n";
    (void)!write(2, msg, sizeof(msg) - 1);
  } else if (!g_stop.exchange(true)) {
    alarm(kStopGraceSeconds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  prunelab::worker::WorkerOptions options;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  int threads = cores;
  std::string device = "cpu";
  std::string curve_key, server_key;
  CLI::App app("prunelab-worker: one per machine or device; see README \"Running a cluster\"", "prunelab-worker");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a flag given twice: the last wins
  app.add_option("--coordinator", options.coordinator, "the coordinator's worker endpoint (its --worker-endpoint), e.g. tcp://HOST:5555")
      ->required();
  app.add_option("--target", options.target, "hardware target this machine benchmarks for (as in the spec's targets)")
      ->capture_default_str();
  app.add_option("--threads", threads, "LibTorch intra-op threads (default: all cores)")->check(CLI::Range(1, 4 * std::max(1, cores)));
  app.add_option("--device", device, "cpu or cuda:N")->capture_default_str();
  app.add_option("--cache-dir", options.cache_dir, "where artifacts are cached (default: ~/.cache/prunelab)");
  app.add_option("--worker-id", options.worker_id, "a fixed id (default: the coordinator assigns one)");
  app.add_option("--max-tasks", options.max_tasks, "exit after this many tasks (0 = never)")->check(CLI::NonNegativeNumber);
  app.add_option("--host-lock", options.host_lock_path,
                 "file every worker on this host locks so benchmarks never overlap other work ('' disables)")
      ->capture_default_str();
  app.add_option("--max-other-cores", options.interference.max_other_cores,
                 "a benchmark run is disturbed (retried, then INVALID) when other processes used more cores than this "
                 "on average while it ran")
      ->check(CLI::Range(0.0, 4096.0))->capture_default_str();
  app.add_option("--max-steal", options.interference.max_steal, "... or the hypervisor stole more than this fraction of "
                                                                "CPU time")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--min-freq-ratio", options.interference.min_freq_ratio,
                 "... or the CPU frequency fell below this fraction of its highest (where the kernel shows it)")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  app.add_option("--max-ab-spread", options.interference.max_ab_spread,
                 "... or the fastest interleaved A/B round's speedup is more than this many times the slowest's")
      ->check(CLI::Range(1.0, 1000.0))->capture_default_str();
  app.add_option("--bench-retries", options.interference.retries, "disturbed benchmark runs tried again before INVALID stands")
      ->check(CLI::Range(0, 20))->capture_default_str();
  app.add_option("--rpc-timeout-ms", options.rpc_timeout_ms, "how long to wait for the coordinator before retrying")
      ->check(CLI::Range(100, 3600000))->capture_default_str();
  app.add_option("--slots", options.slots, "tasks run at once, one thread each (give each --threads / slots cores)")
      ->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--curve-key", curve_key, "this worker's CURVE secret key (from `prunelab keygen`; NAME.pub must be in "
                                           "the coordinator's --allow-workers list)");
  app.add_option("--server-key", server_key, "the coordinator's public key file");
  if (auto rc = prunelab::flags::Parse(app, argc, argv)) return *rc;
  if (auto sec = prunelab::LoadClientSecurity(curve_key, server_key); !sec.ok()) {
    std::fprintf(stderr, "prunelab-worker: %s\n", sec.status().ToString().c_str());
    return 2;
  } else {
    options.security = sec.value();
  }
  if (options.cache_dir.empty()) {
    const char* home = std::getenv("HOME");
    options.cache_dir = std::string(home ? home : "/tmp") + "/.cache/prunelab";
  }
  std::signal(SIGALRM, OnStopDeadline);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  prunelab::worker::ConfigureTorchThreads(threads);
  auto hw = prunelab::worker::AddTorchInfo(prunelab::ReadHostFingerprint(), device);
  if (!hw.ok()) {
    std::fprintf(stderr, "prunelab-worker: %s\n", hw.status().message().c_str());
    return 2;
  }
  prunelab::ZmqContext ctx;
  auto executor = prunelab::worker::NewTorchExecutor();
  prunelab::SystemClock clock;
  prunelab::worker::WorkerDaemon daemon(ctx, *executor, options, hw.value(), clock);
  return daemon.Run(g_stop, &g_drain);
}
