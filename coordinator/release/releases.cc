#include "coordinator/release/releases.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <fmt/printf.h>

#include "common/base/text.h"
#include "common/codec/codec.h"
#include "common/codec/records.h"
#include "common/spec/spec.h"
#include "coordinator/decide/decision.h"
#include "coordinator/decide/model_card.h"
#include "coordinator/release/assess.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {

using nlohmann::json;

namespace {

constexpr size_t kMaxText = 1000;       // notes, reasons
constexpr size_t kMaxPolicyBytes = 16 << 10;

std::string Pad(uint64_t n) {
  return fmt::sprintf("%06llu", static_cast<unsigned long long>(n));
}
std::string Version(uint64_t n) { return "v" + std::to_string(n); }
std::string RelKey(const std::string& t, uint64_t n) { return "rel/" + t + "/" + Pad(n); }
std::string RelTaskKey(const std::string& t, uint64_t n) { return "reltask/" + t + "/" + Pad(n); }
std::string CurKey(const std::string& t) { return "relcur/" + t; }
std::string EventKey(const std::string& t, uint64_t n) { return "relev/" + t + "/" + Pad(n); }
std::string PolicyKey(const std::string& t) { return "relpol/" + t; }
std::string EvalKey(const std::string& t, const std::string& id) { return "releval/" + t + "/" + id; }

std::string Num(double v, int digits = 4) {
  return fmt::sprintf("%.*g", digits, v);
}

Status CheckTarget(const std::string& t) {
  if (t.empty()) return Status::InvalidArgument("--target: required (the hardware target the release is for)");
  if (t.size() > 64) return Status::InvalidArgument("--target: at most 64 characters");
  for (char c : t)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return Status::InvalidArgument("--target '" + t.substr(0, 64) + "': letters, digits, '-', '_' and '.' only");
  return Status::Ok();
}

Status CheckText(const std::string& v, const char* field, size_t max) {
  if (v.size() > max) return Status::InvalidArgument(std::string(field) + ": at most " + std::to_string(max) + " bytes");
  if (!IsValidUtf8(v)) return Status::InvalidArgument(std::string(field) + ": not valid UTF-8");
  return Status::Ok();
}

// Release number from "v3" / "3".
std::optional<uint64_t> ParseVersion(const std::string& v) {
  std::string d = !v.empty() && (v[0] == 'v' || v[0] == 'V') ? v.substr(1) : v;
  if (d.empty() || d.size() > 9 || !std::all_of(d.begin(), d.end(), ::isdigit)) return std::nullopt;
  uint64_t n = std::stoull(d);
  return n == 0 ? std::nullopt : std::optional<uint64_t>(n);
}

StatusOr<std::optional<json>> GetJson(Store& store, const std::string& key) {
  auto v = store.Get(key);
  if (!v.ok()) return v.status();
  if (!v.value()) return std::optional<json>();
  auto j = ParseJson(*v.value());
  if (!j.ok()) return Status::Corruption(key + ": " + j.status().message());
  return std::optional<json>(std::move(j).value());
}

StatusOr<std::vector<json>> ScanJson(Store& store, const std::string& prefix) {
  std::vector<json> out;
  Status st = Status::Ok();
  PRUNELAB_RETURN_IF_ERROR(store.Scan(prefix, [&](const std::string& k, const std::string& v) {
    auto j = ParseJson(v);
    if (!j.ok()) st = Status::Corruption(k + ": " + j.status().message());
    else out.push_back(std::move(j).value());
  }));
  PRUNELAB_RETURN_IF_ERROR(st);
  return out;
}

StatusOr<uint64_t> Current(Store& store, const std::string& t) {
  auto v = store.Get(CurKey(t));
  if (!v.ok()) return v.status();
  if (!v.value()) return uint64_t{0};
  auto n = ParseVersion(*v.value());
  if (!n) return Status::Corruption(CurKey(t) + ": not a release number");
  return *n;
}

StatusOr<TargetPolicy> PolicyOf(Store& store, const std::string& t) {
  auto j = GetJson(store, PolicyKey(t));
  if (!j.ok()) return j.status();
  if (!j.value()) return TargetPolicy{};
  return ParsePolicy(*j.value());
}

// The figures of a result row a release keeps (and compares the next release with).
json RowSummary(const TrialResult& r) {
  return json{{"task", r.task_id},
              {"accuracy", r.accuracy},
              {"per_class_accuracy", r.per_class_accuracy},
              {"latency_p90_ms", r.latency_p90_ms},
              {"latency_p95_ms", r.latency_p95_ms},
              {"throughput_sps", r.throughput_sps},
              {"model_bytes", r.model_bytes},
              {"params", r.params},
              {"granularity", r.granularity},
              {"criterion", r.criterion},
              {"schedule", r.schedule},
              {"sparsity", r.sparsity},
              {"achieved_sparsity", r.achieved_sparsity},
              {"class_names", r.class_names}};
}

std::vector<std::string> PrunedLayers(const TrialResult& r) {
  std::vector<std::string> out;
  for (const auto& l : r.layers)
    if (l.total < l.dense || l.nonzero < l.total) out.push_back(l.name);
  return out;
}

std::string Quantization(const TrialResult& r) {
  auto j = ParseJson(r.trial_json.empty() ? "{}" : r.trial_json);
  if (!j.ok() || !j->contains("quantization")) return "none";
  return (*j)["quantization"].value("mode", "none");
}

// What changed from `prev` (the previous release's row, or the dense baseline's) to `r`.
json Changelog(const TrialResult& r, const json& prev, const std::string& against) {
  json d{{"accuracy_points", 100 * (r.accuracy - prev.value("accuracy", 0.0))},
         {"latency_p90_ms", r.latency_p90_ms - prev.value("latency_p90_ms", 0.0)},
         {"latency_p95_ms", r.latency_p95_ms - prev.value("latency_p95_ms", 0.0)},
         {"model_bytes", static_cast<double>(r.model_bytes) - prev.value("model_bytes", 0.0)},
         {"throughput_sps", r.throughput_sps - prev.value("throughput_sps", 0.0)}};
  json per_class = json::array();
  auto pc = prev.value("per_class_accuracy", std::vector<double>{});
  for (size_t k = 0; k < r.per_class_accuracy.size() && k < pc.size(); ++k)
    per_class.push_back(100 * (r.per_class_accuracy[k] - pc[k]));
  d["per_class_points"] = per_class;
  return json{{"against", against},
              {"layers_pruned", PrunedLayers(r)},
              {"pattern", r.baseline ? "dense" : r.granularity},
              {"criterion", r.baseline ? "" : r.criterion},
              {"schedule", r.baseline ? "" : r.schedule},
              {"sparsity", r.sparsity},
              {"quantization", Quantization(r)},
              {"deltas", d}};
}

// Benchmark settings of an evaluation: the release's, but only what an evaluation reports
// (single-stream p95, offline throughput), without A/B pairs or sparse forms.
void EvaluationBenchmark(BenchmarkConfig* b) {
  b->scenarios = {"single_stream", "offline"};
  b->ab_rounds = 0;
  b->sparse_forms = false;
}

// An evaluation task of target t from the release's template (its model, data
// normalization and benchmark), run as job `job_id`.
Task EvaluationTask(Task e, const std::string& t, const std::string& job_id, EvaluationConfig config) {
  e.kind = TaskKind::kEvaluateRelease;
  e.sweep_id = job_id;
  e.task_id = "eval@" + t;
  e.target = t;
  e.attempt = 0;
  e.depends_on.clear();
  EvaluationBenchmark(&e.benchmark);
  e.evaluation = std::move(config);
  return e;
}

bool KnownGood(const json& rel) {
  return rel.contains("reference") && rel["reference"].value("state", "") == "ready" && rel.value("status", "") != "critical";
}

json ReleaseSummary(const json& rel, uint64_t current) {
  json s{{"version", rel.value("version", "")},
         {"current", rel.value("number", uint64_t{0}) == current},
         {"sweep", rel.value("sweep", "")},
         {"trial", rel.value("trial", "")},
         {"artifact", rel.value("artifact", "")},
         {"released_by", rel.value("released_by", "")},
         {"released_at_ms", rel.value("released_at_ms", int64_t{0})},
         {"note", rel.value("note", "")},
         {"forced", rel.value("forced", false)},
         {"status", rel.value("status", "")},
         {"known_good", KnownGood(rel)},
         {"reference", rel.contains("reference") ? rel["reference"].value("state", "") : ""},
         {"changelog", rel.value("changelog", json::object())},
         {"gates", rel.value("gates", json::object())},
         {"row", rel.value("row", json::object())}};
  if (rel.value("forced", false)) s["force_reason"] = rel.value("force_reason", "");
  return s;
}

// A rollback from `from` to `to`: the current pointer and an event, nothing deleted.
void RollbackWrites(const std::string& t, uint64_t from, uint64_t to, const std::string& by, const std::string& reason,
                    bool automatic, int64_t now, uint64_t event_no, std::vector<StoreWrite>* writes) {
  json ev{{"action", "rollback"}, {"target", t}, {"from", Version(from)}, {"to", Version(to)}, {"by", by},
          {"at_ms", now}, {"reason", reason}, {"automatic", automatic}};
  writes->push_back({CurKey(t), Version(to)});
  writes->push_back({EventKey(t, event_no), ev.dump()});
}

StatusOr<uint64_t> EventCount(Store& store, const std::string& t) {
  uint64_t n = 0;
  PRUNELAB_RETURN_IF_ERROR(store.Scan("relev/" + t + "/", [&](const std::string&, const std::string&) { ++n; }));
  return n;
}

// The newest known-good release older than `current` (0: none).
StatusOr<uint64_t> LastKnownGood(Store& store, const std::string& t, uint64_t current) {
  auto rels = ScanJson(store, "rel/" + t + "/");
  if (!rels.ok()) return rels.status();
  uint64_t best = 0;
  for (const auto& r : rels.value()) {
    uint64_t n = r.value("number", uint64_t{0});
    if (n < current && n > best && KnownGood(r)) best = n;
  }
  return best;
}

}  // namespace

StatusOr<ReleaseBook::Outcome> ReleaseBook::Handle(const ReleaseCommandMsg& m, const std::string& next_job_id) {
  const std::string& a = m.action;
  const std::vector<std::pair<const std::string*, const char*>> texts{
      {&m.note, "--note"}, {&m.reason, "--reason"}, {&m.released_by, "released by"},
      {&m.sweep_id, "sweep"}, {&m.trial, "trial"}, {&m.version, "--to"}};
  for (const auto& [v, f] : texts) PRUNELAB_RETURN_IF_ERROR(CheckText(*v, f, kMaxText));
  if (a != "releases" && a != "evaluations") PRUNELAB_RETURN_IF_ERROR(CheckTarget(m.target));
  if (!m.target.empty()) PRUNELAB_RETURN_IF_ERROR(CheckTarget(m.target));
  const std::string by = m.released_by.empty() ? "unknown" : m.released_by;

  const Command c{m, by, clock_.NowMs(), next_job_id};
  if (a == "release") return Release(c);
  if (a == "releases") return Releases(c);
  if (a == "rollback") return Rollback(c);
  if (a == "evaluate") return Evaluate(c);
  if (a == "evaluations") return Evaluations(c);
  if (a == "policy") return Policy(c);
  return Status::InvalidArgument("release command '" + a.substr(0, 32) +
                                 "': allowed values are release, releases, rollback, evaluate, evaluations, policy");
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::Release(const Command& c) {
  const ReleaseCommandMsg& m = c.m;
  const std::string& t = m.target;
  const std::string& by = c.by;
  const int64_t now = c.now_ms;
  const std::string& next_job_id = c.next_job_id;
  Outcome out;
  if (m.sweep_id.empty() || m.trial.empty())
    return Status::InvalidArgument("release needs a sweep id and a trial, e.g. prunelab release sw-0001 recommended --target " + t);
  if (m.force && m.reason.empty()) return Status::InvalidArgument("--force needs --reason TEXT (it is recorded with the release)");
  auto results = ReadResults(store_, m.sweep_id);
  if (!results.ok()) return results.status();
  auto spec_yaml = ReadSpecYaml(store_, m.sweep_id);
  if (!spec_yaml.ok()) return spec_yaml.status();
  auto spec = ParseSpec(spec_yaml.value());
  if (!spec.ok()) return Status::InvalidArgument(m.sweep_id + " is not a sweep that can be released (" + spec.status().message() + ")");
  auto options = OptionsFromSpec(spec->report);
  if (!options.ok()) return options.status();
  auto policy = PolicyOf(store_, t);
  if (!policy.ok()) return policy.status();
  if (policy->gate_max_accuracy_drop >= 0) options->gates.max_accuracy_drop = policy->gate_max_accuracy_drop;
  if (policy->gate_max_memory_fraction >= 0) options->gates.max_memory_fraction = policy->gate_max_memory_fraction;
  auto decisions = Decide(results.value(), options.value());
  const TargetDecision* dec = nullptr;
  std::string targets;
  for (const auto& d : decisions) {
    targets += (targets.empty() ? "" : ", ") + d.target;
    if (d.target == t) dec = &d;
  }
  if (!dec) return Status::NotFound(m.sweep_id + " has no results on target '" + t + "' (its targets: " + targets + ")");
  std::string id = m.trial;
  if (id == "recommended") {
    if (!dec->recommended)
      return Status::InvalidArgument("no variant of " + m.sweep_id + " passes the gates on " + t +
                                     ", so nothing is recommended; release one by name with --force --reason TEXT "
                                     "(see prunelab pareto " + m.sweep_id + ")");
    id = dec->recommended->task_id;
  } else if (id == "base" || id == "dense") {
    id = "base@" + t;
  } else if (id.find('@') == std::string::npos) {
    id += "@" + t;
  }
  const Verdict* verdict = nullptr;
  for (const auto& v : dec->variants)
    if (v.row->task_id == id) verdict = &v;
  if (!verdict)
    return Status::NotFound("no benchmarked result '" + id + "' of " + m.sweep_id + " on " + t +
                            " (failed, unfinished, or an intermediate round; see prunelab results " + m.sweep_id + ")");
  const TrialResult& row = *verdict->row;
  json gates{{"pass", verdict->pass}, {"reasons", verdict->reasons},
             {"accuracy_drop_points", verdict->accuracy_drop_pt}, {"memory_fraction", verdict->memory_fraction},
             {"max_accuracy_drop", options->gates.max_accuracy_drop}, {"max_memory_fraction", options->gates.max_memory_fraction},
             {"from", policy->gate_max_accuracy_drop >= 0 || policy->gate_max_memory_fraction >= 0 ? "target policy" : "sweep spec"}};
  if (!verdict->pass && !m.force) {
    std::string why;
    for (const auto& r : verdict->reasons) why += "\n  - " + r;
    return Status::InvalidArgument(id + " fails the release gates on " + t + ":" + why +
                                   "\nrelease it anyway with --force --reason TEXT (recorded with the release)");
  }
  std::string dense_artifact;
  for (const auto& r : results.value())
    if (r.kind == TaskKind::kTrainBaseline && r.ok && !r.artifact_hash.empty()) dense_artifact = r.artifact_hash;
  const std::string artifact = row.baseline ? dense_artifact : row.artifact_hash;
  if (artifact.empty()) return Status::NotFound(id + " has no stored model to release");
  auto rec = store_.Get(TaskKey(m.sweep_id, id));
  if (!rec.ok()) return rec.status();
  if (!rec.value()) return Status::NotFound("no task record of " + m.sweep_id + "/" + id);
  auto task = DecodeTaskRecord(*rec.value());
  if (!task.ok()) return task.status();
  if (dense_artifact.empty()) dense_artifact = task->task.baseline_artifact;

  auto cur = Current(store_, t);
  if (!cur.ok()) return cur.status();
  auto rels = ScanJson(store_, "rel/" + t + "/");
  if (!rels.ok()) return rels.status();
  const uint64_t n = rels->size() + 1;
  json prev_row, against = "the dense baseline";
  if (cur.value()) {
    for (const auto& r : rels.value())
      if (r.value("number", uint64_t{0}) == cur.value()) prev_row = r.value("row", json::object());
    against = Version(cur.value());
  } else if (dec->baseline) {
    prev_row = RowSummary(*dec->baseline);
  }
  auto events = EventCount(store_, t);
  if (!events.ok()) return events.status();
  double p95_budget = 0;
  if (auto it = options->gates.latency_budget_ms.find("latency_p95_ms"); it != options->gates.latency_budget_ms.end())
    p95_budget = it->second;
  json doc{{"target", t},
           {"number", n},
           {"version", Version(n)},
           {"sweep", m.sweep_id},
           {"sweep_name", spec->name},
           {"trial", id},
           {"artifact", artifact},
           {"dense_artifact", dense_artifact},
           {"model_artifact", task->task.model_artifact},
           {"released_by", by},
           {"released_at_ms", now},
           {"note", m.note},
           {"forced", m.force && !verdict->pass},
           {"force_reason", m.force && !verdict->pass ? m.reason : ""},
           {"gates", gates},
           {"model_card", ModelCard(row, dec->baseline)},
           {"changelog", Changelog(row, prev_row.is_object() ? prev_row : json::object(), against.get<std::string>())},
           {"row", RowSummary(row)},
           {"dense", dec->baseline ? RowSummary(*dec->baseline) : json::object()},
           {"latency_budget_p95_ms", p95_budget},
           {"dataset", {{"name", task->task.dataset.name}, {"path", task->task.dataset.path}}},
           {"status", "pending reference"},
           {"reference", {{"state", "pending"}, {"evaluation", next_job_id}}}};
  json ev{{"action", "release"}, {"target", t}, {"to", Version(n)}, {"from", cur.value() ? Version(cur.value()) : ""},
          {"by", by}, {"at_ms", now}, {"reason", m.force && !verdict->pass ? m.reason : m.note}, {"automatic", false}};
  Task tmpl = task->task;
  tmpl.variant_artifact = artifact;
  tmpl.baseline_artifact = dense_artifact;
  out.writes = {{RelKey(t, n), doc.dump()},
                {RelTaskKey(t, n), EncodeTaskRecord({tmpl, "template", "", 0, {}})},
                {CurKey(t), Version(n)},
                {EventKey(t, events.value() + 1), ev.dump()}};
  // The reference run: the release's own test data, variant and dense teacher, on the target.
  out.evaluation = EvaluationTask(tmpl, t, next_job_id, EvaluationConfig{Version(n), /*reference=*/true,
                                                                         /*compare_dense=*/true, ""});
  out.evaluation_name = "reference run of " + t + " " + Version(n);
  json erec{{"id", next_job_id}, {"target", t}, {"release", Version(n)}, {"reference", true}, {"state", "running"},
            {"data", doc["dataset"]}, {"started_at_ms", now}};
  out.writes.push_back({EvalKey(t, next_job_id), erec.dump()});
  out.events.push_back("release " + t + " " + Version(n) + ": " + m.sweep_id + " " + id + " by " + by +
                       (doc["forced"].get<bool>() ? " (forced: " + m.reason + ")" : ""));
  json reply = ReleaseSummary(doc, n);
  reply["reference_evaluation"] = next_job_id;
  out.reply_json = reply.dump();
  return out;
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::Releases(const Command& c) {
  const ReleaseCommandMsg& m = c.m;
  const std::string& t = m.target;
  Outcome out;
  auto h = HistoryJson(store_);
  if (!h.ok()) return h.status();
  auto j = ParseJson(h.value());
  if (!j.ok()) return j.status();
  if (!t.empty()) {
    json only = json::array();
    for (const auto& x : (*j)["targets"])
      if (x.value("target", "") == t) only.push_back(x);
    (*j)["targets"] = only;
  }
  out.reply_json = j->dump();
  return out;
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::Rollback(const Command& c) {
  const ReleaseCommandMsg& m = c.m;
  const std::string& t = m.target;
  const std::string& by = c.by;
  const int64_t now = c.now_ms;
  Outcome out;
  auto cur = Current(store_, t);
  if (!cur.ok()) return cur.status();
  if (!cur.value()) return Status::NotFound("target '" + t + "' has no release to roll back");
  uint64_t to = 0;
  if (!m.version.empty()) {
    auto n = ParseVersion(m.version);
    if (!n) return Status::InvalidArgument("--to '" + m.version.substr(0, 32) + "': a release like v2");
    auto doc = GetJson(store_, RelKey(t, *n));
    if (!doc.ok()) return doc.status();
    if (!doc.value()) return Status::NotFound("--to " + m.version + ": target " + t + " has no release " + Version(*n));
    if (*n == cur.value()) return Status::InvalidArgument("--to " + Version(*n) + " is already the current release of " + t);
    to = *n;
  } else {
    auto good = LastKnownGood(store_, t, cur.value());
    if (!good.ok()) return good.status();
    if (!good.value())
      return Status::NotFound("target " + t + " has no known-good release before " + Version(cur.value()) +
                              " (known-good: reference run done and no critical evaluation); name one with --to vN");
    to = good.value();
  }
  auto events = EventCount(store_, t);
  if (!events.ok()) return events.status();
  RollbackWrites(t, cur.value(), to, by, m.reason.empty() ? m.note : m.reason, false, now, events.value() + 1, &out.writes);
  out.events.push_back("rollback " + t + " " + Version(cur.value()) + " -> " + Version(to) + " by " + by);
  out.reply_json = json{{"target", t}, {"from", Version(cur.value())}, {"to", Version(to)}, {"by", by}}.dump();
  return out;
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::Evaluate(const Command& c) {
  const ReleaseCommandMsg& m = c.m;
  const std::string& t = m.target;
  const std::string& by = c.by;
  const int64_t now = c.now_ms;
  const std::string& next_job_id = c.next_job_id;
  Outcome out;
  // The request's own fields first: a malformed request is refused for what it says, whatever
  // the release's state.
  if (m.data_format != "npy" && m.data_format != "fashion-mnist" && m.data_format != "folder")
    return Status::InvalidArgument("--format '" + m.data_format.substr(0, 32) + "': allowed values are npy, fashion-mnist, folder");
  if (m.data_path.empty() || m.data_path[0] != '/' || m.data_path.size() > 4096 || !IsValidUtf8(m.data_path) ||
      m.data_path.find('\n') != std::string::npos)
    return Status::InvalidArgument("--data: an absolute path (up to 4096 bytes) that the target's workers can read");
  auto cur = Current(store_, t);
  if (!cur.ok()) return cur.status();
  if (!cur.value())
    return Status::NotFound("target '" + t + "' has no release; release one first: prunelab release SWEEP TRIAL --target " + t);
  auto doc = GetJson(store_, RelKey(t, cur.value()));
  if (!doc.ok()) return doc.status();
  if (!doc.value()) return Status::Corruption("release " + Version(cur.value()) + " of " + t + " is missing");
  const json& rel = *doc.value();
  const std::string ref_state = rel["reference"].value("state", "");
  if (ref_state != "ready")
    return Status::InvalidArgument(
        "the reference run (" + rel["reference"].value("evaluation", "") + ") of " + t + " " + Version(cur.value()) + " is " +
        ref_state + (ref_state == "failed" ? ": " + rel["reference"].value("error", "") + "; release it again"
                                           : "; it runs on a worker of target " + t +
                                                 " (start one if none is up) and sets the bins drift is measured with"));
  auto rec = store_.Get(RelTaskKey(t, cur.value()));
  if (!rec.ok()) return rec.status();
  if (!rec.value()) return Status::Corruption("the evaluation template of " + t + " " + Version(cur.value()) + " is missing");
  auto tmpl = DecodeTaskRecord(*rec.value());
  if (!tmpl.ok()) return tmpl.status();
  Task e = tmpl->task;
  // Other files in the model's format: normalized as the model was trained.
  if (e.dataset.name != "npy" && e.dataset.name != "folder" && m.data_format != "fashion-mnist" && e.dataset.mean.empty()) {
    e.dataset.mean = {kFashionMnistMean};
    e.dataset.std = {kFashionMnistStd};
  }
  e.dataset.name = m.data_format;
  e.dataset.path = m.data_path;
  e.dataset.test_subset = m.subset;
  const json bins = rel["reference"].value("bins", json::object());
  out.evaluation = EvaluationTask(e, t, next_job_id, EvaluationConfig{Version(cur.value()), false, m.compare_dense, bins.dump()});
  out.evaluation_name = "evaluate " + t + " " + Version(cur.value()) + " on " + m.data_path;
  json erec{{"id", next_job_id}, {"target", t}, {"release", Version(cur.value())}, {"reference", false}, {"state", "running"},
            {"data", {{"name", m.data_format}, {"path", m.data_path}, {"subset", m.subset}}}, {"compare_dense", m.compare_dense},
            {"started_at_ms", now}, {"by", by}};
  out.writes.push_back({EvalKey(t, next_job_id), erec.dump()});
  out.events.push_back("evaluation " + next_job_id + " of " + t + " " + Version(cur.value()) + " on " + m.data_path + " queued");
  out.reply_json = erec.dump();
  return out;
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::Evaluations(const Command& c) {
  const ReleaseCommandMsg& m = c.m;
  const std::string& t = m.target;
  Outcome out;
  auto evs = ScanJson(store_, t.empty() ? "releval/" : "releval/" + t + "/");
  if (!evs.ok()) return evs.status();
  std::vector<json>& v = evs.value();
  std::sort(v.begin(), v.end(), [](const json& x, const json& y) { return x.value("id", "") > y.value("id", ""); });
  const size_t limit = m.limit ? m.limit : 20;
  if (v.size() > limit) v.resize(limit);
  // A job that failed without a result from the worker (gave up after retries, cancelled).
  for (auto& e : v)
    if (e.value("state", "") == "running") {
      auto r = store_.Get(ResultKey(e.value("id", ""), "eval@" + e.value("target", "")));
      if (r.ok() && r.value()) {
        auto row = DecodeResultRecord(*r.value());
        if (row.ok() && !row->ok) e["state"] = "failed", e["error"] = row->error;
      }
    }
  out.reply_json = json{{"evaluations", v}}.dump();
  return out;
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::Policy(const Command& c) {
  const ReleaseCommandMsg& m = c.m;
  const std::string& t = m.target;
  const std::string& by = c.by;
  Outcome out;
  auto p = PolicyOf(store_, t);
  if (!p.ok()) return p.status();
  if (!m.policy_json.empty()) {
    if (m.policy_json.size() > kMaxPolicyBytes) return Status::InvalidArgument("policy: at most 16 KiB");
    auto j = ParseJson(m.policy_json);
    if (!j.ok()) return Status::InvalidArgument("policy: not valid JSON");
    auto np = ParsePolicy(j.value(), p.value());
    if (!np.ok()) return np.status();
    p = std::move(np);
    out.writes.push_back({PolicyKey(t), PolicyJson(p.value()).dump()});
    out.events.push_back("policy of " + t + " set by " + by + ": " + PolicyJson(p.value()).dump());
  }
  out.reply_json = json{{"target", t}, {"policy", PolicyJson(p.value())}, {"asked_by", by}}.dump();
  return out;
}

StatusOr<ReleaseBook::Outcome> ReleaseBook::OnEvaluationResult(const Task& task, const TrialResult& r) {
  Outcome out;
  const std::string& t = task.target;
  const std::string id = task.sweep_id;
  auto n = ParseVersion(task.evaluation.release);
  if (!n) return Status::InvalidArgument("evaluation " + id + " names no release");
  auto doc_or = GetJson(store_, RelKey(t, *n));
  if (!doc_or.ok()) return doc_or.status();
  if (!doc_or.value()) return Status::NotFound("release " + task.evaluation.release + " of " + t + " is missing");
  json rel = *doc_or.value();
  auto erec_or = GetJson(store_, EvalKey(t, id));
  if (!erec_or.ok()) return erec_or.status();
  json erec = erec_or.value() ? *erec_or.value() : json{{"id", id}, {"target", t}, {"release", task.evaluation.release}};
  const int64_t now = clock_.NowMs();
  erec["finished_at_ms"] = now;
  erec["worker"] = r.worker_id;
  erec["hardware"] = {{"cpu", r.hardware.cpu_model}, {"threads", r.hardware.threads}, {"device", r.hardware.device},
                      {"hostname", r.hardware.hostname}};
  const bool reference = task.evaluation.reference;
  if (!r.ok) {
    erec["state"] = "failed";
    erec["error"] = r.error;
    if (reference) {
      rel["reference"]["state"] = "failed";
      rel["reference"]["error"] = r.error;
      rel["status"] = "reference failed";
      out.writes.push_back({RelKey(t, *n), rel.dump()});
    }
    out.writes.push_back({EvalKey(t, id), erec.dump()});
    out.events.push_back("evaluation " + id + " of " + t + " " + task.evaluation.release + " failed: " + r.error);
    return out;
  }
  auto tj = ParseJson(r.trial_json.empty() ? "{}" : r.trial_json);
  if (!tj.ok() || !tj->contains("evaluation") || !(*tj)["evaluation"].is_object() ||
      !(*tj)["evaluation"].value("features", json::object()).is_object()) {
    // A peer's malformed row: recorded as a failed evaluation with the reason, never left running.
    TrialResult failed = r;
    failed.ok = false;
    failed.error = "the worker's result has no readable evaluation section (worker " + r.worker_id + ")";
    return OnEvaluationResult(task, failed);
  }
  const json ev = (*tj)["evaluation"];
  try {
    Measured m;
    m.labels = ev.value("labels", false);
    m.accuracy = r.accuracy;
    for (double v : r.per_class_accuracy) m.per_class.push_back(v < 0 ? std::nan("") : v);
    m.predicted = ev.value("predicted", std::vector<uint64_t>{});
    json bins = json::object(), counts = json::object();
    for (auto it = ev["features"].begin(); it != ev["features"].end(); ++it) {
      m.features.push_back({it.key(), it.value().value("counts", std::vector<uint64_t>{})});
      bins[it.key()] = it.value().value("edges", std::vector<double>{});
      counts[it.key()] = it.value().value("counts", std::vector<uint64_t>{});
    }
    m.latency_p95_ms = r.latency_p95_ms;
    m.throughput_sps = r.throughput_sps;
    m.model_bytes = static_cast<double>(r.model_bytes);
    m.samples = ev.value("samples", uint64_t{0});
    m.seen = ev.value("seen", std::vector<uint64_t>{});
    m.bench_valid = r.bench_valid;
    const json dense = ev.value("dense", json());
    Reference ref;
    ref.dense_model_bytes = dense.is_object() ? dense.value("model_bytes", 0.0) : 0.0;
    if (ref.dense_model_bytes <= 0) ref.dense_model_bytes = rel["dense"].value("model_bytes", 0.0);
    if (reference) {
      ref.teacher_accuracy = dense.value("accuracy", 0.0);
      ref.teacher_per_class = dense.value("per_class_accuracy", std::vector<double>{});
      ref.samples = m.samples;
      ref.seen = m.seen;
      ref.predicted = m.predicted;
      ref.features = m.features;
      rel["reference"] = {{"state", "ready"}, {"evaluation", id}, {"bins", bins}, {"features", counts},
                          {"predicted", m.predicted}, {"teacher_accuracy", ref.teacher_accuracy},
                          {"teacher_per_class", ref.teacher_per_class}, {"accuracy", m.accuracy},
                          {"per_class_accuracy", r.per_class_accuracy}, {"samples", m.samples}, {"seen", m.seen}};
    } else {
      const json& rr = rel["reference"];
      if (dense.is_object()) {  // A/B: the teacher on the same samples
        ref.teacher_accuracy = dense.value("accuracy", 0.0);
        ref.teacher_per_class = dense.value("per_class_accuracy", std::vector<double>{});
        ref.samples = m.samples;
        ref.seen = m.seen;
      } else {
        ref.teacher_accuracy = rr.value("teacher_accuracy", 0.0);
        ref.teacher_per_class = rr.value("teacher_per_class", std::vector<double>{});
        ref.samples = rr.value("samples", uint64_t{0});
        ref.seen = rr.value("seen", std::vector<uint64_t>{});
      }
      ref.predicted = rr.value("predicted", std::vector<uint64_t>{});
      for (auto it = rr["features"].begin(); it != rr["features"].end(); ++it)
        ref.features.push_back({it.key(), it.value().get<std::vector<uint64_t>>()});
    }
    auto policy_or = PolicyOf(store_, t);
    if (!policy_or.ok()) return policy_or.status();
    TargetPolicy policy = policy_or.value();
    const double budget = rel.value("latency_budget_p95_ms", 0.0);
    if (policy.latency_p95_ms.off() && budget > 0) policy.latency_p95_ms = Band{budget, 1.2 * budget};
    json assessment = Assess(m, ref, policy, rel["row"].value("class_names", std::vector<std::string>{}));
    const std::string level = assessment["level"];
    erec["state"] = "done";
    erec["level"] = level;
    erec["assessment"] = assessment;
    erec["measured"] = {{"accuracy", m.accuracy}, {"per_class_accuracy", r.per_class_accuracy},
                        {"latency_p95_ms", m.latency_p95_ms}, {"throughput_sps", m.throughput_sps},
                        {"model_bytes", r.model_bytes}, {"peak_rss_bytes", r.peak_rss_bytes},
                        {"predicted", m.predicted}, {"samples", m.samples}, {"labels", m.labels}};
    if (dense.is_object()) erec["dense"] = dense;
    erec["compared_with"] = dense.is_object() ? "the dense teacher on the same data (A/B)"
                                              : "the dense teacher on the release's reference data";
    rel["status"] = level;
    rel["last_evaluation"] = id;
    erec["action"] = "none";
    std::string line = "evaluation " + id + " of " + t + " " + task.evaluation.release + (reference ? " (reference run)" : "") +
                       ": " + level + " — " + assessment["why"].get<std::string>();
    out.events.push_back(line);
    if (level == "critical" && !reference) {
      const std::string& action = policy.on_critical;
      erec["policy"] = action;
      auto cur = Current(store_, t);
      if (!cur.ok()) return cur.status();
      if (action == "notify") {
        erec["action"] = "notified (log and metric)";
      } else if (action == "rollback") {
        if (cur.value() != *n) {
          erec["action"] = "no rollback: " + task.evaluation.release + " is no longer the current release";
        } else {
          // The release evaluated is critical now: it is not a candidate (rel is written below).
          auto good = LastKnownGood(store_, t, *n);
          if (!good.ok()) return good.status();
          if (!good.value()) {
            erec["action"] = "rollback impossible: no known-good release before " + task.evaluation.release;
          } else {
            auto events = EventCount(store_, t);
            if (!events.ok()) return events.status();
            RollbackWrites(t, *n, good.value(), "policy", "evaluation " + id + " critical: " + assessment["why"].get<std::string>(),
                           true, now, events.value() + 1, &out.writes);
            erec["action"] = "rolled back to " + Version(good.value());
          }
        }
      } else if (action == "resweep") {
        auto yaml = ReadSpecYaml(store_, rel.value("sweep", ""));
        const json data = erec.value("data", json::object());
        auto moved = yaml.ok() ? WithDataset(yaml.value(), data.value("name", ""), data.value("path", ""))
                               : StatusOr<std::string>(yaml.status());
        if (!moved.ok()) {
          erec["action"] = "resweep impossible: " + moved.status().message();
        } else {
          out.resweep_yaml = moved.value();
          out.resweep_model_artifact = rel.value("model_artifact", "");
          erec["action"] = "resweep of " + rel.value("sweep", "") + " with " + data.value("path", "") + " as its dataset";
        }
      }
      out.events.push_back("policy " + action + " on " + t + ": " + erec["action"].get<std::string>());
    }
    out.writes.push_back({RelKey(t, *n), rel.dump()});
    out.writes.push_back({EvalKey(t, id), erec.dump()});
  } catch (const json::exception& e) {
    return Status::InvalidArgument("evaluation " + id + ": malformed evaluation section (" + e.what() + ")");
  }
  return out;
}

std::string ReleaseBook::MetricsText(Store& store) {
  auto rels = ScanJson(store, "rel/");
  if (!rels.ok()) return "# releases unreadable: " + rels.status().ToString() + "\n";
  std::map<std::string, uint64_t> current;
  (void)store.Scan("relcur/", [&](const std::string& k, const std::string& v) {
    if (auto n = ParseVersion(v)) current[k.substr(7)] = *n;
  });
  std::map<std::string, uint64_t> rollbacks;
  (void)store.Scan("relev/", [&](const std::string& k, const std::string& v) {
    auto j = ParseJson(v);
    const std::string t = k.substr(6, k.rfind('/') - 6);
    rollbacks[t] += j.ok() && j->value("action", "") == "rollback";
  });
  std::map<std::string, std::string> sections;
  auto add = [&](const std::string& name, const std::string& labels, double v) {
    sections[name] += name + "{" + labels + "} " + Num(v, 9) + "\n";
  };
  for (const auto& [t, n] : current) add("prunelab_release_current_version", "target=\"" + PrometheusLabelValue(t) + "\"", static_cast<double>(n));
  for (const auto& [t, c] : rollbacks) add("prunelab_release_rollbacks_total", "target=\"" + PrometheusLabelValue(t) + "\"", static_cast<double>(c));
  for (const auto& rel : rels.value()) {
    const std::string t = rel.value("target", ""), v = rel.value("version", "");
    const bool is_current = current.count(t) && current[t] == rel.value("number", uint64_t{0});
    const std::string labels = "target=\"" + PrometheusLabelValue(t) + "\",release=\"" + PrometheusLabelValue(v) + "\",current=\"" +
                               (is_current ? "true" : "false") + "\"";
    const std::string last = rel.value("last_evaluation", "");
    if (last.empty()) continue;
    auto e = GetJson(store, EvalKey(t, last));
    if (!e.ok() || !e.value() || !(*e.value()).contains("assessment")) continue;
    const json& a = (*e.value())["assessment"];
    const std::string level = a.value("level", "ok");
    add("prunelab_evaluation_level", labels, level == "critical" ? 2 : level == "warning" ? 1 : 0);
    add("prunelab_evaluation_finished_timestamp_seconds", labels, (*e.value()).value("finished_at_ms", 0.0) / 1000);
    for (const auto& row : a["metrics"]) {
      const std::string metric = row.value("metric", "");
      const double val = row.value("value", 0.0);
      if (metric == "accuracy_drop") add("prunelab_evaluation_accuracy", labels, row.value("accuracy", 0.0));
      if (metric == "accuracy_drop") add("prunelab_evaluation_accuracy_drop_points", labels, val);
      if (metric == "worst_class_drop")
        add("prunelab_evaluation_worst_class_drop_points", labels + ",class=\"" + PrometheusLabelValue(row.value("name", "")) + "\"", val);
      if (metric == "psi_input") add("prunelab_evaluation_psi", labels + ",kind=\"input\"", val);
      if (metric == "psi_predicted") add("prunelab_evaluation_psi", labels + ",kind=\"predicted\"", val);
      if (metric == "latency_p95_ms") add("prunelab_evaluation_latency_p95_seconds", labels, val / 1000);
      if (metric == "throughput_sps") add("prunelab_evaluation_throughput_sps", labels, val);
      if (metric == "memory") add("prunelab_evaluation_memory_ratio", labels, val);
    }
  }
  static const std::map<std::string, std::pair<const char*, const char*>> kHelp = {
      {"prunelab_release_current_version", {"gauge", "Number of the target's current release (vN)."}},
      {"prunelab_release_rollbacks_total", {"counter", "Rollbacks recorded for the target (by hand and by policy)."}},
      {"prunelab_evaluation_level", {"gauge", "Latest evaluation of the release: 0 ok, 1 warning, 2 critical."}},
      {"prunelab_evaluation_finished_timestamp_seconds", {"gauge", "When the release's latest evaluation finished (Unix seconds)."}},
      {"prunelab_evaluation_accuracy", {"gauge", "Top-1 accuracy of the release on its latest evaluation's data (fraction)."}},
      {"prunelab_evaluation_accuracy_drop_points", {"gauge", "Accuracy points below the dense teacher on the latest evaluation."}},
      {"prunelab_evaluation_worst_class_drop_points", {"gauge", "The worst class's accuracy points below the teacher's."}},
      {"prunelab_evaluation_psi", {"gauge", "Population stability index against the release's reference (input features: the largest)."}},
      {"prunelab_evaluation_latency_p95_seconds", {"gauge", "Single-stream p95 latency of the release on its target, in seconds."}},
      {"prunelab_evaluation_throughput_sps", {"gauge", "Offline throughput of the release on its target, samples per second."}},
      {"prunelab_evaluation_memory_ratio", {"gauge", "The release's model bytes over the dense model's."}},
  };
  std::string text;
  for (const auto& [name, body] : sections) {
    auto h = kHelp.find(name);
    if (h != kHelp.end()) text += "# HELP " + name + " " + h->second.second + "\n# TYPE " + name + " " + h->second.first + "\n";
    text += body;
  }
  return text;
}

StatusOr<std::string> ReleaseBook::HistoryJson(Store& store) {
  auto rels = ScanJson(store, "rel/");
  if (!rels.ok()) return rels.status();
  std::map<std::string, json> targets;
  auto entry = [&](const std::string& t) -> json& {
    json& x = targets[t];
    if (x.is_null()) x = json{{"target", t}, {"current", ""}, {"releases", json::array()}, {"events", json::array()},
                              {"evaluations", json::array()}};
    return x;
  };
  std::map<std::string, uint64_t> current;
  PRUNELAB_RETURN_IF_ERROR(store.Scan("relcur/", [&](const std::string& k, const std::string& v) {
    if (auto n = ParseVersion(v)) current[k.substr(7)] = *n;
  }));
  for (const auto& r : rels.value()) {
    const std::string t = r.value("target", "");
    entry(t)["releases"].push_back(ReleaseSummary(r, current[t]));
    entry(t)["current"] = current[t] ? Version(current[t]) : "";
  }
  auto events = ScanJson(store, "relev/");
  if (!events.ok()) return events.status();
  for (const auto& e : events.value()) entry(e.value("target", ""))["events"].push_back(e);
  auto evals = ScanJson(store, "releval/");
  if (!evals.ok()) return evals.status();
  for (auto it = evals->rbegin(); it != evals->rend(); ++it) {
    json& list = entry(it->value("target", ""))["evaluations"];
    if (list.size() >= 10) continue;
    json s{{"id", it->value("id", "")}, {"release", it->value("release", "")}, {"reference", it->value("reference", false)},
           {"state", it->value("state", "")}, {"level", it->value("level", "")}, {"data", it->value("data", json::object())},
           {"action", it->value("action", "")}, {"finished_at_ms", it->value("finished_at_ms", int64_t{0})}};
    if (it->contains("assessment")) {
      s["why"] = (*it)["assessment"].value("why", "");
      s["worst_slice"] = (*it)["assessment"].value("worst_slice", json());
    }
    list.push_back(s);
  }
  json out{{"targets", json::array()}};
  for (auto& [t, x] : targets) out["targets"].push_back(x);
  return out.dump();
}

}  // namespace prunelab::coordinator
