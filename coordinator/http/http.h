// The coordinator's HTTP side (Boost.Beast): a live dashboard page, the JSON API behind it
// and GET /metrics in the Prometheus text format. It runs on its own thread and never touches
// the Coordinator: the service publishes a snapshot every tick (DashboardState, coordinator/service/dashboard_state.h), and results
// are read from the store, which is safe for concurrent use. So it never blocks the scheduler.
//
//   GET /                          the dashboard (sweeps with progress, workers, Pareto plots)
//   GET /api/sweeps                sweep statuses (JSON)
//   GET /api/workers               workers, hardware and health (JSON)
//   GET /api/sweeps/ID/decisions   fronts, gates and the recommendation per target (JSON)
//   GET /metrics                   Prometheus text
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/base/types.h"
#include "coordinator/service/dashboard_state.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

// Prometheus text exposition of a snapshot and the histograms.
std::string MetricsText(const DashboardSnapshot& s, const DashboardState& state);

// Per sweep and target (the kCandidateMetricSweeps newest sweeps with results): whether a
// variant passes the gates, and the candidate's accuracy drop, memory ratio and p90 latency,
// with the sweep's latency budget — what the release-threshold alerts of
// cluster/prometheus/alerts.yml compare. Reads results from the store.
constexpr size_t kCandidateMetricSweeps = 20;
std::string CandidateMetricsText(Store& store, std::vector<SweepStatus> sweeps);

// What GET `target` answers, without the network (the server maps it onto HTTP; the
// whole-path fuzzer calls it directly). Never throws.
struct HttpReply {
  int status = 200;
  std::string content_type;
  std::string body;
};
HttpReply ServeGet(std::string target, Store& store, const DashboardState& state);

class HttpServer {
 public:
  // address like 127.0.0.1, port 0 = ephemeral. store and state must outlive the server.
  HttpServer(std::string address, uint16_t port, Store& store, const DashboardState& state);
  ~HttpServer();
  Status Start();           // binds and starts the thread
  uint16_t port() const;    // the bound port
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prunelab::coordinator
