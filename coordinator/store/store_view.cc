#include "coordinator/store/store_view.h"

#include <set>

#include "common/codec/codec.h"
#include "common/codec/records.h"
#include "common/spec/task_graph.h"

namespace prunelab::coordinator {

StatusOr<std::vector<SweepStatus>> ReadSweepStatuses(Store& store) {
  std::vector<SweepStatus> out;
  Status st = Status::Ok();
  PRUNELAB_RETURN_IF_ERROR(store.Scan("sweep/", [&](const std::string&, const std::string& v) {
    auto j = ParseJson(v);
    if (!j.ok()) { st = j.status(); return; }
    SweepStatus s;
    s.id = j->value("id", "");
    s.name = j->value("name", "");
    s.created_at_ms = j->value("created_ms", int64_t{0});
    s.state = j->value("cancelled", false) ? "cancelled" : j->value("paused", false) ? "paused" : "";
    out.push_back(s);
  }));
  PRUNELAB_RETURN_IF_ERROR(st);
  for (auto& s : out) {
    bool all_terminal = true;
    std::set<std::string> assigned;  // run/ records: tasks handed to a worker
    PRUNELAB_RETURN_IF_ERROR(store.Scan("run/" + s.id + "/", [&](const std::string& k, const std::string&) {
      assigned.insert(k.substr(k.rfind('/') + 1));
    }));
    PRUNELAB_RETURN_IF_ERROR(store.Scan("task/" + s.id + "/", [&](const std::string&, const std::string& v) {
      auto rec = DecodeTaskRecord(v);
      if (!rec.ok()) return;
      std::string state = rec->state;
      const Task* task = &rec->task;
      if (state != "done" && state != "failed") all_terminal = false;
      if (!CountsAsTrial(*task)) return;
      if (state != "done" && state != "failed" && assigned.count(task->task_id)) state = "running";
      ++s.trials;
      if (state == "done") ++s.done;
      else if (state == "failed") ++s.failed;
      else if (state == "running") ++s.running;
      else ++s.pending;
    }));
    if (s.state.empty() || (s.state == "paused" && all_terminal)) s.state = all_terminal ? "done" : "incomplete";
  }
  return out;
}

StatusOr<std::vector<TrialResult>> ReadResults(Store& store, const std::string& sweep_id) {
  auto sweep = store.Get(SweepKey(sweep_id));
  if (!sweep.ok()) return sweep.status();
  if (!sweep.value()) return Status::NotFound("no sweep '" + sweep_id + "'; `prunelab sweeps` lists them");
  std::vector<std::string> order;
  auto j = ParseJson(*sweep.value());
  if (j.ok() && j->contains("order")) order = (*j)["order"].get<std::vector<std::string>>();
  std::map<std::string, TrialResult> by_task;
  Status st = Status::Ok();
  PRUNELAB_RETURN_IF_ERROR(store.Scan("result/" + sweep_id + "/", [&](const std::string&, const std::string& v) {
    auto r = DecodeResultRecord(v);
    if (!r.ok()) { st = r.status(); return; }
    by_task[r->task_id] = std::move(r).value();
  }));
  PRUNELAB_RETURN_IF_ERROR(st);
  std::vector<TrialResult> out;
  for (const auto& id : order) {
    auto it = by_task.find(id);
    if (it != by_task.end()) { out.push_back(std::move(it->second)); by_task.erase(it); }
  }
  for (auto& [id, r] : by_task) out.push_back(std::move(r));
  return out;
}

StatusOr<std::string> ReadSpecYaml(Store& store, const std::string& sweep_id) {
  auto sweep = store.Get(SweepKey(sweep_id));
  if (!sweep.ok()) return sweep.status();
  if (!sweep.value()) return Status::NotFound("no sweep '" + sweep_id + "'; `prunelab sweeps` lists them");
  auto j = ParseJson(*sweep.value());
  if (!j.ok()) return j.status();
  return j->value("spec_yaml", "");
}

}  // namespace prunelab::coordinator
