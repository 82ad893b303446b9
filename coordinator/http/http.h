// The coordinator's HTTP side (Boost.Beast): a live dashboard page, the JSON API behind it
// and GET /metrics in the Prometheus text format. It runs on its own thread and never touches
// the Coordinator: the service publishes a snapshot every tick (DashboardState), and results
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

#include "common/base/histogram.h"
#include "common/base/status.h"
#include "common/base/types.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

// What the event loop publishes for the HTTP thread.
struct DashboardSnapshot {
  std::vector<SweepStatus> sweeps;
  std::vector<WorkerStatus> workers;
  std::map<std::string, uint64_t> tasks_by_state;      // pending, running, ...
  std::map<std::string, uint64_t> results_by_target;   // recorded result rows
};

class DashboardState {
 public:
  void Publish(DashboardSnapshot s);
  DashboardSnapshot Get() const;
  // Latency histograms owned by the service and the store; read-only here.
  const LatencyHistogram* dispatch = nullptr;
  const LatencyHistogram* ack = nullptr;
  const LatencyHistogram* store_write = nullptr;
  const LatencyHistogram* store_sync = nullptr;
  std::function<uint64_t()> rejected_messages;    // malformed messages answered with an error
  std::function<uint64_t()> refused_connections;  // CURVE peers refused by the allow-lists

 private:
  mutable std::mutex mu_;
  DashboardSnapshot snap_;
};

// Prometheus text exposition of a snapshot and the histograms.
std::string MetricsText(const DashboardSnapshot& s, const DashboardState& state);

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

// A Store that forwards to another and times Apply and Sync.
class TimedStore final : public Store {
 public:
  explicit TimedStore(Store& inner) : inner_(inner) {}
  Status Apply(const std::vector<StoreWrite>& batch) override;
  void SetGroupCommit(bool on) override { inner_.SetGroupCommit(on); }
  Status Sync() override;
  StatusOr<std::optional<std::string>> Get(const std::string& key) override { return inner_.Get(key); }
  Status Scan(const std::string& prefix,
              const std::function<void(const std::string&, const std::string&)>& fn) override {
    return inner_.Scan(prefix, fn);
  }
  LatencyHistogram write_latency;
  LatencyHistogram sync_latency;

 private:
  Store& inner_;
};

}  // namespace prunelab::coordinator
