// A coordinator service for tests: in-memory store (timed, for /metrics), real sockets on
// ephemeral loopback ports, the event loop on its own thread. Destruction stops and joins
// it, so an ASSERT that returns early from a test never leaves a joinable thread behind.
// Tests wait for the coordinator's state through the snapshots its loop publishes every
// tick (WaitFor), not by polling it over a socket with sleeps.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "common/base/clock.h"
#include "common/net/transport.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/service/dashboard_state.h"
#include "coordinator/service/service.h"
#include "coordinator/store/timed_store.h"

namespace prunelab::testing {

class LiveService {
 public:
  explicit LiveService(coordinator::ServiceOptions o = {}, coordinator::CoordinatorOptions core = {})
      : store_(coordinator::NewMemoryStore()), timed_(*store_), core_(timed_, clock_, core) {
    o.worker_endpoint = "tcp://127.0.0.1:*";
    o.client_endpoint = "tcp://127.0.0.1:*";
    if (!o.dashboard) o.dashboard = &dashboard_;
    dashboard_in_use_ = o.dashboard;
    service_ = std::make_unique<coordinator::CoordinatorService>(ctx_, core_, o);
    bound_ = service_->Bind();
    if (bound_.ok()) thread_ = std::thread([this] { service_->Run(false); });
  }
  ~LiveService() {
    if (thread_.joinable()) {
      service_->Stop();
      thread_.join();
    }
  }
  const Status& bound() const { return bound_; }
  ZmqContext& ctx() { return ctx_; }
  coordinator::CoordinatorService& service() { return *service_; }
  coordinator::TimedStore& store() { return timed_; }

  // Waits until a snapshot the event loop publishes satisfies `done`, at most timeout_ms;
  // *last (if given) is the newest snapshot seen, for the failure message.
  bool WaitFor(const std::function<bool(const coordinator::DashboardSnapshot&)>& done, int timeout_ms,
               coordinator::DashboardSnapshot* last = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const uint64_t seen = dashboard_in_use_->published();
      coordinator::DashboardSnapshot snap = dashboard_in_use_->Get();
      const bool ok = done(snap);
      if (last) *last = std::move(snap);
      if (ok) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      dashboard_in_use_->WaitForPublishAfter(seen, static_cast<int>(left.count()));
    }
  }
  // The status of sweep `id` in a snapshot (an empty status when it is not listed).
  static SweepStatus SweepIn(const coordinator::DashboardSnapshot& snap, const std::string& id) {
    for (const auto& s : snap.sweeps)
      if (s.id == id) return s;
    return {};
  }

 private:
  SystemClock clock_;
  ZmqContext ctx_;
  coordinator::DashboardState dashboard_;
  coordinator::DashboardState* dashboard_in_use_ = nullptr;
  std::unique_ptr<coordinator::Store> store_;
  coordinator::TimedStore timed_;
  coordinator::Coordinator core_;
  std::unique_ptr<coordinator::CoordinatorService> service_;
  Status bound_;
  std::thread thread_;
};

}  // namespace prunelab::testing
