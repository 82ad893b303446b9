#include "coordinator/coordinator.h"

#include <cstdio>
#include <set>

#include "common/codec.h"
#include "common/hash.h"
#include "common/records.h"
#include "common/spec.h"
#include "coordinator/store_view.h"

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

// The result row of a task that ended without running to completion.
static TrialResult FailureResult(const Task& t, const std::string& error, int64_t now_ms) {
  TrialResult fr = ResultFor(t);
  fr.ok = false;
  fr.error = error;
  fr.finished_at_ms = now_ms;
  return fr;
}

static ErrorMsg Error(const std::string& code, const std::string& message) { return ErrorMsg{code, message}; }

Coordinator::Coordinator(Store& store, const Clock& clock, CoordinatorOptions options)
    : store_(store), clock_(clock), options_(options) {}

StoreWrite Coordinator::TaskRecord(const std::string& sweep_id, const TaskEntry& t) const {
  json j{{"task", ToJson(t.task)},
         {"state", TaskStateName(t.state)},
         {"worker", t.worker},
         {"attempt_errors", t.attempt_errors}};
  return StoreWrite{TaskKey(sweep_id, t.task.task_id), j.dump()};
}

Status Coordinator::Recover() {
  Status st = Status::Ok();
  PRUNELAB_RETURN_IF_ERROR(store_.Scan("sweep/", [&](const std::string&, const std::string& v) {
    auto j = ParseJson(v);
    if (!j.ok()) { st = j.status(); return; }
    SweepEntry s;
    s.id = j->value("id", "");
    s.name = j->value("name", "");
    s.created_ms = j->value("created_ms", int64_t{0});
    s.paused = j->value("paused", false);
    s.cancelled = j->value("cancelled", false);
    if (j->contains("order")) s.order = (*j)["order"].get<std::vector<std::string>>();
    sweeps_[s.id] = std::move(s);
  }));
  PRUNELAB_RETURN_IF_ERROR(st);
  std::vector<StoreWrite> requeued;
  for (auto& [id, sweep] : sweeps_) {
    PRUNELAB_RETURN_IF_ERROR(store_.Scan("task/" + id + "/", [&](const std::string&, const std::string& v) {
      auto j = ParseJson(v);
      if (!j.ok()) { st = j.status(); return; }
      auto task = TaskFromJson((*j)["task"]);
      if (!task.ok()) { st = task.status(); return; }
      TaskEntry e;
      e.task = std::move(task).value();
      e.state = StateFromName(j->value("state", "pending"));
      e.worker = j->value("worker", "");
      e.attempt_errors = j->value("attempt_errors", std::vector<std::string>{});
      if (e.state == TaskState::kRunning) {
        // Its worker may still deliver the result (accepted once, see the rule above);
        // meanwhile anyone may run it again.
        e.state = TaskState::kPending;
        e.attempt_errors.push_back("attempt " + std::to_string(e.task.attempt) + " interrupted by a coordinator restart");
        e.worker.clear();
        requeued.push_back(TaskRecord(id, e));
      }
      sweep.tasks[e.task.task_id] = std::move(e);
    }));
    PRUNELAB_RETURN_IF_ERROR(st);
  }
  auto seq = store_.Get("meta/sweep_seq");
  if (!seq.ok()) return seq.status();
  if (seq.value()) next_sweep_seq_ = std::stoull(*seq.value());
  if (!requeued.empty()) PRUNELAB_RETURN_IF_ERROR(store_.Apply(requeued));
  return Status::Ok();
}

std::optional<Message> Coordinator::Handle(const Message& msg) {
  if (auto* m = std::get_if<RegisterMsg>(&msg)) return OnRegister(*m);
  if (auto* m = std::get_if<HeartbeatMsg>(&msg)) return OnHeartbeat(*m);
  if (auto* m = std::get_if<RequestWorkMsg>(&msg)) return OnRequestWork(*m);
  if (auto* m = std::get_if<SubmitResultMsg>(&msg)) return OnSubmitResult(*m);
  if (auto* m = std::get_if<FetchArtifactMsg>(&msg)) return OnFetchArtifact(*m);
  if (auto* m = std::get_if<SubmitSweepMsg>(&msg)) return OnSubmitSweep(*m);
  if (auto* m = std::get_if<StatusRequestMsg>(&msg)) return OnStatus(*m);
  if (auto* m = std::get_if<ResultsRequestMsg>(&msg)) return OnResults(*m);
  if (std::holds_alternative<WorkersRequestMsg>(msg)) return Message(WorkersReplyMsg{Workers()});
  if (auto* m = std::get_if<SweepControlMsg>(&msg)) return OnSweepControl(*m);
  if (std::holds_alternative<ErrorMsg>(msg)) return std::nullopt;  // never answer an error with an error
  return Message(Error("unexpected_message", std::string("the coordinator does not accept ") + MessageName(msg)));
}

Message Coordinator::OnRegister(const RegisterMsg& m) {
  std::string id = m.worker_id;
  if (id.empty() || id.size() > 128) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "w%03llu-", static_cast<unsigned long long>(next_worker_seq_++));
    id = buf + (m.hardware.hostname.empty() ? std::string("host") : m.hardware.hostname.substr(0, 40));
    while (workers_.count(id)) id += "x";
  }
  WorkerEntry& w = workers_[id];
  // A worker re-registering (it restarted) no longer runs what it held.
  if (!w.task_id.empty()) Requeue(w.sweep_id, w.task_id, "worker " + id + " re-registered while holding the task");
  w.status.worker_id = id;
  w.status.target = m.target;
  w.status.hardware = m.hardware;
  w.status.alive = true;
  w.last_seen_ms = clock_.NowMs();
  return RegisterReplyMsg{id, options_.heartbeat_interval_ms};
}

std::optional<Message> Coordinator::OnHeartbeat(const HeartbeatMsg& m) {
  auto it = workers_.find(m.worker_id);
  if (it == workers_.end()) return std::nullopt;  // heartbeats are one-way
  it->second.last_seen_ms = clock_.NowMs();
  it->second.status.alive = true;
  it->second.status.phase = m.phase;
  it->second.status.progress = m.progress;
  return std::nullopt;
}

Message Coordinator::OnRequestWork(const RequestWorkMsg& m) {
  auto wit = workers_.find(m.worker_id);
  if (wit == workers_.end())
    return Error("unregistered", "worker '" + m.worker_id + "' is not registered (coordinator restarted?); register again");
  WorkerEntry& w = wit->second;
  w.last_seen_ms = clock_.NowMs();
  w.status.alive = true;
  if (!w.task_id.empty()) Requeue(w.sweep_id, w.task_id, "worker " + m.worker_id + " asked for new work while holding the task");

  for (auto& [sid, sweep] : sweeps_) {
    if (sweep.paused) continue;
    size_t& from = sweep.scan_from[w.status.target];
    for (size_t i = from; i < sweep.order.size(); ++i) {
      const std::string& tid = sweep.order[i];
      TaskEntry& t = sweep.tasks[tid];
      // Skipped tasks stay unassignable to this target until something turns pending.
      if (t.state != TaskState::kPending || (!t.task.target.empty() && t.task.target != w.status.target)) {
        if (i == from) ++from;
        continue;
      }
      TaskEntry next = t;
      next.state = TaskState::kRunning;
      next.worker = m.worker_id;
      next.task.attempt += 1;
      Status st = store_.Apply({TaskRecord(sid, next)});
      if (!st.ok()) return Error("store_error", st.ToString());
      t = std::move(next);
      if (i == from) ++from;
      w.sweep_id = sid;
      w.task_id = tid;
      w.status.task_id = sid + "/" + tid;
      w.status.phase = "assigned";
      w.status.progress = 0;
      return AssignMsg{t.task};
    }
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

  // The worker is free again whatever happens to this result.
  auto wit = workers_.find(m.worker_id);
  if (wit != workers_.end() && wit->second.task_id == r.task_id && wit->second.sweep_id == r.sweep_id) {
    wit->second.task_id.clear();
    wit->second.sweep_id.clear();
    wit->second.status.task_id.clear();
    wit->second.status.phase = "idle";
    wit->second.last_seen_ms = clock_.NowMs();
  }
  if (Terminal(task.state))
    return ResultAckMsg{r.task_id, r.attempt, false, "duplicate: a result for this task is already recorded"};

  TrialResult rec = r;
  rec.finished_at_ms = clock_.NowMs();
  std::vector<StoreWrite> batch;
  std::map<std::string, TaskEntry> changed;  // applied to memory only after the batch is durable

  bool train_ok = r.ok;
  if (task.task.kind == TaskKind::kPruneTrial && r.ok && !m.artifact.empty()) {
    // The pruned variant, for `prunelab export`. A corrupted copy only loses the export.
    if (ContentHash(m.artifact) == r.artifact_hash) batch.push_back({ArtifactKey(r.artifact_hash), m.artifact});
    else rec.artifact_hash.clear();
  }
  // Iterative rounds before the last are results of their own ("t003@local/r1"),
  // written in the same batch as the final row.
  for (const TrialResult& im : r.intermediates) {
    TrialResult row = im;
    row.task_id = r.task_id + "/r" + std::to_string(im.round);
    row.finished_at_ms = rec.finished_at_ms;
    row.intermediates.clear();
    batch.push_back({ResultKey(r.sweep_id, row.task_id), ToJson(row).dump()});
  }
  rec.intermediates.clear();
  if (task.task.kind == TaskKind::kTrainBaseline && r.ok) {
    if (m.artifact.empty() || ContentHash(m.artifact) != r.artifact_hash) {
      rec.ok = false;
      train_ok = false;
      rec.error = "baseline artifact missing or corrupted in transit (hash mismatch)";
    } else {
      batch.push_back({ArtifactKey(r.artifact_hash), m.artifact});
      batch.push_back({BaselineCacheKey(task.task.baseline_key), r.artifact_hash});
    }
  }
  TaskEntry updated = task;
  updated.state = rec.ok ? TaskState::kDone : TaskState::kFailed;
  updated.worker = r.worker_id;
  changed[r.task_id] = updated;
  batch.push_back({ResultKey(r.sweep_id, r.task_id), ToJson(rec).dump()});

  if (task.task.kind == TaskKind::kTrainBaseline)
    ReleaseDependents(sweep, train_ok, r.artifact_hash, rec.error, rec.finished_at_ms, &batch, &changed);
  for (const auto& [tid, e] : changed) batch.push_back(TaskRecord(r.sweep_id, e));
  Status st = store_.Apply(batch);
  if (!st.ok()) return Error("store_error", "result not recorded, send it again: " + st.ToString());
  for (auto& [tid, e] : changed) sweep.tasks[tid] = std::move(e);
  if (task.task.kind == TaskKind::kTrainBaseline) sweep.scan_from.clear();  // dependents turned pending
  return ResultAckMsg{r.task_id, r.attempt, true, rec.ok ? "recorded" : "recorded as failed: " + rec.error};
}

void Coordinator::ReleaseDependents(SweepEntry& sweep, bool baseline_ok, const std::string& artifact,
                                    const std::string& error, int64_t now_ms, std::vector<StoreWrite>* batch,
                                    std::map<std::string, TaskEntry>* changed) {
  for (auto& [tid, dep] : sweep.tasks) {
    if (dep.state != TaskState::kBlocked) continue;
    TaskEntry d = dep;
    if (baseline_ok) {
      d.state = TaskState::kPending;
      d.task.baseline_artifact = artifact;
    } else {
      d.state = TaskState::kFailed;
      TrialResult fr = FailureResult(d.task, "baseline training failed: " + error, now_ms);
      batch->push_back({ResultKey(sweep.id, tid), ToJson(fr).dump()});
    }
    (*changed)[tid] = d;
  }
}

Message Coordinator::OnFetchArtifact(const FetchArtifactMsg& m) {
  auto v = store_.Get(ArtifactKey(m.hash));
  if (!v.ok()) return Error("store_error", v.status().ToString());
  if (!v.value()) return ArtifactReplyMsg{m.hash, false, ""};
  return ArtifactReplyMsg{m.hash, true, *v.value()};
}

Message Coordinator::OnSubmitSweep(const SubmitSweepMsg& m) {
  auto spec = ParseSpec(m.spec_yaml);
  if (!spec.ok()) return Error("invalid_spec", spec.status().message());
  std::vector<StoreWrite> batch;
  if (spec->model == "torchscript") {
    // The user's module travels with the spec and is served to workers like any artifact.
    if (m.user_model.empty())
      return Error("invalid_spec", "model.torchscript: the model file did not arrive with the spec (submit with the prunelab CLI, which attaches it)");
    spec->model_artifact = ContentHash(m.user_model);
    batch.push_back({ArtifactKey(spec->model_artifact), m.user_model});
  }
  char id[32];
  std::snprintf(id, sizeof(id), "sw-%04llu", static_cast<unsigned long long>(next_sweep_seq_));
  SweepEntry sweep;
  sweep.id = id;
  sweep.name = spec->name;
  sweep.created_ms = clock_.NowMs();

  // A dense baseline trained by an earlier sweep with the same settings is reused.
  std::string cached;
  auto hit = store_.Get(BaselineCacheKey(BaselineKey(spec.value())));
  if (!hit.ok()) return Error("store_error", hit.status().ToString());
  if (hit.value()) {
    auto art = store_.Get(ArtifactKey(*hit.value()));
    if (art.ok() && art.value()) cached = *hit.value();
  }

  for (Task& t : ExpandTasks(spec.value(), sweep.id)) {
    TaskEntry e;
    e.task = std::move(t);
    if (e.task.kind == TaskKind::kTrainBaseline) {
      e.state = cached.empty() ? TaskState::kPending : TaskState::kDone;
      if (!cached.empty()) e.attempt_errors.push_back("skipped: baseline " + cached + " reused from cache");
    } else {
      e.state = cached.empty() ? TaskState::kBlocked : TaskState::kPending;
      e.task.baseline_artifact = cached;
    }
    sweep.order.push_back(e.task.task_id);
    batch.push_back(TaskRecord(sweep.id, e));
    sweep.tasks[e.task.task_id] = std::move(e);
  }
  json rec{{"id", sweep.id}, {"name", sweep.name}, {"spec_yaml", m.spec_yaml},
           {"created_ms", sweep.created_ms}, {"order", sweep.order}};
  batch.push_back({SweepKey(sweep.id), rec.dump()});
  batch.push_back({"meta/sweep_seq", std::to_string(next_sweep_seq_ + 1)});
  Status st = store_.Apply(batch);
  if (!st.ok()) return Error("store_error", "sweep not stored: " + st.ToString());
  ++next_sweep_seq_;
  uint32_t n = static_cast<uint32_t>(sweep.tasks.size());
  sweeps_[sweep.id] = std::move(sweep);
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
  std::vector<StoreWrite> batch{{SweepKey(sweep.id), j->dump()}};
  std::map<std::string, TaskEntry> changed;
  if (m.action == "cancel") {
    const int64_t now = clock_.NowMs();
    for (const auto& [tid, t] : sweep.tasks) {
      if (Terminal(t.state)) continue;
      TaskEntry e = t;
      e.state = TaskState::kFailed;
      e.attempt_errors.push_back("cancelled by the user");
      changed[tid] = e;
      if (t.task.kind != TaskKind::kTrainBaseline)
        batch.push_back({ResultKey(sweep.id, tid), ToJson(FailureResult(t.task, "cancelled by the user", now)).dump()});
      batch.push_back(TaskRecord(sweep.id, e));
    }
  }
  Status st = store_.Apply(batch);
  if (!st.ok()) return Error("store_error", "sweep " + m.action + " not recorded: " + st.ToString());
  sweep.paused = paused;
  sweep.cancelled = cancelled;
  for (auto& [tid, e] : changed) sweep.tasks[tid] = std::move(e);
  return StatusReplyMsg{{StatusOf(sweep)}};
}

SweepStatus Coordinator::StatusOf(const SweepEntry& s) const {
  SweepStatus st;
  st.id = s.id;
  st.name = s.name;
  st.created_at_ms = s.created_ms;
  bool all_terminal = true;
  for (const auto& [tid, t] : s.tasks) {
    if (!Terminal(t.state)) all_terminal = false;
    if (t.task.kind == TaskKind::kTrainBaseline) continue;  // not a result row
    ++st.trials;
    switch (t.state) {
      case TaskState::kDone: ++st.done; break;
      case TaskState::kFailed: ++st.failed; break;
      case TaskState::kRunning: ++st.running; break;
      default: ++st.pending; break;
    }
  }
  st.state = s.cancelled ? "cancelled" : all_terminal ? "done" : s.paused ? "paused" : "running";
  // Pending work that no live worker can take is the most common reason a sweep stalls.
  std::set<std::string> starved;
  for (const auto& [tid, t] : s.tasks) {
    if (t.state != TaskState::kPending || t.task.target.empty()) continue;
    bool served = false;
    for (const auto& [wid, w] : workers_) served |= w.status.alive && w.status.target == t.task.target;
    if (!served) starved.insert(t.task.target);
  }
  if (!starved.empty()) {
    st.note = "no live worker for target(s):";
    for (const auto& t : starved) st.note += " " + t;
    st.note += " (start prunelab-worker --target NAME on such a machine)";
  }
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
    out.push_back(s);
  }
  return out;
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
  return ResultsReplyMsg{std::move(r).value()};
}

void Coordinator::Requeue(const std::string& sweep_id, const std::string& task_id, const std::string& reason) {
  auto sit = sweeps_.find(sweep_id);
  if (sit == sweeps_.end()) return;
  auto tit = sit->second.tasks.find(task_id);
  if (tit == sit->second.tasks.end() || tit->second.state != TaskState::kRunning) return;
  TaskEntry e = tit->second;
  e.attempt_errors.push_back("attempt " + std::to_string(e.task.attempt) + ": " + reason);
  e.worker.clear();
  std::vector<StoreWrite> batch;
  std::map<std::string, TaskEntry> changed;
  if (e.task.attempt >= options_.max_attempts) {
    e.state = TaskState::kFailed;
    std::string why = "gave up after " + std::to_string(e.task.attempt) + " attempts:";
    for (const auto& a : e.attempt_errors) why += " [" + a + "]";
    TrialResult fr = FailureResult(e.task, why, clock_.NowMs());
    batch.push_back({ResultKey(sweep_id, task_id), ToJson(fr).dump()});
    if (e.task.kind == TaskKind::kTrainBaseline)
      ReleaseDependents(sit->second, false, "", fr.error, fr.finished_at_ms, &batch, &changed);
  } else {
    e.state = TaskState::kPending;
  }
  changed[task_id] = e;
  for (const auto& [tid, c] : changed) batch.push_back(TaskRecord(sweep_id, c));
  // If the write fails the task stays running in memory and the next Tick tries again.
  if (store_.Apply(batch).ok()) {
    for (auto& [tid, c] : changed) sit->second.tasks[tid] = std::move(c);
    sit->second.scan_from.clear();  // the task is pending again
  }
}

void Coordinator::Tick() {
  int64_t now = clock_.NowMs();
  int64_t limit = int64_t{options_.heartbeat_interval_ms} * options_.dead_after_missed_heartbeats;
  for (auto& [id, w] : workers_) {
    if (!w.status.alive || now - w.last_seen_ms <= limit) continue;
    w.status.alive = false;
    w.status.phase = "dead";
    if (!w.task_id.empty()) {
      Requeue(w.sweep_id, w.task_id, "worker " + id + " silent for " + std::to_string(now - w.last_seen_ms) + " ms");
      w.task_id.clear();
      w.sweep_id.clear();
      w.status.task_id.clear();
    }
  }
}

}  // namespace prunelab::coordinator
