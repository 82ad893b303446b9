// prunelab-coordinator: the long-running service. State lives in --data-dir (RocksDB);
// kill it at any time and start it again on the same directory to resume.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/base/clock.h"
#include "common/net/keys.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/http/http.h"
#include "coordinator/service/service.h"

int main(int argc, char** argv) {
  std::string data_dir;
  prunelab::coordinator::ServiceOptions options;
  prunelab::coordinator::CoordinatorOptions core_options;
  std::string curve_key, allow_workers, allow_clients;
  std::string http = "127.0.0.1:8480";
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
    else if (a == "--curve-key") curve_key = next();
    else if (a == "--http") http = next();
    else if (a == "--allow-workers") allow_workers = next();
    else if (a == "--allow-clients") allow_clients = next();
    else if (a == "-h" || a == "--help") {
      std::printf("usage: prunelab-coordinator --data-dir DIR [--worker-endpoint tcp://*:5555] "
                  "[--client-endpoint tcp://*:5556] [--heartbeat-ms 1000] [--max-attempts 3] [--verbose]\n"
                  "       [--curve-key coordinator.key --allow-workers FILE --allow-clients FILE] [--http ADDR:PORT|off]\n"
                  "  --http: dashboard, JSON API and /metrics (default 127.0.0.1:8480; 0.0.0.0:PORT to share it; off)\n"
                  "  --max-attempts: worker losses a task survives before it fails with every attempt's reason\n"
                  "  --curve-key: encrypt and authenticate with CURVE (key pair from `prunelab keygen`); only public keys\n"
                  "    listed in --allow-workers (worker endpoint) and --allow-clients (client endpoint) may connect\n");
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
  if (!curve_key.empty()) {
    if (allow_workers.empty() || allow_clients.empty()) {
      std::fprintf(stderr, "prunelab-coordinator: --curve-key needs --allow-workers FILE and --allow-clients FILE "
                           "(public keys, one per line); without allow-lists CURVE would admit anyone\n");
      return 2;
    }
    auto keys = prunelab::ReadKeyPair(curve_key);
    auto w = prunelab::ReadAllowList(allow_workers);
    auto c = prunelab::ReadAllowList(allow_clients);
    for (const prunelab::Status& st : {keys.status(), w.status(), c.status()})
      if (!st.ok()) {
        std::fprintf(stderr, "prunelab-coordinator: %s\n", st.ToString().c_str());
        return 2;
      }
    options.keys = keys.value();
    options.allowed_workers = w.value();
    options.allowed_clients = c.value();
  } else if (!allow_workers.empty() || !allow_clients.empty()) {
    std::fprintf(stderr, "prunelab-coordinator: allow-lists need --curve-key (the coordinator's key pair)\n");
    return 2;
  }
  auto store = prunelab::coordinator::OpenRocksDbStore(data_dir + "/store");
  if (!store.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: %s\n", store.status().ToString().c_str());
    return 1;
  }
  prunelab::SystemClock clock;
  prunelab::coordinator::TimedStore timed(*store.value());
  prunelab::coordinator::Coordinator core(timed, clock, core_options);
  if (auto st = core.Recover(); !st.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: cannot recover state from %s: %s\n", data_dir.c_str(),
                 st.ToString().c_str());
    return 1;
  }
  prunelab::ZmqContext ctx;
  prunelab::coordinator::DashboardState dashboard;
  dashboard.store_write = &timed.write_latency;
  dashboard.store_sync = &timed.sync_latency;
  options.dashboard = &dashboard;
  prunelab::coordinator::CoordinatorService service(ctx, core, options);
  if (auto st = service.Bind(); !st.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: %s\n", st.ToString().c_str());
    return 1;
  }
  std::unique_ptr<prunelab::coordinator::HttpServer> web;
  if (http != "off") {
    auto colon = http.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "prunelab-coordinator: --http wants ADDR:PORT (e.g. 127.0.0.1:8480) or off\n");
      return 2;
    }
    web = std::make_unique<prunelab::coordinator::HttpServer>(http.substr(0, colon), std::atoi(http.substr(colon + 1).c_str()),
                                                              timed, dashboard);
    if (auto st = web->Start(); !st.ok()) {
      std::fprintf(stderr, "prunelab-coordinator: %s\n", st.ToString().c_str());
      return 1;
    }
    std::fprintf(stderr, "prunelab-coordinator: dashboard at http://%s:%u/ (metrics at /metrics)\n",
                 http.substr(0, colon).c_str(), web->port());
  }
  std::fprintf(stderr, "prunelab-coordinator: data in %s; workers connect to %s, clients to %s\n", data_dir.c_str(),
               service.worker_endpoint().c_str(), service.client_endpoint().c_str());
  if (options.keys.secret_key.empty())
    std::fprintf(stderr,
                 "prunelab-coordinator: WARNING plain mode: no authentication or encryption; anyone who can reach these "
                 "ports can submit work and results. Use only on a single trusted machine; see README \"Authentication\"\n");
  else
    std::fprintf(stderr, "prunelab-coordinator: CURVE on: %zu worker key(s) and %zu client key(s) allowed\n",
                 options.allowed_workers.size(), options.allowed_clients.size());
  service.Run(/*handle_signals=*/true);
  return 0;
}
