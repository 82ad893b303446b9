// A coordinator service for tests: in-memory store (timed, for /metrics), real sockets on
// ephemeral loopback ports, the event loop on its own thread. Destruction stops and joins
// it, so an ASSERT that returns early from a test never leaves a joinable thread behind.
#pragma once

#include <memory>
#include <thread>

#include "common/base/clock.h"
#include "common/net/transport.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/service/service.h"
#include "coordinator/store/timed_store.h"

namespace prunelab::testing {

class LiveService {
 public:
  explicit LiveService(coordinator::ServiceOptions o = {}, coordinator::CoordinatorOptions core = {})
      : store_(coordinator::NewMemoryStore()), timed_(*store_), core_(timed_, clock_, core) {
    o.worker_endpoint = "tcp://127.0.0.1:*";
    o.client_endpoint = "tcp://127.0.0.1:*";
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

 private:
  SystemClock clock_;
  ZmqContext ctx_;
  std::unique_ptr<coordinator::Store> store_;
  coordinator::TimedStore timed_;
  coordinator::Coordinator core_;
  std::unique_ptr<coordinator::CoordinatorService> service_;
  Status bound_;
  std::thread thread_;
};

}  // namespace prunelab::testing
