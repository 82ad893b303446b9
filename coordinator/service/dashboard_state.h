// What the coordinator's event loop publishes for readers on other threads (the HTTP side):
// a snapshot per tick plus read-only views of its histograms and counters. Owned by the
// producer (the service); consumers only read. Thread-safety: Publish and Get may race.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/histogram.h"
#include "common/base/types.h"

namespace prunelab::coordinator {

// What the event loop publishes for the HTTP thread.
struct DashboardSnapshot {
  std::vector<SweepStatus> sweeps;
  std::vector<WorkerStatus> workers;
  std::map<std::string, uint64_t> tasks_by_state;      // pending, running, ...
  std::map<std::string, uint64_t> results_by_target;   // recorded result rows
  std::map<std::string, uint64_t> failed_results_by_target;  // of those, failed rows
};

class DashboardState {
 public:
  void Publish(DashboardSnapshot s);
  DashboardSnapshot Get() const;
  // Snapshots published so far; WaitForPublishAfter blocks until more than `seen` have been
  // (false after timeout_ms). For readers that need a snapshot newer than an event.
  uint64_t published() const;
  bool WaitForPublishAfter(uint64_t seen, int timeout_ms) const;
  // Latency histograms owned by the service and the store; read-only here.
  const LatencyHistogram* dispatch = nullptr;
  const LatencyHistogram* ack = nullptr;
  const LatencyHistogram* store_write = nullptr;
  const LatencyHistogram* store_sync = nullptr;
  std::function<uint64_t()> rejected_messages;    // malformed messages answered with an error
  std::function<uint64_t()> refused_connections;  // CURVE peers refused by the allow-lists

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable published_cv_;
  DashboardSnapshot snap_;
  uint64_t published_ = 0;
};

}  // namespace prunelab::coordinator
