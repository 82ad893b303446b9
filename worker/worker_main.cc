// prunelab-worker: one per machine or device. See README "Running a cluster".
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "common/base/hardware.h"
#include "common/net/keys.h"
#include "worker/daemon/daemon.h"

namespace {
// First SIGTERM/SIGINT: drain (finish and report the running task, take no more).
// Second: stop now (the running task is abandoned; the coordinator re-runs it elsewhere).
std::atomic<bool> g_drain{false};
std::atomic<bool> g_stop{false};
void OnSignal(int) {
  if (!g_drain.exchange(true)) {
    const char msg[] = "prunelab-worker: draining: finishing the running task; signal again to abandon it\n";
    (void)!write(2, msg, sizeof(msg) - 1);
  } else {
    g_stop = true;
  }
}

void Usage() {
  std::fprintf(stderr,
               "usage: prunelab-worker --coordinator tcp://HOST:PORT --target NAME [--threads N]\n"
               "                       [--device cpu|cuda:N] [--cache-dir DIR] [--worker-id ID] [--max-tasks N]\n"
               "  --coordinator  the coordinator's worker endpoint (its --worker-endpoint)\n"
               "  --target       hardware target name this machine benchmarks for (as in the spec's targets)\n"
               "  --threads      LibTorch intra-op threads (default: all cores)\n"
               "  --cache-dir    where artifacts are cached (default: ~/.cache/prunelab)\n"
               "  --host-lock    file every worker on this host locks so benchmarks never overlap other work\n"
               "                 (default /tmp/prunelab-host.lock; '' disables)\n"
               "  --rpc-timeout-ms  how long to wait for the coordinator before retrying (default 30000)\n"
               "  --slots        tasks run at once, one thread each (default 1; give each --threads / slots cores)\n"
               "  --curve-key NAME.key --server-key coordinator.pub\n"
               "                 connect with CURVE (keys from `prunelab keygen`; NAME.pub must be in the\n"
               "                 coordinator's --allow-workers list)\n");
}
}  // namespace

int main(int argc, char** argv) {
  prunelab::worker::WorkerOptions options;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::string device = "cpu";
  std::string curve_key, server_key;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "prunelab-worker: %s needs a value\n", a.c_str());
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--coordinator") options.coordinator = next();
    else if (a == "--target") options.target = next();
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--device") device = next();
    else if (a == "--cache-dir") options.cache_dir = next();
    else if (a == "--worker-id") options.worker_id = next();
    else if (a == "--max-tasks") options.max_tasks = std::atoi(next().c_str());
    else if (a == "--host-lock") options.host_lock_path = next();
    else if (a == "--rpc-timeout-ms") options.rpc_timeout_ms = std::atoi(next().c_str());
    else if (a == "--slots") options.slots = std::atoi(next().c_str());
    else if (a == "--curve-key") curve_key = next();
    else if (a == "--server-key") server_key = next();
    else if (a == "-h" || a == "--help") { Usage(); return 0; }
    else {
      std::fprintf(stderr, "prunelab-worker: unknown argument '%s'\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (options.coordinator.empty()) {
    std::fprintf(stderr, "prunelab-worker: --coordinator is required (e.g. tcp://127.0.0.1:5555)\n");
    Usage();
    return 2;
  }
  if (options.slots < 1 || options.slots > 64) {
    std::fprintf(stderr, "prunelab-worker: --slots must be in 1..64\n");
    return 2;
  }
  if (auto sec = prunelab::LoadClientSecurity(curve_key, server_key); !sec.ok()) {
    std::fprintf(stderr, "prunelab-worker: %s\n", sec.status().ToString().c_str());
    return 2;
  } else {
    options.security = sec.value();
  }
  if (threads < 1) {
    std::fprintf(stderr, "prunelab-worker: --threads must be >= 1\n");
    return 2;
  }
  if (options.cache_dir.empty()) {
    const char* home = std::getenv("HOME");
    options.cache_dir = std::string(home ? home : "/tmp") + "/.cache/prunelab";
  }
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
  prunelab::worker::WorkerDaemon daemon(ctx, *executor, options, hw.value());
  return daemon.Run(g_stop, &g_drain);
}
