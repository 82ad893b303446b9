#include "coordinator/scheduler/coordinator.h"

#include <cstdio>
#include <set>
#include <fmt/printf.h>

#include "common/net/artifact_fetch.h"
#include "common/base/text.h"
#include "common/codec/codec.h"
#include "common/base/hash.h"
#include "common/base/log.h"
#include "common/codec/records.h"
#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "common/spec/task_graph.h"
#include "coordinator/decide/decision.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {

using nlohmann::json;

const char* TaskStateName(TaskState s) {
  switch (s) {
    case TaskState::kBlocked: return "blocked";
    case TaskState::kPending: return "pending";
    case TaskState::kRunning: return "running";
    case TaskState::kDone: return "done";
    case TaskState::kFailed: return "failed";
  }
  return "unknown";
}

static TaskState StateFromName(const std::string& n) {
  if (n == "blocked") return TaskState::kBlocked;
  if (n == "running") return TaskState::kRunning;
  if (n == "done") return TaskState::kDone;
  if (n == "failed") return TaskState::kFailed;
  return TaskState::kPending;
}

static bool Terminal(TaskState s) { return s == TaskState::kDone || s == TaskState::kFailed; }

static const std::string kAnyTarget;  // the queue of tasks any worker may run

// The result row of a task that ended without running to completion.
static TrialResult FailureResult(const Task& t, const std::string& error, int64_t now_ms) {
  TrialResult fr = ResultFor(t);
  fr.ok = false;
  fr.error = error;
  fr.finished_at_ms = now_ms;
  return fr;
}

static ErrorMsg Error(const std::string& code, const std::string& message) { return ErrorMsg{code, message}; }

Coordinator::Coordinator(Store& store, ArtifactStore& artifacts, const Clock& clock, CoordinatorOptions options)
    : store_(store), artifacts_(artifacts), clock_(clock), options_(options), uploads_(artifacts, clock, options.uploads),
      releases_(store, clock) {}

Coordinator::Coordinator(Store& store, const Clock& clock, CoordinatorOptions options)
    : store_(store), owned_artifacts_(NewKvArtifactStore(store)), artifacts_(*owned_artifacts_), clock_(clock),
      options_(options), uploads_(artifacts_, clock, options.uploads), releases_(store, clock) {}

StoreWrite Coordinator::TaskRecord(const std::string& sweep_id, const TaskEntry& t) const {
  return StoreWrite{TaskKey(sweep_id, t.task.task_id),
                    EncodeTaskRecord({t.task, TaskStateName(t.state), t.worker, t.slot, t.attempt_errors})};
}

// The queue a task waits in: its target's, or "" (any worker) for training and pruning.
static const std::string& QueueOf(const Task& t) { return t.target; }

// Where a task's outcome is written: a pruning stage's under stage/, anything else is a
// row under result/ (the baseline's training included, for its artifact and timings).
static std::string RecordKey(const std::string& sweep_id, const Task& t) {
  if (IsPruneStage(t)) return StageKey(sweep_id, t.task_id);
  return ResultKey(sweep_id, t.task_id);
}

static bool IsGpu(const WorkerStatus& w) { return w.hardware.device.rfind("cuda", 0) == 0; }

Status Coordinator::Recover() {
  Status st = Status::Ok();
  PRUNELAB_RETURN_IF_ERROR(store_.Scan("sweep/", [&](const std::string&, const std::string& v) {
    auto j = ParseJson(v);
    if (!j.ok()) { st = j.status(); return; }
    SweepEntry s;
    s.id = j->value("id", "");
    s.name = j->value("name", "");
    s.created_ms = j->value("created_ms", int64_t{0});
    s.priority = j->value("priority", 0);
    s.paused = j->value("paused", false);
    s.cancelled = j->value("cancelled", false);
    if (j->contains("order")) s.order = (*j)["order"].get<std::vector<std::string>>();
    sweeps_[s.id] = std::move(s);
  }));
  PRUNELAB_RETURN_IF_ERROR(st);
  const int64_t now = clock_.NowMs();
  std::vector<StoreWrite> requeued;
  for (auto& entry : sweeps_) {
    const std::string& id = entry.first;  // named, not a structured binding: lambdas capture it
    SweepEntry& sweep = entry.second;
    PRUNELAB_RETURN_IF_ERROR(store_.Scan("task/" + id + "/", [&](const std::string&, const std::string& v) {
      auto rec = DecodeTaskRecord(v);
      if (!rec.ok()) { st = rec.status(); return; }
      TaskEntry e;
      e.task = std::move(rec->task);
      e.state = StateFromName(rec->state);
      e.worker = rec->worker;
      e.slot = rec->slot;
      e.attempt_errors = std::move(rec->attempt_errors);
      if (e.state == TaskState::kRunning) e.state = TaskState::kPending;  // older stores; see run/ below
      sweep.tasks[e.task.task_id] = std::move(e);
    }));
    PRUNELAB_RETURN_IF_ERROR(st);
    // Assignments: the task stays with its worker for one dead-worker interval.
    PRUNELAB_RETURN_IF_ERROR(store_.Scan("run/" + id + "/", [&](const std::string& k, const std::string& v) {
      auto j = ParseJson(v);
      auto it = sweep.tasks.find(k.substr(RunKey(id, "").size()));
      if (!j.ok() || it == sweep.tasks.end()) return;
      TaskEntry& e = it->second;
      std::string worker = j->value("worker", "");
      uint32_t slot = j->value("slot", 0u);
      if (Terminal(e.state) || worker.empty()) {
        requeued.push_back({k, std::nullopt});
        return;
      }
      WorkerEntry& w = workers_[worker];
      if (w.held.count(slot)) {  // inconsistent: two tasks on one slot; run this one again
        requeued.push_back({k, std::nullopt});
        return;
      }
      e.state = TaskState::kRunning;
      e.task.attempt = j->value("attempt", e.task.attempt);
      e.worker = worker;
      e.slot = slot;
      if (w.status.worker_id.empty()) {
        w.status.worker_id = worker;
        w.status.alive = true;
        w.recovered = true;
        w.last_seen_ms = now;
        w.status.phase = "unknown since the coordinator restarted";
      }
      w.held[slot] = Held{id, e.task.task_id};
    }));
    for (size_t i = 0; i < sweep.order.size(); ++i) {
      auto it = sweep.tasks.find(sweep.order[i]);
      if (it == sweep.tasks.end()) continue;
      auto& q = sweep.queues[QueueOf(it->second.task)];
      it->second.pos = q.size();
      q.push_back(it->first);
      if (!it->second.task.depends_on.empty()) sweep.dependents[it->second.task.depends_on].push_back(it->first);
      if (it->second.state == TaskState::kRunning) ++sweep.running;
      if (it->second.state == TaskState::kPending) sweep.ready[QueueOf(it->second.task)].insert(it->second.pos);
    }
  }
  for (auto& [id, sweep] : sweeps_) UnblockConfirmations(sweep);  // a crash between a result and unblocking its round
  auto seq = store_.Get("meta/sweep_seq");
  if (!seq.ok()) return seq.status();
  if (seq.value()) next_sweep_seq_ = std::stoull(*seq.value());
  if (!requeued.empty()) PRUNELAB_RETURN_IF_ERROR(store_.Apply(requeued));
  return Status::Ok();
}

// The last line of defence: whatever a library throws while one message is handled (a JSON
// type error, bad_alloc) becomes an error reply for that message; the coordinator goes on.
std::optional<Message> Coordinator::Handle(const Message& msg) {
  try {
    return Dispatch(msg);
  } catch (const std::exception& e) {
    ++handler_errors_;
    log::Error(std::string("coordinator: could not handle ") + MessageName(msg) + ": " + e.what() +
               " (answered with an error; nothing else changed)");
    return Message(Error("internal_error", std::string("could not handle ") + MessageName(msg) + ": " +
                                               ToValidUtf8(e.what()).substr(0, 200)));
  }
}

std::optional<Message> Coordinator::Dispatch(const Message& msg) {
  if (auto* m = std::get_if<RegisterMsg>(&msg)) return OnRegister(*m);
  if (auto* m = std::get_if<HeartbeatMsg>(&msg)) return OnHeartbeat(*m);
  if (auto* m = std::get_if<RequestWorkMsg>(&msg)) return OnRequestWork(*m);
  if (auto* m = std::get_if<SubmitResultMsg>(&msg)) return OnSubmitResult(*m);
  if (auto* m = std::get_if<FetchArtifactMsg>(&msg)) return OnFetchArtifact(*m);
  if (auto* m = std::get_if<PutArtifactChunkMsg>(&msg)) return uploads_.OnChunk(*m);
  if (auto* m = std::get_if<SubmitSweepMsg>(&msg)) return OnSubmitSweep(*m);
  if (auto* m = std::get_if<StatusRequestMsg>(&msg)) return OnStatus(*m);
  if (auto* m = std::get_if<ResultsRequestMsg>(&msg)) return OnResults(*m);
  if (std::holds_alternative<WorkersRequestMsg>(msg)) return Message(WorkersReplyMsg{Workers()});
  if (auto* m = std::get_if<SweepControlMsg>(&msg)) return OnSweepControl(*m);
  if (auto* m = std::get_if<ReleaseCommandMsg>(&msg)) return OnReleaseCommand(*m);
  if (std::holds_alternative<ErrorMsg>(msg)) return std::nullopt;  // never answer an error with an error
  return Message(Error("unexpected_message", std::string("the coordinator does not accept ") + MessageName(msg)));
}

void Coordinator::FreeSlot(WorkerEntry& w, uint32_t slot) {
  w.held.erase(slot);
  w.phase[slot] = {"idle", 0.0};
}

Message Coordinator::OnRegister(const RegisterMsg& m) {
  if (m.slots > options_.max_slots_per_worker)
    return Error("invalid_registration", "a worker may run at most " + std::to_string(options_.max_slots_per_worker) +
                                             " slots; this one asked for " + std::to_string(m.slots));
  if (m.running.size() > options_.max_slots_per_worker)
    return Error("invalid_registration", "more running tasks reported than slots allowed");
  std::string id = m.worker_id;
  if (id.empty() || id.size() > 128) {
    id = fmt::sprintf("w%03llu-", static_cast<unsigned long long>(next_worker_seq_++)) +
         (m.hardware.hostname.empty() ? std::string("host") : m.hardware.hostname.substr(0, 40));
    while (workers_.count(id)) id += "x";
  }
  const bool known = workers_.count(id) > 0;
  WorkerEntry& w = workers_[id];
  auto reported = [&](const std::string& sweep, const std::string& task, uint32_t attempt) {
    for (const auto& r : m.running)
      if (r.sweep_id == sweep && r.task_id == task && r.attempt == attempt) return true;
    return false;
  };
  // What it held and no longer runs (it restarted) goes back to the queue.
  for (auto it = w.held.begin(); it != w.held.end();) {
    Held h = it->second;
    auto sit = sweeps_.find(h.sweep_id);
    const TaskEntry* t = nullptr;
    if (sit != sweeps_.end() && sit->second.tasks.count(h.task_id)) t = &sit->second.tasks[h.task_id];
    if (t && reported(h.sweep_id, h.task_id, t->task.attempt)) {
      ++it;
      continue;
    }
    if (!Requeue(h.sweep_id, h.task_id, "worker " + id + " registered again without it")) {
      ++it;  // kept until a requeue can be written
      continue;
    }
    it = w.held.erase(it);
  }
  w.recovered = false;
  w.status.worker_id = id;
  w.status.target = m.target;
  w.status.hardware = m.hardware;
  w.status.slots = std::max(1u, m.slots);
  w.status.alive = true;
  w.last_seen_ms = clock_.NowMs();
  if (IsGpu(w.status)) gpu_workers_.insert(id);
  // A task it still runs that was requeued meanwhile (e.g. by a restart) is its again,
  // unless someone else took it; its result will be accepted once either way.
  for (const auto& r : m.running) (void)Readopt(w, id, r.sweep_id, r.task_id, r.slot, r.attempt);
  Event("worker " + id + (known ? " registered again" : " registered") + " (target '" + m.target + "', " +
        std::to_string(w.status.slots) + " slot(s), " + std::to_string(m.running.size()) + " task(s) still running, " +
        std::to_string(w.held.size()) + " kept)");
  return RegisterReplyMsg{id, options_.heartbeat_interval_ms};
}

bool Coordinator::Readopt(WorkerEntry& w, const std::string& worker_id, const std::string& sweep_id,
                          const std::string& task_id, uint32_t slot, std::optional<uint32_t> attempt) {
  auto sit = sweeps_.find(sweep_id);
  if (sit == sweeps_.end() || slot >= w.status.slots || w.held.count(slot)) return false;
  auto tit = sit->second.tasks.find(task_id);
  if (tit == sit->second.tasks.end() || tit->second.state != TaskState::kPending ||
      (attempt && tit->second.task.attempt != *attempt))
    return false;
  std::map<std::string, TaskEntry> changed;
  TaskEntry e = tit->second;
  e.state = TaskState::kRunning;
  e.worker = worker_id;
  e.slot = slot;
  changed[task_id] = e;
  json run{{"attempt", e.task.attempt}, {"worker", worker_id}, {"slot", slot}};
  if (!store_.Apply({{RunKey(sweep_id, task_id), run.dump()}}).ok()) return false;
  Adopt(sit->second, changed);
  w.held[slot] = Held{sweep_id, task_id};
  Event("task " + sweep_id + "/" + task_id + " is worker " + worker_id + "'s again: it still runs it");
  return true;
}

std::optional<Message> Coordinator::OnHeartbeat(const HeartbeatMsg& m) {
  auto it = workers_.find(m.worker_id);
  if (it == workers_.end()) return std::nullopt;  // heartbeats are one-way
  const int64_t silent_ms = clock_.NowMs() - it->second.last_seen_ms;
  it->second.last_seen_ms = clock_.NowMs();
  if (!it->second.status.alive)
    Event("worker " + m.worker_id + " is back (heartbeat after " + std::to_string(silent_ms) + " ms of silence)");
  it->second.status.alive = true;
  // Back from a partition with the task it was declared dead over still running: it keeps it,
  // unless someone else took it meanwhile (then whichever result comes first is recorded).
  if (auto slash = m.task_id.find('/'); slash != std::string::npos && slash > 0 && slash + 1 < m.task_id.size())
    (void)Readopt(it->second, m.worker_id, m.task_id.substr(0, slash), m.task_id.substr(slash + 1), m.slot, std::nullopt);
  if (m.slot < 64) it->second.phase[m.slot] = {m.phase, m.progress};
  return std::nullopt;
}

Coordinator::TaskEntry* Coordinator::NextFor(SweepEntry& sweep, const WorkerEntry& w, bool may_take_any) {
  // Tasks bound to the worker's target (benchmarks) first: only such workers can run them.
  for (const std::string* key : {&w.status.target, &kAnyTarget}) {
    if (key->empty() && !may_take_any) continue;
    auto rit = sweep.ready.find(*key);
    if (rit == sweep.ready.end() || rit->second.empty()) continue;
    return &sweep.tasks[sweep.queues[*key][*rit->second.begin()]];
  }
  return nullptr;
}

Message Coordinator::OnRequestWork(const RequestWorkMsg& m) {
  auto wit = workers_.find(m.worker_id);
  if (wit == workers_.end() || wit->second.recovered)
    return Error("unregistered", "worker '" + m.worker_id + "' is not registered (coordinator restarted?); register again");
  WorkerEntry& w = wit->second;
  if (m.slot >= w.status.slots)
    return Error("bad_request", "slot " + std::to_string(m.slot) + " of worker '" + m.worker_id + "', which registered " +
                                    std::to_string(w.status.slots) + " slot(s)");
  w.last_seen_ms = clock_.NowMs();
  w.status.alive = true;
  if (auto h = w.held.find(m.slot); h != w.held.end()) {
    Held held = h->second;
    if (!Requeue(held.sweep_id, held.task_id, "worker " + m.worker_id + " asked for new work on the slot running it"))
      return Error("store_error", "cannot record the state change; ask again later");
    FreeSlot(w, m.slot);
  }
  // Pruning and training go to GPU workers while one has a free slot.
  bool may_take_any = IsGpu(w.status);
  if (!may_take_any) {
    may_take_any = true;
    for (const auto& gid : gpu_workers_) {
      auto g = workers_.find(gid);
      if (g != workers_.end() && g->second.status.alive && g->second.held.size() < g->second.status.slots) {
        may_take_any = false;
        break;
      }
    }
  }
  // Higher priority first; equal priorities: the sweep with fewest running tasks (fair share).
  std::vector<SweepEntry*> order;
  for (auto& [sid, sweep] : sweeps_)
    if (!sweep.paused && !sweep.cancelled) order.push_back(&sweep);
  if (order.size() > 1)
    std::stable_sort(order.begin(), order.end(), [](const SweepEntry* a, const SweepEntry* b) {
      if (a->priority != b->priority) return a->priority > b->priority;
      return a->running < b->running;
    });
  for (SweepEntry* sweep : order) {
    TaskEntry* t = NextFor(*sweep, w, may_take_any);
    if (!t) continue;
    std::map<std::string, TaskEntry> changed;
    TaskEntry next = *t;
    next.state = TaskState::kRunning;
    next.worker = m.worker_id;
    next.slot = m.slot;
    next.task.attempt += 1;
    json run{{"attempt", next.task.attempt}, {"worker", m.worker_id}, {"slot", m.slot}};
    Status st = store_.Apply({{RunKey(sweep->id, next.task.task_id), run.dump()}});
    if (!st.ok()) return Error("store_error", st.ToString());
    const std::string tid = next.task.task_id;
    changed[tid] = std::move(next);
    Adopt(*sweep, changed);
    w.held[m.slot] = Held{sweep->id, tid};
    w.phase[m.slot] = {"assigned", 0.0};
    if (sweep->tasks[tid].task.attempt > 1)
      Event("task " + sweep->id + "/" + tid + " handed out again to worker " + m.worker_id + " (attempt " +
            std::to_string(sweep->tasks[tid].task.attempt) + ")");
    return AssignMsg{sweep->tasks[tid].task};
  }
  return NoWorkMsg{1000, "no pending task for target '" + w.status.target + "'"};
}


Message Coordinator::OnSubmitResult(const SubmitResultMsg& m) {
  const TrialResult& r = m.result;
  auto sit = sweeps_.find(r.sweep_id);
  if (sit == sweeps_.end()) return ResultAckMsg{r.task_id, r.attempt, false, "unknown sweep " + r.sweep_id};
  SweepEntry& sweep = sit->second;
  auto tit = sweep.tasks.find(r.task_id);
  if (tit == sweep.tasks.end()) return ResultAckMsg{r.task_id, r.attempt, false, "unknown task " + r.task_id};
  TaskEntry& task = tit->second;

  // The worker's slot is free again whatever happens to this result.
  if (auto wit = workers_.find(m.worker_id); wit != workers_.end()) {
    wit->second.last_seen_ms = clock_.NowMs();
    for (auto& [slot, h] : wit->second.held)
      if (h.sweep_id == r.sweep_id && h.task_id == r.task_id) {
        FreeSlot(wit->second, slot);
        break;
      }
  }
  if (Terminal(task.state)) {
    Event("late result for " + r.sweep_id + "/" + r.task_id + " from worker " + m.worker_id + " (attempt " +
          std::to_string(r.attempt) + ") discarded: a result for this task is already recorded");
    return ResultAckMsg{r.task_id, r.attempt, false, "duplicate: a result for this task is already recorded"};
  }

  TrialResult rec = r;
  rec.finished_at_ms = clock_.NowMs();
  std::vector<StoreWrite> batch;
  std::map<std::string, TaskEntry> changed;  // applied to memory only after the batch is durable
  const Task& t = task.task;
  const auto deps = sweep.dependents.find(t.task_id);
  const bool is_stage = IsPruneStage(t);

  if ((t.kind == TaskKind::kTrainBaseline || t.kind == TaskKind::kPruneTrial) && r.ok) {
    auto problem = ResultArtifact(m);
    if (!problem.ok()) return Error("store_error", "result not recorded, send it again: " + problem.status().ToString());
    if (problem.value().empty()) {
      if (t.kind == TaskKind::kTrainBaseline) batch.push_back({BaselineCacheKey(t.baseline_key), r.artifact_hash});
    } else if (t.kind == TaskKind::kTrainBaseline || is_stage) {
      rec.ok = false;
      rec.error = std::string(t.kind == TaskKind::kTrainBaseline ? "baseline" : "variant") + " artifact " + problem.value();
    } else {
      rec.artifact_hash.clear();  // the row stands; its variant cannot be exported
    }
  }
  // Iterative rounds before the last are results of their own, per target
  // ("t003@local/r1"), written in the same batch as the final record.
  if (rec.ok) {
    std::vector<std::string> targets{r.target};
    if (is_stage && deps != sweep.dependents.end()) {
      targets.clear();
      for (const auto& d : deps->second) targets.push_back(sweep.tasks[d].task.target);
    }
    for (const TrialResult& im : r.intermediates)
      for (const auto& target : targets) {
        TrialResult row = im;
        row.target = target;
        row.task_id = r.task_id + (is_stage ? "@" + target : "") + "/r" + std::to_string(im.round);
        row.finished_at_ms = rec.finished_at_ms;
        row.intermediates.clear();
        batch.push_back({ResultKey(r.sweep_id, row.task_id), EncodeResultRecord(row)});
      }
  }
  rec.intermediates.clear();
  if (t.kind == TaskKind::kBenchmarkVariant) {
    auto stage = store_.Get(StageKey(r.sweep_id, t.depends_on));
    if (!stage.ok()) return Error("store_error", "result not recorded, send it again: " + stage.status().ToString());
    StatusOr<TrialResult> parsed = Status::NotFound("no record of the pruning stage " + t.depends_on);
    if (stage.value()) parsed = DecodeResultRecord(*stage.value());
    if (parsed.ok()) {
      rec = MergeStageAndBenchmark(parsed.value(), rec);
      rec.finished_at_ms = clock_.NowMs();
    } else {
      rec.ok = false;
      rec.error = parsed.status().ToString();
    }
  }
  TaskEntry updated = task;
  updated.state = rec.ok ? TaskState::kDone : TaskState::kFailed;
  updated.worker = r.worker_id;
  if (task.state == TaskState::kRunning) updated.task.attempt = std::max(updated.task.attempt, r.attempt);
  changed[r.task_id] = updated;
  batch.push_back({RecordKey(r.sweep_id, t), EncodeResultRecord(rec)});
  batch.push_back({RunKey(r.sweep_id, r.task_id), std::nullopt});

  if (t.kind == TaskKind::kTrainBaseline || is_stage)
    UnblockDependents(sweep, task, rec.ok, r.artifact_hash, rec, rec.finished_at_ms, &batch, &changed);
  for (const auto& [tid, e] : changed) batch.push_back(TaskRecord(r.sweep_id, e));
  std::optional<ReleaseBook::Outcome> evaluated;
  if (t.kind == TaskKind::kEvaluateRelease) {
    auto o = EvaluationDone(t, rec, &batch);
    if (!o.ok() && o.status().code() == Status::Code::kIoError)
      return Error("store_error", "result not recorded, send it again: " + o.status().ToString());
    if (o.ok()) evaluated = std::move(o).value();
  }
  Status st = store_.Apply(batch);
  if (!st.ok()) return Error("store_error", "result not recorded, send it again: " + st.ToString());
  Adopt(sweep, changed);
  if (evaluated) AfterEvaluation(*evaluated, r.sweep_id);
  UnblockConfirmations(sweep);
  return ResultAckMsg{r.task_id, r.attempt, true, rec.ok ? "recorded" : "recorded as failed: " + rec.error};
}

void Coordinator::UnblockDependents(SweepEntry& sweep, const TaskEntry& stage, bool ok, const std::string& artifact,
                                    const TrialResult& outcome, int64_t now_ms, std::vector<StoreWrite>* batch,
                                    std::map<std::string, TaskEntry>* changed) {
  const bool train = stage.task.kind == TaskKind::kTrainBaseline;
  std::vector<std::string> ids;
  if (train) {
    for (const auto& [tid, dep] : sweep.tasks)
      if (dep.state == TaskState::kBlocked) ids.push_back(tid);
  } else if (auto it = sweep.dependents.find(stage.task.task_id); it != sweep.dependents.end()) {
    ids = it->second;
  }
  for (const auto& tid : ids) {
    auto cit = changed->find(tid);
    TaskEntry d = cit != changed->end() ? cit->second : sweep.tasks[tid];
    if (d.state != TaskState::kBlocked) continue;
    if (d.task.kind == TaskKind::kConfirmTarget && ok) {  // waits for its target's rows, not only for training
      if (train) {
        d.task.baseline_artifact = artifact;
        (*changed)[tid] = d;
      }
      continue;
    }
    if (ok) {
      if (train) d.task.baseline_artifact = artifact;
      else d.task.variant_artifact = artifact;
      // A benchmark also waits for its variant.
      bool variant_ready = d.task.depends_on.empty() || !d.task.variant_artifact.empty();
      if (variant_ready) d.state = TaskState::kPending;
    } else {
      d.state = TaskState::kFailed;
      d.attempt_errors.push_back((train ? "baseline training failed: " : "pruning failed: ") + outcome.error);
      if (ProducesResultRow(d.task)) {
        TrialResult fr;
        if (train) {
          fr = FailureResult(d.task, "baseline training failed: " + outcome.error, now_ms);
        } else {  // what pruning measured before failing, on this target's row
          fr = outcome;
          fr.task_id = tid;
          fr.target = d.task.target;
          fr.ok = false;
          fr.finished_at_ms = now_ms;
        }
        batch->push_back({ResultKey(sweep.id, tid), EncodeResultRecord(fr)});
      }
    }
    (*changed)[tid] = d;
  }
}

void Coordinator::UnblockConfirmations(SweepEntry& sweep) {
  if (sweep.cancelled) return;
  for (auto& [tid, entry] : sweep.tasks) {
    if (entry.task.kind != TaskKind::kConfirmTarget || entry.state != TaskState::kBlocked) continue;
    const std::string& target = entry.task.target;
    bool waiting = false;
    for (const auto& [other_id, other] : sweep.tasks)
      if (other.task.kind != TaskKind::kConfirmTarget && other.task.target == target && !Terminal(other.state) &&
          ProducesResultRow(other.task))
        waiting = true;
    if (waiting) continue;
    auto results = ReadResults(store_, sweep.id);
    auto yaml = ReadSpecYaml(store_, sweep.id);
    if (!results.ok() || !yaml.ok()) return;  // tried again after the next result
    DecisionOptions options;
    if (auto spec = ParseSpec(yaml.value()); spec.ok())
      if (auto o = OptionsFromSpec(spec->report); o.ok()) options = o.value();
    std::vector<ConfirmCandidate> candidates;
    for (const auto& d : Decide(results.value(), options)) {
      if (d.target != target) continue;
      for (const TrialResult* row : ConfirmationCandidates(d, options, entry.task.benchmark.confirm_candidates))
        candidates.push_back({row->task_id, row->baseline ? entry.task.baseline_artifact : row->artifact_hash,
                              row->deployable_form.empty() ? "dense" : row->deployable_form});
    }
    TaskEntry e = entry;
    std::vector<StoreWrite> batch;
    if (candidates.size() < 2 || entry.task.baseline_artifact.empty()) {
      // Nothing to compare: done, with a row that says so (the decision notes it).
      TrialResult row = ResultFor(e.task);
      row.ok = true;
      row.finished_at_ms = clock_.NowMs();
      ConfirmationRound skipped;
      skipped.skipped = candidates.empty() ? "no dense baseline measured on this target"
                                           : "fewer than two models benchmarked on this target";
      row.benchmark_json = nlohmann::json{{"confirmation", ToJson(skipped)}}.dump();
      e.state = TaskState::kDone;
      e.attempt_errors.push_back("skipped: " + skipped.skipped);
      batch.push_back({ResultKey(sweep.id, tid), EncodeResultRecord(row)});
    } else {
      e.task.candidates = std::move(candidates);
      e.state = TaskState::kPending;
    }
    batch.push_back(TaskRecord(sweep.id, e));
    if (!store_.Apply(batch).ok()) return;
    std::map<std::string, TaskEntry> changed{{tid, e}};
    std::string names;
    for (const auto& c : e.task.candidates) names += " " + c.task_id;
    Event("confirmation round " + sweep.id + "/" + tid +
          (e.state == TaskState::kDone ? " skipped: " + e.attempt_errors.back() : " ready:" + names));
    Adopt(sweep, changed);
  }
}

void Coordinator::Adopt(SweepEntry& sweep, std::map<std::string, TaskEntry>& changed) {
  for (auto& [tid, e] : changed) {
    TaskEntry& cur = sweep.tasks[tid];
    if (cur.state == TaskState::kRunning && e.state != TaskState::kRunning) --sweep.running;
    if (cur.state != TaskState::kRunning && e.state == TaskState::kRunning) ++sweep.running;
    if (e.state == TaskState::kPending && cur.state != TaskState::kPending) sweep.ready[QueueOf(e.task)].insert(cur.pos);
    if (e.state != TaskState::kPending && cur.state == TaskState::kPending) sweep.ready[QueueOf(e.task)].erase(cur.pos);
    size_t pos = cur.pos;
    cur = std::move(e);
    cur.pos = pos;
  }
}

StatusOr<std::string> Coordinator::ResultArtifact(const SubmitResultMsg& m) {
  const std::string& hash = m.result.artifact_hash;
  if (!m.artifact.empty()) {
    if (!IsContentName(hash) || ContentHash(m.artifact) != hash) return std::string("corrupted in transit (hash mismatch)");
    PRUNELAB_RETURN_IF_ERROR(artifacts_.Put(hash, m.artifact));  // durable before the result is
    return std::string();
  }
  if (hash.empty()) return std::string("missing: the result names none");
  auto size = artifacts_.Size(hash);
  if (!size.ok()) return size.status();
  if (!size.value()) return std::string(hash.substr(0, 12) + " was not uploaded (or its upload did not complete)");
  return std::string();
}

// Served a range at a time straight from the artifact store: the coordinator never holds a
// whole artifact for a download.
Message Coordinator::OnFetchArtifact(const FetchArtifactMsg& m) {
  auto size = artifacts_.Size(m.hash);
  if (!size.ok()) return Error("store_error", size.status().ToString());
  if (!size.value()) return ArtifactReplyMsg{m.hash, false, "", 0, 0, ""};
  ArtifactReplyMsg r;
  r.hash = m.hash;
  r.found = true;
  r.total_bytes = *size.value();
  r.offset = std::min<uint64_t>(m.offset, r.total_bytes);
  const uint32_t n = m.max_bytes == 0 ? kDefaultArtifactChunkBytes : std::min(m.max_bytes, kMaxArtifactChunkBytes);
  auto data = artifacts_.Read(m.hash, r.offset, n);
  if (!data.ok()) return Error("store_error", data.status().ToString());
  r.data = std::move(data).value();
  r.chunk_hash = ContentHash(r.data);
  return r;
}

Message Coordinator::OnSubmitSweep(const SubmitSweepMsg& m) {
  // A resend of a submission whose reply was lost: answer with what was stored.
  if (m.submission_id.size() > 64 || !IsValidUtf8(m.submission_id))
    return Error("invalid_spec", "submission id longer than 64 characters");
  if (!m.submission_id.empty()) {
    auto seen = store_.Get(SubmissionKey(m.submission_id));
    if (!seen.ok()) return Error("store_error", seen.status().ToString());
    if (seen.value()) {
      auto it = sweeps_.find(*seen.value());
      const uint32_t n = it == sweeps_.end() ? 0 : static_cast<uint32_t>(it->second.tasks.size());
      return SubmitReplyMsg{*seen.value(), n, /*already_stored=*/true};
    }
  }
  auto spec = ParseSpec(m.spec_yaml);
  if (!spec.ok()) return Error("invalid_spec", spec.status().message());
  if (const size_t trials = TrialCount(spec.value()); trials > options_.max_trials_per_sweep)
    return Error("invalid_spec", "the sweep expands into " + std::to_string(trials) + " trials (x " +
                                     std::to_string(spec->targets.size()) + " target(s)); this coordinator takes at most " +
                                     std::to_string(options_.max_trials_per_sweep) +
                                     " per sweep (prunelab-coordinator --max-trials); split it into smaller sweeps");
  std::vector<StoreWrite> batch;
  if (spec->model == "torchscript") {
    // The user's module is uploaded before the spec (or, small, travels with it) and is
    // served to workers like any artifact.
    if (!m.user_model.empty()) {
      if (m.user_model.size() > options_.uploads.max_artifact_bytes)
        return Error("invalid_spec", "model.torchscript is " + MibText(m.user_model.size()) + "; this coordinator takes at most " +
                                         MibText(options_.uploads.max_artifact_bytes) + " (prunelab-coordinator --max-artifact-mb)");
      if (Status st = CheckTorchScriptBytes(m.user_model, "model.torchscript"); !st.ok())
        return Error("invalid_spec", st.message());
      spec->model_artifact = ContentHash(m.user_model);
      if (Status st = artifacts_.Put(spec->model_artifact, m.user_model); !st.ok())
        return Error("store_error", "sweep not stored: " + st.ToString());
    } else if (!m.user_model_hash.empty()) {
      auto head = IsContentName(m.user_model_hash) ? artifacts_.Read(m.user_model_hash, 0, 4)
                                                   : StatusOr<std::string>(Status::NotFound("not a content hash"));
      if (!head.ok() && head.status().code() != Status::Code::kNotFound)
        return Error("store_error", "sweep not stored: " + head.status().ToString());
      if (!head.ok())
        return Error("invalid_spec", "model.torchscript: the model " + m.user_model_hash.substr(0, 64) +
                                         " named by the submission was not uploaded; submit again with the prunelab CLI");
      if (Status st = CheckTorchScriptBytes(head.value(), "model.torchscript"); !st.ok())
        return Error("invalid_spec", st.message());
      spec->model_artifact = m.user_model_hash;
    } else {
      return Error("invalid_spec", "model.torchscript: the model file did not arrive with the spec (submit with the prunelab CLI, which uploads it)");
    }
  }
  SweepEntry sweep;
  sweep.id = fmt::sprintf("sw-%04llu", static_cast<unsigned long long>(next_sweep_seq_));
  sweep.name = spec->name;
  sweep.created_ms = clock_.NowMs();
  sweep.priority = spec->priority;

  // A dense baseline trained by an earlier sweep with the same settings is reused.
  std::string cached;
  auto hit = store_.Get(BaselineCacheKey(BaselineKey(spec.value())));
  if (hit.ok() && !hit.value()) hit = store_.Get(BaselineCacheKey(LegacyBaselineKey(spec.value())));
  if (!hit.ok()) return Error("store_error", hit.status().ToString());
  if (hit.value()) {
    auto art = artifacts_.Size(*hit.value());
    if (art.ok() && art.value()) cached = *hit.value();
  }

  for (Task& t : ExpandTasks(spec.value(), sweep.id)) {
    TaskEntry e;
    e.task = std::move(t);
    if (e.task.kind == TaskKind::kTrainBaseline) {
      e.state = cached.empty() ? TaskState::kPending : TaskState::kDone;
      if (!cached.empty()) e.attempt_errors.push_back("skipped: baseline " + cached + " reused from cache");
    } else {
      e.state = cached.empty() || !e.task.depends_on.empty() || e.task.kind == TaskKind::kConfirmTarget
                    ? TaskState::kBlocked
                    : TaskState::kPending;
      e.task.baseline_artifact = cached;
    }
    auto& q = sweep.queues[QueueOf(e.task)];
    e.pos = q.size();
    q.push_back(e.task.task_id);
    if (!e.task.depends_on.empty()) sweep.dependents[e.task.depends_on].push_back(e.task.task_id);
    if (e.state == TaskState::kPending) sweep.ready[QueueOf(e.task)].insert(e.pos);
    sweep.order.push_back(e.task.task_id);
    batch.push_back(TaskRecord(sweep.id, e));
    sweep.tasks[e.task.task_id] = std::move(e);
  }
  json rec{{"id", sweep.id}, {"name", sweep.name}, {"spec_yaml", m.spec_yaml},
           {"created_ms", sweep.created_ms}, {"order", sweep.order}, {"priority", sweep.priority}};
  batch.push_back({SweepKey(sweep.id), rec.dump()});
  batch.push_back({"meta/sweep_seq", std::to_string(next_sweep_seq_ + 1)});
  if (!m.submission_id.empty()) batch.push_back({SubmissionKey(m.submission_id), sweep.id});
  Status st = store_.Apply(batch);
  if (!st.ok()) return Error("store_error", "sweep not stored: " + st.ToString());
  ++next_sweep_seq_;
  uint32_t n = static_cast<uint32_t>(sweep.tasks.size());
  const std::string id = sweep.id;
  sweeps_[id] = std::move(sweep);
  return SubmitReplyMsg{id, n};
}

Message Coordinator::OnSweepControl(const SweepControlMsg& m) {
  auto it = sweeps_.find(m.sweep_id);
  if (it == sweeps_.end()) return Error("not_found", "no sweep '" + m.sweep_id + "' (see prunelab sweeps)");
  if (m.action != "pause" && m.action != "resume" && m.action != "cancel")
    return Error("bad_request", "sweep action '" + m.action + "' (allowed: pause, resume, cancel)");
  SweepEntry& sweep = it->second;
  auto rec = store_.Get(SweepKey(sweep.id));
  if (!rec.ok() || !rec.value()) return Error("store_error", "sweep record of " + sweep.id + " unreadable");
  auto j = ParseJson(*rec.value());
  if (!j.ok()) return Error("store_error", "sweep record of " + sweep.id + ": " + j.status().message());
  bool paused = m.action == "pause" || (sweep.paused && m.action == "cancel");
  bool cancelled = sweep.cancelled || m.action == "cancel";
  (*j)["paused"] = paused;
  (*j)["cancelled"] = cancelled;
  // Cancelling writes the unfinished tasks in batches of kCancelBatch, each applied to memory
  // once written, so a big sweep costs memory for one batch, not for all of it. The sweep's
  // own flag goes with the last batch: if the coordinator dies half-way, the sweep is simply
  // partly cancelled and `cancel` again finishes it (finished tasks are skipped).
  constexpr size_t kCancelBatch = 1000;
  std::vector<StoreWrite> batch;
  std::map<std::string, TaskEntry> changed;
  size_t written = 0;
  auto flush = [&]() -> Status {
    PRUNELAB_RETURN_IF_ERROR(store_.Apply(batch));
    written += changed.size();
    Adopt(sweep, changed);
    batch.clear();
    changed.clear();
    return Status::Ok();
  };
  if (m.action == "cancel") {
    const int64_t now = clock_.NowMs();
    std::vector<std::string> unfinished;
    for (const auto& [tid, t] : sweep.tasks)
      if (!Terminal(t.state)) unfinished.push_back(tid);
    for (const std::string& tid : unfinished) {
      const TaskEntry& t = sweep.tasks[tid];
      TaskEntry e = t;
      e.state = TaskState::kFailed;
      e.attempt_errors.push_back("cancelled by the user");
      if (ProducesResultRow(t.task))
        batch.push_back({ResultKey(sweep.id, tid), EncodeResultRecord(FailureResult(t.task, "cancelled by the user", now))});
      batch.push_back(TaskRecord(sweep.id, e));
      batch.push_back({RunKey(sweep.id, tid), std::nullopt});
      changed[tid] = std::move(e);
      if (changed.size() >= kCancelBatch) {
        if (Status st = flush(); !st.ok())
          return Error("store_error", "cancel stopped after " + std::to_string(written) + " of " +
                                          std::to_string(unfinished.size()) + " tasks: " + st.ToString() +
                                          "; run cancel again to finish");
      }
    }
  }
  batch.push_back({SweepKey(sweep.id), j->dump()});
  if (Status st = flush(); !st.ok())
    return Error("store_error", "sweep " + m.action + " not recorded: " + st.ToString());
  sweep.paused = paused;
  sweep.cancelled = cancelled;
  return StatusReplyMsg{{StatusOf(sweep)}};
}

SweepStatus Coordinator::StatusOf(const SweepEntry& s) const {
  SweepStatus st;
  st.id = s.id;
  st.name = s.name;
  st.created_at_ms = s.created_ms;
  bool all_terminal = true;
  bool any_pending = false;
  // Pending work that no live worker can take is the most common reason a sweep stalls.
  // (Runs every tick for the dashboard: one pass over workers, one over tasks.)
  std::set<std::string> live_targets, starved;
  for (const auto& [wid, w] : workers_)
    if (w.status.alive) live_targets.insert(w.status.target);
  for (const auto& [tid, t] : s.tasks) {
    if (!Terminal(t.state)) all_terminal = false;
    if (t.state == TaskState::kPending) {
      any_pending = true;
      if (!t.task.target.empty() && !live_targets.count(t.task.target)) starved.insert(t.task.target);
    }
    if (!CountsAsTrial(t.task)) continue;  // stages (their rows follow from them), confirmation rounds
    ++st.trials;
    TaskState state = t.state;
    // A benchmark waiting for its variant counts as running while the variant is pruned.
    if (state == TaskState::kBlocked && !t.task.depends_on.empty()) {
      auto d = s.tasks.find(t.task.depends_on);
      if (d != s.tasks.end() && d->second.state == TaskState::kRunning) state = TaskState::kRunning;
    }
    switch (state) {
      case TaskState::kDone: ++st.done; break;
      case TaskState::kFailed: ++st.failed; break;
      case TaskState::kRunning: ++st.running; break;
      default: ++st.pending; break;
    }
  }
  st.state = s.cancelled ? "cancelled" : all_terminal ? "done" : s.paused ? "paused" : "running";
  if (!starved.empty()) {
    st.note = "no live worker for target(s):";
    for (const auto& t : starved) st.note += " " + t;
    st.note += " (start prunelab-worker --target NAME on such a machine)";
  } else if (any_pending && !all_terminal && live_targets.empty()) {
    st.note = "no live worker (start prunelab-worker)";
  }
  if (s.priority != 0) st.note += std::string(st.note.empty() ? "" : "; ") + "priority " + std::to_string(s.priority);
  return st;
}

std::vector<SweepStatus> Coordinator::Sweeps() const {
  std::vector<SweepStatus> out;
  for (const auto& [id, s] : sweeps_) out.push_back(StatusOf(s));
  return out;
}

std::vector<WorkerStatus> Coordinator::Workers() const {
  std::vector<WorkerStatus> out;
  int64_t now = clock_.NowMs();
  for (const auto& [id, w] : workers_) {
    WorkerStatus s = w.status;
    s.last_seen_ms_ago = now - w.last_seen_ms;
    // One line for every slot: its task, phase and progress.
    s.task_id.clear();
    std::string phases;
    double progress = 0;
    for (const auto& [slot, h] : w.held) {
      if (!s.task_id.empty()) s.task_id += ", ";
      s.task_id += h.sweep_id + "/" + h.task_id;
      auto p = w.phase.find(slot);
      if (p != w.phase.end()) {
        if (!phases.empty()) phases += ", ";
        phases += p->second.first;
        progress += p->second.second;
      }
    }
    if (!w.held.empty()) {
      s.phase = phases;
      s.progress = progress / static_cast<double>(w.held.size());
    } else if (s.alive) {
      s.phase = "idle";
      s.progress = 0;
    }
    out.push_back(s);
  }
  return out;
}

void Coordinator::Counts(std::map<std::string, uint64_t>* by_state, std::map<std::string, uint64_t>* results_by_target,
                         std::map<std::string, uint64_t>* failed_by_target) const {
  for (const auto& [sid, sweep] : sweeps_)
    for (const auto& [tid, t] : sweep.tasks) {
      ++(*by_state)[TaskStateName(t.state)];
      if (!Terminal(t.state) || !ProducesResultRow(t.task)) continue;
      if (t.task.kind == TaskKind::kConfirmTarget && t.state == TaskState::kDone) continue;  // re-times counted rows
      ++(*results_by_target)[t.task.target];
      if (failed_by_target && t.state == TaskState::kFailed) ++(*failed_by_target)[t.task.target];
    }
}

Message Coordinator::OnStatus(const StatusRequestMsg& m) {
  if (m.sweep_id.empty()) return StatusReplyMsg{Sweeps()};
  auto it = sweeps_.find(m.sweep_id);
  if (it == sweeps_.end()) return Error("not_found", "no sweep '" + m.sweep_id + "'; `prunelab status` lists them");
  return StatusReplyMsg{{StatusOf(it->second)}};
}

Message Coordinator::OnResults(const ResultsRequestMsg& m) {
  auto r = ReadResults(store_, m.sweep_id);
  if (!r.ok()) {
    return Error(r.status().code() == Status::Code::kNotFound ? "not_found" : "store_error", r.status().message());
  }
  auto spec = ReadSpecYaml(store_, m.sweep_id);
  return ResultsReplyMsg{std::move(r).value(), spec.ok() ? spec.value() : ""};
}

bool Coordinator::Requeue(const std::string& sweep_id, const std::string& task_id, const std::string& reason) {
  auto sit = sweeps_.find(sweep_id);
  if (sit == sweeps_.end()) return true;
  auto tit = sit->second.tasks.find(task_id);
  if (tit == sit->second.tasks.end() || tit->second.state != TaskState::kRunning) return true;
  TaskEntry e = tit->second;
  e.attempt_errors.push_back("attempt " + std::to_string(e.task.attempt) + ": " + reason);
  e.worker.clear();
  std::vector<StoreWrite> batch{{RunKey(sweep_id, task_id), std::nullopt}};
  std::map<std::string, TaskEntry> changed;
  std::optional<ReleaseBook::Outcome> evaluated;
  if (e.task.attempt >= options_.max_attempts) {
    e.state = TaskState::kFailed;
    std::string why = "gave up after " + std::to_string(e.task.attempt) + " attempts:";
    for (const auto& a : e.attempt_errors) why += " [" + a + "]";
    TrialResult fr = FailureResult(e.task, why, clock_.NowMs());
    batch.push_back({RecordKey(sweep_id, e.task), EncodeResultRecord(fr)});
    if (e.task.kind == TaskKind::kTrainBaseline || !ProducesResultRow(e.task))
      UnblockDependents(sit->second, e, false, "", fr, fr.finished_at_ms, &batch, &changed);
    if (e.task.kind == TaskKind::kEvaluateRelease) {
      auto o = EvaluationDone(e.task, fr, &batch);
      if (o.ok()) evaluated = std::move(o).value();
    }
  } else {
    e.state = TaskState::kPending;
  }
  changed[task_id] = e;
  for (const auto& [tid, c] : changed) batch.push_back(TaskRecord(sweep_id, c));
  // If the write fails the task stays running in memory and the caller keeps it held.
  if (!store_.Apply(batch).ok()) return false;
  Adopt(sit->second, changed);
  Event("task " + sweep_id + "/" + task_id + (e.state == TaskState::kFailed ? " failed: " : " requeued: ") + reason);
  if (e.state == TaskState::kFailed) UnblockConfirmations(sit->second);
  if (evaluated) AfterEvaluation(*evaluated, sweep_id);
  return true;
}

std::string Coordinator::NextJobId() const {
  return fmt::sprintf("ev-%06llu", static_cast<unsigned long long>(next_sweep_seq_));
}

Coordinator::SweepEntry Coordinator::NewJob(const Task& task, const std::string& name, std::vector<StoreWrite>* batch) {
  SweepEntry job;
  job.id = task.sweep_id;
  job.name = name;
  job.created_ms = clock_.NowMs();
  job.priority = 10;  // a deployed model's check goes before sweeps
  TaskEntry e;
  e.task = task;
  e.state = TaskState::kPending;
  auto& q = job.queues[QueueOf(e.task)];
  e.pos = q.size();
  q.push_back(e.task.task_id);
  job.ready[QueueOf(e.task)].insert(e.pos);
  job.order.push_back(e.task.task_id);
  batch->push_back(TaskRecord(job.id, e));
  job.tasks[e.task.task_id] = std::move(e);
  json rec{{"id", job.id}, {"name", job.name}, {"spec_yaml", ""}, {"kind", "evaluation"},
           {"created_ms", job.created_ms}, {"order", job.order}, {"priority", job.priority}};
  batch->push_back({SweepKey(job.id), rec.dump()});
  batch->push_back({"meta/sweep_seq", std::to_string(next_sweep_seq_ + 1)});
  return job;
}

Message Coordinator::OnReleaseCommand(const ReleaseCommandMsg& m) {
  const std::string job_id = NextJobId();
  auto o = releases_.Handle(m, job_id);
  if (!o.ok()) {
    const auto code = o.status().code();
    return Error(code == Status::Code::kInvalidArgument ? "invalid_spec"
                 : code == Status::Code::kNotFound      ? "not_found"
                                                        : "store_error",
                 o.status().message());
  }
  std::vector<StoreWrite> batch = std::move(o->writes);
  std::optional<SweepEntry> job;
  if (o->evaluation) job = NewJob(*o->evaluation, o->evaluation_name, &batch);
  if (!batch.empty()) {
    Status st = store_.Apply(batch);
    if (!st.ok()) return Error("store_error", "nothing changed: " + st.ToString());
  }
  if (job) {
    ++next_sweep_seq_;
    sweeps_[job->id] = std::move(*job);
  }
  for (const auto& line : o->events) Event(line);
  return ReleaseReplyMsg{o->reply_json};
}

StatusOr<ReleaseBook::Outcome> Coordinator::EvaluationDone(const Task& task, const TrialResult& rec,
                                                          std::vector<StoreWrite>* batch) {
  auto o = releases_.OnEvaluationResult(task, rec);
  if (!o.ok()) {
    // The row is still recorded; the release book could not use it (said in the log).
    Event("evaluation " + task.sweep_id + " not applied to its release: " + o.status().ToString());
    return o.status();
  }
  for (auto& w : o->writes) batch->push_back(std::move(w));
  o->writes.clear();
  return o;
}

void Coordinator::AfterEvaluation(const ReleaseBook::Outcome& o, const std::string& job_id) {
  for (const auto& line : o.events) Event(line);
  if (!o.resweep_yaml) return;
  SubmitSweepMsg again{*o.resweep_yaml, "", "resweep-" + job_id, o.resweep_model_artifact};
  Message reply = OnSubmitSweep(again);
  if (auto* r = std::get_if<SubmitReplyMsg>(&reply)) Event("policy resweep after " + job_id + ": submitted as " + r->sweep_id);
  else if (auto* e = std::get_if<ErrorMsg>(&reply)) Event("policy resweep after " + job_id + " refused: " + e->message);
}

void Coordinator::Tick() {
  uploads_.Expire();
  int64_t now = clock_.NowMs();
  int64_t limit = int64_t{options_.heartbeat_interval_ms} * options_.dead_after_missed_heartbeats;
  for (auto& [id, w] : workers_) {
    if (now - w.last_seen_ms <= limit) continue;
    if (w.status.alive) {
      w.status.alive = false;
      w.status.phase = "dead";
      Event("worker " + id + " declared dead: silent for " + std::to_string(now - w.last_seen_ms) + " ms (limit " +
            std::to_string(limit) + " ms, " + std::to_string(w.held.size()) + " task(s) to requeue)");
    }
    // A task whose requeue cannot be written stays held: the next tick tries again.
    for (auto it = w.held.begin(); it != w.held.end();) {
      if (Requeue(it->second.sweep_id, it->second.task_id,
                  "worker " + id + " silent for " + std::to_string(now - w.last_seen_ms) + " ms"))
        it = w.held.erase(it);
      else
        ++it;
    }
  }
}

}  // namespace prunelab::coordinator
