// prunelab-coordinator: the long-running service. State lives in --data-dir (RocksDB);
// kill it at any time and start it again on the same directory to resume.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "coordinator/service.h"

int main(int argc, char** argv) {
  std::string data_dir;
  prunelab::coordinator::ServiceOptions options;
  prunelab::coordinator::CoordinatorOptions core_options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "prunelab-coordinator: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data-dir") data_dir = next();
    else if (a == "--worker-endpoint") options.worker_endpoint = next();
    else if (a == "--client-endpoint") options.client_endpoint = next();
    else if (a == "--heartbeat-ms") core_options.heartbeat_interval_ms = std::atoi(next().c_str());
    else if (a == "--max-attempts") core_options.max_attempts = static_cast<uint32_t>(std::atoi(next().c_str()));
    else if (a == "--verbose") options.verbose = true;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: prunelab-coordinator --data-dir DIR [--worker-endpoint tcp://*:5555] "
                  "[--client-endpoint tcp://*:5556] [--heartbeat-ms 1000] [--max-attempts 3] [--verbose]\n"
                  "  --max-attempts: worker losses a task survives before it fails with every attempt's reason\n");
      return 0;
    } else {
      std::fprintf(stderr, "prunelab-coordinator: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (core_options.max_attempts < 1 || core_options.heartbeat_interval_ms < 10) {
    std::fprintf(stderr, "prunelab-coordinator: --max-attempts must be >= 1 and --heartbeat-ms >= 10\n");
    return 2;
  }
  if (data_dir.empty()) {
    std::fprintf(stderr, "prunelab-coordinator: --data-dir DIR is required (where sweeps and results are kept)\n");
    return 2;
  }
  auto store = prunelab::coordinator::OpenRocksDbStore(data_dir + "/store");
  if (!store.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: %s\n", store.status().ToString().c_str());
    return 1;
  }
  prunelab::SystemClock clock;
  prunelab::coordinator::Coordinator core(*store.value(), clock, core_options);
  if (auto st = core.Recover(); !st.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: cannot recover state from %s: %s\n", data_dir.c_str(),
                 st.ToString().c_str());
    return 1;
  }
  prunelab::ZmqContext ctx;
  prunelab::coordinator::CoordinatorService service(ctx, core, options);
  if (auto st = service.Bind(); !st.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: %s\n", st.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr,
               "prunelab-coordinator: data in %s; workers connect to %s, clients to %s\n"
               "prunelab-coordinator: WARNING plain mode: no authentication or encryption; use only on a trusted network\n",
               data_dir.c_str(), service.worker_endpoint().c_str(), service.client_endpoint().c_str());
  service.Run(/*handle_signals=*/true);
  return 0;
}
