// What `prunelab run` starts on this machine: an embedded coordinator on loopback and local
// prunelab-worker processes. Both are owners: destroying them stops and reaps what they
// started, so every exit path of a command (an early error return included) cleans up.
// Thread-safety: use each object from one thread (the service runs on its own thread inside).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace prunelab {
class ZmqContext;
}

namespace prunelab::coordinator {

class EmbeddedCoordinator {
 public:
  // Opens (or recovers) DIR/store, binds both endpoints on 127.0.0.1 (ephemeral ports) and
  // runs the service on its own thread. http_port < 0: no dashboard; 0: an ephemeral port.
  static StatusOr<std::unique_ptr<EmbeddedCoordinator>> Start(const std::string& data_dir, int http_port);
  ~EmbeddedCoordinator();  // stops the service and joins its thread

  const std::string& worker_endpoint() const;
  const std::string& client_endpoint() const;
  uint16_t http_port() const;  // 0 when the dashboard is off
  ZmqContext& context();

 private:
  struct Parts;
  explicit EmbeddedCoordinator(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

class LocalWorkers {
 public:
  explicit LocalWorkers(std::string binary) : binary_(std::move(binary)) {}
  ~LocalWorkers();  // Stop(/*immediately=*/true)

  // Forks and execs the binary with args, stdout and stderr appended to log_path. The child
  // gets SIGTERM if this process dies.
  void Spawn(const std::vector<std::string>& args, const std::string& log_path);
  // Reaps workers that exited, calling on_exit(index, wait status, log path) once for each;
  // returns how many are still running.
  int Poll(const std::function<void(size_t, int, const std::string&)>& on_exit);
  // SIGTERM (the workers drain: they finish and report their task); immediately: a second
  // SIGTERM right after (they abandon it). Waits up to grace_ms, then SIGKILLs; all reaped.
  void Stop(bool immediately, int grace_ms = 5000);
  size_t size() const { return workers_.size(); }
  std::vector<pid_t> pids() const;

 private:
  struct Child {
    pid_t pid;
    std::string log;
    bool exited = false;
  };
  std::string binary_;
  std::vector<Child> workers_;
};

}  // namespace prunelab::coordinator
