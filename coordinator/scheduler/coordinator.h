// Coordinator: sweep expansion, the task graph and its state machine, the worker registry
// (with slots) and result recording. Transport-free: the service feeds it decoded messages
// and sends its replies, tests call it directly with a FakeClock and a MemoryStore.
// Thread-safety: not thread-safe; one event-loop thread owns it.
//
// Task graph: train -> base@T (per target) and train -> tNNN (prune + fine-tune + evaluate,
// any worker, GPU workers first) -> tNNN@T (benchmark the variant on target T). A task is
// blocked until what it needs is done; when a stage fails, every task after it fails with
// that reason as its result row.
//
// Dispatch: a worker asking on one of its slots gets the first ready task of the first
// sweep in (priority descending, running tasks ascending, age) order — higher priority
// first, equal priorities share workers fairly — preferring tasks bound to its target.
//
// Result rule (exactly once): the first result for a task that is not yet terminal is
// recorded, whatever its attempt number, in one batch with the state change, made durable
// (WAL synced) before the acknowledgement leaves — per batch, or once per round of messages
// under group commit (the service); any later result for that task is acknowledged as a
// duplicate and discarded.
//
// Restart: tasks that were running stay assigned to their worker for one dead-worker
// interval; a worker that comes back (its heartbeats, or its registration listing what it
// runs) keeps them, otherwise they are requeued with an attempt counted.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/base/types.h"
#include "coordinator/release/releases.h"
#include "coordinator/scheduler/uploads.h"
#include "coordinator/store/artifact_store.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

enum class TaskState { kBlocked, kPending, kRunning, kDone, kFailed };
const char* TaskStateName(TaskState s);

struct CoordinatorOptions {
  uint32_t heartbeat_interval_ms = 1000;
  uint32_t dead_after_missed_heartbeats = 3;
  uint32_t max_attempts = 3;  // worker losses tolerated per task before it fails
  // Trials one sweep may expand into (each is 1 + targets tasks), checked before anything is
  // stored; a bigger sweep is refused with this number in the error.
  uint64_t max_trials_per_sweep = 10000;
  uint32_t max_slots_per_worker = 256;  // a worker claiming more is refused at registration
  UploadLimits uploads;                 // chunked artifact uploads (size, how many at once)
  // Receives one line per event an operator follows (a worker registered, declared dead or
  // back, a task requeued or handed out again, a late result discarded); called on the
  // event-loop thread, must not call back into the coordinator. Empty: no log.
  std::function<void(const std::string&)> on_event;
};

class Coordinator {
 public:
  // store, artifacts and clock must outlive the coordinator.
  Coordinator(Store& store, ArtifactStore& artifacts, const Clock& clock, CoordinatorOptions options = {});
  // Artifacts kept as values of `store` (tests on a memory store).
  Coordinator(Store& store, const Clock& clock, CoordinatorOptions options = {});

  // Rebuilds in-memory state from the store (see "Restart" above).
  Status Recover();

  // Handles one decoded message; returns the reply to send, if any.
  std::optional<Message> Handle(const Message& msg);
  // Messages whose handling threw (answered with internal_error instead of aborting).
  uint64_t handler_errors() const { return handler_errors_; }

  // Declares silent workers dead and requeues their tasks. Call periodically.
  void Tick();

  // Group commit (the service's mode): state changes are written without a WAL sync each,
  // and Commit() makes them durable; no acknowledgement of a result, submission or sweep
  // control may be sent before a successful Commit() (assignments need not wait: see
  // CoordinatorService).
  // Without it (tests driving the state machine directly) every change is synced at once.
  void EnableGroupCommit() { store_.SetGroupCommit(true); }
  Status Commit() { return store_.Sync(); }

  std::vector<SweepStatus> Sweeps() const;
  std::vector<WorkerStatus> Workers() const;
  // Tasks of every sweep by state name, and recorded result rows (all, failed) per target (for metrics).
  void Counts(std::map<std::string, uint64_t>* by_state, std::map<std::string, uint64_t>* results_by_target,
              std::map<std::string, uint64_t>* failed_by_target = nullptr) const;

 private:
  struct TaskEntry {
    Task task;
    TaskState state = TaskState::kPending;
    std::string worker;
    uint32_t slot = 0;
    std::vector<std::string> attempt_errors;
    size_t pos = 0;  // index in its sweep's queue
  };
  struct SweepEntry {
    std::string id;
    std::string name;
    int64_t created_ms = 0;
    int32_t priority = 0;
    std::vector<std::string> order;           // task ids in expansion order
    std::map<std::string, TaskEntry> tasks;   // by task id
    // Task ids by the target that may run them ("" = any), in order, and per queue the
    // positions of its pending tasks: dispatch takes the first, O(log n).
    std::map<std::string, std::vector<std::string>> queues;
    std::map<std::string, std::set<size_t>> ready;
    std::map<std::string, std::vector<std::string>> dependents;  // prune task -> its benchmarks
    uint32_t running = 0;
    bool paused = false;     // no new task of it is handed out
    bool cancelled = false;  // every unfinished task failed "cancelled"
  };
  struct Held {
    std::string sweep_id;
    std::string task_id;
  };
  struct WorkerEntry {
    WorkerStatus status;
    int64_t last_seen_ms = 0;
    std::map<uint32_t, Held> held;  // by slot
    std::map<uint32_t, std::pair<std::string, double>> phase;  // by slot: phase, progress
    bool recovered = false;  // known only from tasks it ran before a coordinator restart
  };

  std::optional<Message> Dispatch(const Message& msg);
  Message OnRegister(const RegisterMsg& m);
  std::optional<Message> OnHeartbeat(const HeartbeatMsg& m);
  Message OnRequestWork(const RequestWorkMsg& m);
  Message OnSubmitResult(const SubmitResultMsg& m);
  Message OnFetchArtifact(const FetchArtifactMsg& m);
  // A result's artifact: inline bytes stored now, or uploaded beforehand. Empty when it is
  // here and matches; otherwise why not. IoError: the store failed (nothing recorded).
  StatusOr<std::string> ResultArtifact(const SubmitResultMsg& m);
  Message OnSubmitSweep(const SubmitSweepMsg& m);
  Message OnStatus(const StatusRequestMsg& m);
  Message OnResults(const ResultsRequestMsg& m);
  // pause: hand out none of its tasks (running ones finish); resume; cancel: every task not
  // finished fails with "cancelled by the user" (results still arriving are discarded).
  Message OnSweepControl(const SweepControlMsg& m);
  // Releases, rollback, evaluations, policies (coordinator/release); an evaluation runs as a
  // job of one evaluateRelease task on the release's target, listed like a sweep (ev-NNNNNN).
  Message OnReleaseCommand(const ReleaseCommandMsg& m);
  // Adds job `task.sweep_id` holding the one task to memory and its records to batch (the
  // caller applies the batch, then calls AdoptJob).
  SweepEntry NewJob(const Task& task, const std::string& name, std::vector<StoreWrite>* batch);
  std::string NextJobId() const;
  // After an evaluateRelease task's result row is built: the release book's writes go into
  // batch; what it asks for afterwards (events, a resweep) is returned to run once the batch is durable.
  StatusOr<ReleaseBook::Outcome> EvaluationDone(const Task& task, const TrialResult& rec, std::vector<StoreWrite>* batch);
  void AfterEvaluation(const ReleaseBook::Outcome& o, const std::string& job_id);

  SweepStatus StatusOf(const SweepEntry& s) const;
  StoreWrite TaskRecord(const std::string& sweep_id, const TaskEntry& t) const;
  // The first ready task of `sweep` that `w` may run, or nullptr.
  TaskEntry* NextFor(SweepEntry& sweep, const WorkerEntry& w, bool may_take_any);
  // After a stage (train or prune) ends: its dependents become pending (ok) or fail with a
  // result row each (not ok). Writes go to batch; new entries to changed.
  void UnblockDependents(SweepEntry& sweep, const TaskEntry& stage, bool ok, const std::string& artifact,
                         const TrialResult& outcome, int64_t now_ms, std::vector<StoreWrite>* batch,
                         std::map<std::string, TaskEntry>* changed);
  // A target's confirmation round (confirm@TARGET) waits blocked until every other row of
  // its target is in; then its candidates are chosen from those rows (decide/decision.h) and
  // it becomes pending, or, with fewer than two models to compare, is done with a row saying
  // why. Called after every result and requeue, and on recovery. Store errors leave it
  // blocked for the next call.
  void UnblockConfirmations(SweepEntry& sweep);
  // Applies `changed` to memory (after its batch is durable), keeping the ready sets and
  // running counts right.
  void Adopt(SweepEntry& sweep, std::map<std::string, TaskEntry>& changed);
  // Puts a running task back in the queue (or fails it after max_attempts). False when the
  // store refused the write: the task stays running (and held), to be tried again.
  bool Requeue(const std::string& sweep_id, const std::string& task_id, const std::string& reason);
  // A worker's slot is freed (FreeSlot), a task's dependents are unblocked (Unblock*), and
  // "release" means only a model release (ReleaseBook): three words for three things.
  void FreeSlot(WorkerEntry& w, uint32_t slot);  // no store write
  // A pending task the worker says it still runs (registration: with its attempt; heartbeat:
  // without) becomes its running task on `slot` again. False if taken, unknown or not written.
  bool Readopt(WorkerEntry& w, const std::string& worker_id, const std::string& sweep_id, const std::string& task_id,
               uint32_t slot, std::optional<uint32_t> attempt);
  void Event(const std::string& line) const {
    if (options_.on_event) options_.on_event(line);
  }

  Store& store_;
  std::unique_ptr<ArtifactStore> owned_artifacts_;  // the KV store when none was given
  ArtifactStore& artifacts_;
  const Clock& clock_;
  CoordinatorOptions options_;
  std::map<std::string, SweepEntry> sweeps_;  // by id; ids sort in creation order
  std::map<std::string, WorkerEntry> workers_;
  std::set<std::string> gpu_workers_;  // registered with a cuda device
  ArtifactUploads uploads_;
  ReleaseBook releases_;
  uint64_t next_sweep_seq_ = 1;
  uint64_t next_worker_seq_ = 1;
  uint64_t handler_errors_ = 0;
};

}  // namespace prunelab::coordinator
