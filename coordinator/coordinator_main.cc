// prunelab-coordinator: the long-running service. State lives in --data-dir (RocksDB records
// under store/, artifacts as files under artifacts/);
// kill it at any time and start it again on the same directory to resume.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "common/base/log.h"
#include "common/base/clock.h"
#include "common/flags/flags.h"
#include "common/net/keys.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/http/http.h"
#include "coordinator/store/timed_store.h"
#include "coordinator/service/service.h"

constexpr uint64_t kDefaultMinFreeMb = prunelab::coordinator::kDefaultMinFreeBytes >> 20;

// Runs the service until it stops; *restart is set when it stopped to restart from the store
// (space came back after a full disk). Every object is destroyed before this returns, so a
// restart by exec inherits no socket, file or lock.
int Serve(int argc, char** argv, bool* restart) {
  std::string data_dir;
  prunelab::coordinator::ServiceOptions options;
  prunelab::coordinator::CoordinatorOptions core_options;
  std::string curve_key, allow_workers, allow_clients;
  std::string http = "127.0.0.1:8480";
  CLI::App app("prunelab-coordinator: the long-running service; state lives in --data-dir (RocksDB): kill it at any "
               "time and start it again on the same directory to resume", "prunelab-coordinator");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a flag given twice: the last wins
  app.add_option("--data-dir", data_dir, "where sweeps and results are kept")->required();
  app.add_option("--worker-endpoint", options.worker_endpoint, "where workers connect")->capture_default_str();
  app.add_option("--client-endpoint", options.client_endpoint, "where the prunelab CLI connects")->capture_default_str();
  app.add_option("--heartbeat-ms", core_options.heartbeat_interval_ms, "worker heartbeat interval")
      ->check(CLI::Range(10, 600000))->capture_default_str();
  app.add_option("--dead-after-heartbeats", core_options.dead_after_missed_heartbeats,
                 "heartbeat intervals of silence after which a worker is declared dead and its tasks requeued")
      ->check(CLI::Range(2, 1000))->capture_default_str();
  app.add_option("--max-attempts", core_options.max_attempts,
                 "worker losses a task survives before it fails with every attempt's reason")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--max-trials", core_options.max_trials_per_sweep, "trials one sweep may expand into")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  uint64_t max_artifact_mb = prunelab::kDefaultMaxArtifactBytes >> 20;
  app.add_option("--max-artifact-mb", max_artifact_mb, "largest artifact (user model, baseline, variant) taken, in MiB; "
                                                       "artifacts travel and are stored in chunks")
      ->check(CLI::Range(1, 1 << 24))->capture_default_str();
  uint64_t min_free_mb = kDefaultMinFreeMb;
  app.add_option("--min-free-mb", min_free_mb, "stop writing (and acknowledging) when the data directory's filesystem "
                                               "has less free than this")
      ->check(CLI::Range(0, 1 << 30))->capture_default_str();
  app.add_flag("--verbose", options.verbose, "log every accepted and rejected message");
  app.add_option("--curve-key", curve_key, "encrypt and authenticate with CURVE (key pair from `prunelab keygen`)");
  app.add_option("--allow-workers", allow_workers, "public keys that may connect to the worker endpoint, one per line");
  app.add_option("--allow-clients", allow_clients, "public keys that may connect to the client endpoint, one per line");
  app.add_option("--http", http, "dashboard, JSON API and /metrics: ADDR:PORT (0.0.0.0:PORT to share it) or off")
      ->capture_default_str();
  if (auto rc = prunelab::flags::Parse(app, argc, argv)) return *rc;
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
  auto store = prunelab::coordinator::OpenRocksDbStore(data_dir + "/store", /*read_only=*/false, min_free_mb << 20);
  if (!store.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: %s\n", store.status().ToString().c_str());
    return 1;
  }
  core_options.uploads.max_artifact_bytes = max_artifact_mb << 20;
  // Operator events with the wall time (the log's date and time, ms): what a lab reads in the
  // journal or a job's log.
  core_options.on_event = [](const std::string& line) { prunelab::log::Info("coordinator: " + line); };
  prunelab::SystemClock clock;
  prunelab::coordinator::TimedStore timed(*store.value());
  auto artifacts = prunelab::coordinator::OpenFileArtifactStore(data_dir + "/artifacts", &timed, min_free_mb << 20);
  if (!artifacts.ok()) {
    std::fprintf(stderr, "prunelab-coordinator: %s\n", artifacts.status().ToString().c_str());
    return 1;
  }
  prunelab::coordinator::Coordinator core(timed, *artifacts.value(), clock, core_options);
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
  const std::string store_dir = data_dir + "/store";
  const uint64_t reserve = min_free_mb << 20;
  // Writable again: the reserve plus room for RocksDB to reopen (a WAL and a manifest).
  options.store_writable_again = [store_dir, reserve] {
    return prunelab::coordinator::HasFreeSpace(store_dir, reserve + (16ull << 20));
  };
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
    int port = -1;
    try {
      size_t used = 0;
      port = std::stoi(http.substr(colon + 1), &used);
      if (used != http.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
    }
    if (port < 0 || port > 65535) {
      std::fprintf(stderr, "prunelab-coordinator: --http port '%s' is not a number in 0..65535\n", http.substr(colon + 1).c_str());
      return 2;
    }
    web = std::make_unique<prunelab::coordinator::HttpServer>(http.substr(0, colon), static_cast<uint16_t>(port), timed, dashboard);
    if (auto st = web->Start(); !st.ok()) {
      std::fprintf(stderr, "prunelab-coordinator: %s\n", st.ToString().c_str());
      return 1;
    }
    prunelab::log::Info("prunelab-coordinator: dashboard at http://" + http.substr(0, colon) + ":" +
                        std::to_string(web->port()) + "/ (metrics at /metrics)");
  }
  prunelab::log::Info("prunelab-coordinator: data in " + data_dir + "; workers connect to " + service.worker_endpoint() +
                      ", clients to " + service.client_endpoint());
  if (options.keys.secret_key.empty())
    prunelab::log::Warn(
        "prunelab-coordinator: WARNING plain mode: no authentication or encryption; anyone who can reach these ports can "
        "submit work and results. Use only on a single trusted machine; see README \"Authentication\"");
  else
    prunelab::log::Info("prunelab-coordinator: CURVE on: " + std::to_string(options.allowed_workers.size()) +
                        " worker key(s) and " + std::to_string(options.allowed_clients.size()) + " client key(s) allowed");
  service.Run(/*handle_signals=*/true);
  *restart = service.restart_requested();
  return service.store_failed() ? 3 : 0;
}

int main(int argc, char** argv) {
  bool restart = false;
  int rc = Serve(argc, argv, &restart);
  if (restart) {
    execv("/proc/self/exe", argv);  // the same program and flags, recovering from the store
    std::perror("prunelab-coordinator: cannot restart itself (start it again by hand)");
    return 3;
  }
  return rc;
}
