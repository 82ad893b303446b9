// WorkerDaemon: registers with the coordinator, pulls tasks matching its target, runs
// them through a TrialExecutor and delivers each result until acknowledged. Heartbeats go
// out from their own thread and socket, so they continue while a trial trains.
#pragma once

#include <atomic>
#include <ctime>
#include <string>

#include "common/base/clock.h"
#include "common/net/transport.h"
#include "common/base/types.h"
#include "worker/daemon/executor.h"

namespace prunelab::worker {

struct WorkerOptions {
  std::string coordinator;      // e.g. tcp://127.0.0.1:5555
  std::string target = "local";
  std::string cache_dir;
  std::string worker_id;        // empty: the coordinator assigns one
  int rpc_timeout_ms = 30000;
  int max_tasks = 0;            // exit after this many tasks (0 = never); for scripts
  int slots = 1;                // tasks run at once (one thread each)
  ClientSecurity security;      // CURVE keys (plain when empty)
  // flock()ed by every worker on this host (shared to compute, exclusive to benchmark).
  // Empty: no host lock (only safe when this is the only worker on the machine).
  std::string host_lock_path = "/tmp/prunelab-host.lock";
  InterferencePolicy interference;  // benchmark runs disturbed by other load: retried, then INVALID
};

class WorkerDaemon {
 public:
  // ctx, executor and clock must outlive the daemon. Every wait (retries, polling, the
  // heartbeat interval) goes through clock, so tests run the daemon on a FakeClock.
  WorkerDaemon(ZmqContext& ctx, TrialExecutor& executor, WorkerOptions options, HardwareFingerprint hardware,
               const Clock& clock);
  // Runs until `stop` becomes true (checked between tasks, while waiting, and by a running
  // task, which is abandoned and later re-run elsewhere) or until `drain` becomes true
  // (the running task is finished and its result delivered; no new work is taken).
  // Returns the process exit code.
  int Run(const std::atomic<bool>& stop, const std::atomic<bool>* drain = nullptr);

 private:
  WorkerOptions options_;
  ZmqContext& ctx_;
  TrialExecutor& executor_;
  HardwareFingerprint hardware_;
  const Clock& clock_;
};

}  // namespace prunelab::worker
