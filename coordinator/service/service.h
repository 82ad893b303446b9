// CoordinatorService: puts a Coordinator on the network. One Boost.Asio event loop owns
// the ZeroMQ ROUTER sockets (integrated through ZMQ_FD), the heartbeat-expiry timer and
// the Coordinator; nothing else touches them.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "common/base/histogram.h"
#include "common/net/transport.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/service/dashboard_state.h"

namespace prunelab::coordinator {

struct ServiceOptions {
  std::string worker_endpoint = "tcp://*:5555";
  std::string client_endpoint = "tcp://*:5556";
  int tick_interval_ms = 250;
  bool verbose = false;  // log every accepted/rejected message to stderr
  // One WAL sync per round of messages instead of one per state change (replies still wait
  // for it). Off only to measure what it buys (bench/dispatch_scale).
  bool group_commit = true;
  // CURVE: the coordinator's key pair and who may connect to each endpoint (public keys).
  // Empty key pair: plain TCP, announced as such.
  CurveKeyPair keys;
  std::set<std::string> allowed_workers;
  std::set<std::string> allowed_clients;
  // When set, a snapshot for the HTTP side is published here every tick.
  DashboardState* dashboard = nullptr;
  // After a failed WAL sync (a full disk) the service acknowledges nothing and refuses every
  // message that writes, but goes on serving reads and status; every 5 s it asks this whether
  // the store could be written again, and when it says yes Run returns with
  // restart_requested(): the owner restarts from what is durable. Unset: never.
  std::function<bool()> store_writable_again;
};

class CoordinatorService {
 public:
  // ctx and core must outlive the service.
  CoordinatorService(ZmqContext& ctx, Coordinator& core, ServiceOptions options);
  ~CoordinatorService();

  // Binds both sockets; endpoints are resolved afterwards (ephemeral ports).
  Status Bind();
  const std::string& worker_endpoint() const;
  const std::string& client_endpoint() const;

  // Runs the event loop on the calling thread until Stop() or SIGINT/SIGTERM
  // (when handle_signals). Returns after the sockets are drained one last time.
  void Run(bool handle_signals);
  // True when Run returned because a WAL sync failed (nothing unsynced was acknowledged); the
  // process should exit non-zero (prunelab-coordinator exits 3).
  bool store_failed() const;
  // Run returned because space came back after a store failure: restart from the store.
  bool restart_requested() const;
  // Thread-safe: asks Run() to return.
  void Stop();

  uint64_t rejected_messages() const;
  uint64_t refused_connections() const;  // CURVE handshakes refused by the allow-lists
  // Work requests: from read off the socket to the assignment handed to ZeroMQ (seconds).
  const LatencyHistogram& dispatch_latency() const;
  // Acknowledged writes (results, submissions): from read off the socket to the ack sent,
  // WAL sync included.
  const LatencyHistogram& commit_latency() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prunelab::coordinator
