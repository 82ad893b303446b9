// Coordinator: sweep expansion, the task state machine, the worker registry and result
// recording. Transport-free: the service feeds it decoded messages and sends its replies,
// tests call it directly with a FakeClock and a MemoryStore.
// Thread-safety: not thread-safe; one event-loop thread owns it.
//
// Result rule (exactly once): the first result for a task that is not yet terminal is
// recorded, whatever its attempt number, in one batch with the state change, made durable
// (WAL synced) before the acknowledgement leaves — per batch, or once per round of messages
// under group commit (the service); any later result for that task is acknowledged as a
// duplicate and discarded.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/types.h"
#include "coordinator/store.h"

namespace prunelab::coordinator {

enum class TaskState { kBlocked, kPending, kRunning, kDone, kFailed };
const char* TaskStateName(TaskState s);

struct CoordinatorOptions {
  uint32_t heartbeat_interval_ms = 1000;
  uint32_t dead_after_missed_heartbeats = 3;
  uint32_t max_attempts = 3;  // worker losses tolerated per task before it fails
};

class Coordinator {
 public:
  // store and clock must outlive the coordinator.
  Coordinator(Store& store, const Clock& clock, CoordinatorOptions options = {});

  // Rebuilds in-memory state from the store. Tasks that were running go back to pending.
  Status Recover();

  // Handles one decoded message; returns the reply to send, if any.
  std::optional<Message> Handle(const Message& msg);

  // Declares silent workers dead and requeues their tasks. Call periodically.
  void Tick();

  // Group commit (the service's mode): state changes are written without a WAL sync each,
  // and Commit() makes them durable; no reply may be sent before a successful Commit().
  // Without it (tests driving the state machine directly) every change is synced at once.
  void EnableGroupCommit() { store_.SetGroupCommit(true); }
  Status Commit() { return store_.Sync(); }

  std::vector<SweepStatus> Sweeps() const;
  std::vector<WorkerStatus> Workers() const;

 private:
  struct TaskEntry {
    Task task;
    TaskState state = TaskState::kPending;
    std::string worker;
    std::vector<std::string> attempt_errors;
  };
  struct SweepEntry {
    std::string id;
    std::string name;
    int64_t created_ms = 0;
    std::vector<std::string> order;           // task ids in expansion order
    std::map<std::string, TaskEntry> tasks;   // by task id
    bool paused = false;                      // no new task of it is handed out
    // Per worker target: tasks before this index cannot be handed to that target until
    // something becomes pending again (which clears it). Keeps dispatch O(1) amortized.
    std::map<std::string, size_t> scan_from;
    bool cancelled = false;                   // every unfinished task failed "cancelled"
  };
  struct WorkerEntry {
    WorkerStatus status;
    int64_t last_seen_ms = 0;
    std::string sweep_id;  // running task, if any
    std::string task_id;
  };

  Message OnRegister(const RegisterMsg& m);
  std::optional<Message> OnHeartbeat(const HeartbeatMsg& m);
  Message OnRequestWork(const RequestWorkMsg& m);
  Message OnSubmitResult(const SubmitResultMsg& m);
  Message OnFetchArtifact(const FetchArtifactMsg& m);
  Message OnSubmitSweep(const SubmitSweepMsg& m);
  Message OnStatus(const StatusRequestMsg& m);
  Message OnResults(const ResultsRequestMsg& m);
  // pause: hand out none of its tasks (running ones finish); resume; cancel: every task not
  // finished fails with "cancelled by the user" (results still arriving are discarded).
  Message OnSweepControl(const SweepControlMsg& m);

  SweepStatus StatusOf(const SweepEntry& s) const;
  StoreWrite TaskRecord(const std::string& sweep_id, const TaskEntry& t) const;
  // After the baseline task ends: unblock (ok) or fail, with a result row each (not ok),
  // every blocked task of the sweep. Writes go to batch; new entries to changed.
  void ReleaseDependents(SweepEntry& sweep, bool baseline_ok, const std::string& artifact, const std::string& error,
                         int64_t now_ms, std::vector<StoreWrite>* batch, std::map<std::string, TaskEntry>* changed);
  // Puts a running task back in the queue (or fails it after max_attempts).
  void Requeue(const std::string& sweep_id, const std::string& task_id, const std::string& reason);

  Store& store_;
  const Clock& clock_;
  CoordinatorOptions options_;
  std::map<std::string, SweepEntry> sweeps_;  // by id; ids sort in creation order
  std::map<std::string, WorkerEntry> workers_;
  uint64_t next_sweep_seq_ = 1;
  uint64_t next_worker_seq_ = 1;
};

}  // namespace prunelab::coordinator
