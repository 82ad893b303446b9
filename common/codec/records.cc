#include "common/codec/records.h"

#include <algorithm>
#include <type_traits>
#include <variant>

#include "common/base/result_metrics.h"
#include "common/base/stats.h"

namespace prunelab {

using nlohmann::json;

json ToJson(const HardwareFingerprint& h) {
  return json{{"hostname", h.hostname},   {"cpu_model", h.cpu_model}, {"isa_flags", h.isa_flags},
              {"cores", h.cores},         {"memory_bytes", h.memory_bytes}, {"threads", h.threads},
              {"torch_version", h.torch_version}, {"blas", h.blas}, {"gpu", h.gpu}, {"device", h.device}};
}

static HardwareFingerprint HardwareFromJson(const json& j) {
  HardwareFingerprint h;
  h.hostname = j.value("hostname", "");
  h.cpu_model = j.value("cpu_model", "");
  h.isa_flags = j.value("isa_flags", "");
  h.cores = j.value("cores", 0u);
  h.memory_bytes = j.value("memory_bytes", uint64_t{0});
  h.threads = j.value("threads", 0u);
  h.torch_version = j.value("torch_version", "");
  h.blas = j.value("blas", "");
  h.gpu = j.value("gpu", "");
  h.device = j.value("device", "cpu");
  return h;
}

static TaskKind KindFromName(const std::string& n) {
  if (n == "train_baseline") return TaskKind::kTrainBaseline;
  if (n == "evaluate_baseline") return TaskKind::kEvaluateBaseline;
  if (n == "benchmark_variant") return TaskKind::kBenchmarkVariant;
  if (n == "evaluate_release") return TaskKind::kEvaluateRelease;
  if (n == "confirm_target") return TaskKind::kConfirmTarget;
  return TaskKind::kPruneTrial;
}

static json CandidatesJson(const std::vector<ConfirmCandidate>& cs) {
  json out = json::array();
  for (const auto& c : cs) out.push_back({{"task", c.task_id}, {"artifact", c.artifact}, {"form", c.form}});
  return out;
}

json ToJson(const Task& t) {
  return json{{"sweep", t.sweep_id},
              {"task", t.task_id},
              {"attempt", t.attempt},
              {"kind", TaskKindName(t.kind)},
              {"target", t.target},
              {"model", t.model},
              {"dataset", {{"name", t.dataset.name}, {"path", t.dataset.path},
                           {"train_subset", t.dataset.train_subset}, {"test_subset", t.dataset.test_subset},
                           {"mean", t.dataset.mean}, {"std", t.dataset.std}, {"classes", t.dataset.class_names},
                           {"task", t.dataset.task}, {"sequence_length", t.dataset.sequence_length},
                           {"vocab_size", t.dataset.vocab_size}, {"tokenizer", t.dataset.tokenizer}}},
              {"training", {{"epochs", t.training.epochs}, {"batch_size", t.training.batch_size},
                            {"learning_rate", t.training.learning_rate}, {"momentum", t.training.momentum},
                            {"weight_decay", t.training.weight_decay}, {"seed", t.training.seed},
                            {"precision", t.training.precision}, {"optimizer", t.training.optimizer}}},
              {"trial", ToJson(t.trial)},
              {"benchmark", {{"warmup_queries", t.benchmark.warmup_queries},
                             {"min_queries", t.benchmark.min_queries},
                             {"min_duration_s", t.benchmark.min_duration_s},
                             {"offline_batch_size", t.benchmark.offline_batch_size},
                             {"offline_min_duration_s", t.benchmark.offline_min_duration_s},
                             {"profile", t.benchmark.profile},
                             {"scenarios", t.benchmark.scenarios},
                             {"max_duration_s", t.benchmark.max_duration_s},
                             {"offline_min_samples", t.benchmark.offline_min_samples},
                             {"multi_stream_samples", t.benchmark.multi_stream_samples},
                             {"server_latency_bound_ms", t.benchmark.server_latency_bound_ms},
                             {"server_target_qps", t.benchmark.server_target_qps},
                             {"ab_rounds", t.benchmark.ab_rounds},
                             {"sparse_forms", t.benchmark.sparse_forms},
                             {"threads", t.benchmark.threads},
                             {"confirm_rounds", t.benchmark.confirm_rounds},
                             {"confirm_candidates", t.benchmark.confirm_candidates}}},
              {"baseline_key", t.baseline_key},
              {"baseline_artifact", t.baseline_artifact},
              {"model_artifact", t.model_artifact},
              {"input_shape", t.input_shape},
              {"spec_hash", t.spec_hash},
              {"variant_artifact", t.variant_artifact},
              {"depends_on", t.depends_on},
              {"candidates", CandidatesJson(t.candidates)}};
}

json ToJson(const TrialConfig& c) {
  json overrides = json::object();
  for (const auto& o : c.overrides) overrides[o.name] = o.value;
  json j{{"criterion", c.criterion}, {"granularity", c.granularity}, {"schedule", c.schedule},
              {"sparsity", c.sparsity}, {"finetune_epochs", c.finetune_epochs},
              {"finetune_learning_rate", c.finetune_learning_rate}, {"scope", c.scope},
              {"min_keep", c.min_keep}, {"exclude", c.exclude}, {"overrides", overrides},
              {"round_to", c.round_to}, {"rounds", c.rounds}, {"curve", c.curve}, {"rewind", c.rewind},
              {"layer", c.layer}, {"calibration_batches", c.calibration_batches}};
  // Only when on: a row without these keys was fine-tuned on the labels alone.
  if (c.distill_temperature > 0) {
    j["distill_temperature"] = c.distill_temperature;
    j["distill_alpha"] = c.distill_alpha;
  }
  if (c.quantize != "none" && !c.quantize.empty()) j["quantize"] = c.quantize;  // likewise only when on
  return j;
}

TrialConfig TrialConfigFromJson(const json& tc) {
  TrialConfig c;
  c.criterion = tc.value("criterion", "");
  c.granularity = tc.value("granularity", "");
  c.schedule = tc.value("schedule", "");
  c.sparsity = tc.value("sparsity", 0.0);
  c.finetune_epochs = tc.value("finetune_epochs", 1.0);
  c.finetune_learning_rate = tc.value("finetune_learning_rate", 0.01);
  c.scope = tc.value("scope", c.scope);
  c.min_keep = tc.value("min_keep", c.min_keep);
  c.exclude = tc.value("exclude", std::vector<std::string>{});
  if (tc.contains("overrides") && tc["overrides"].is_object())
    for (const auto& [k, v] : tc["overrides"].items()) c.overrides.push_back({k, v.get<double>()});
  c.round_to = tc.value("round_to", 1u);
  c.rounds = tc.value("rounds", 1u);
  c.curve = tc.value("curve", c.curve);
  c.rewind = tc.value("rewind", -1.0);
  c.layer = tc.value("layer", "");
  c.calibration_batches = tc.value("calibration_batches", c.calibration_batches);
  c.distill_temperature = tc.value("distill_temperature", 0.0);
  c.distill_alpha = tc.value("distill_alpha", 0.5);
  c.quantize = tc.value("quantize", "none");
  return c;
}

StatusOr<Task> TaskFromJson(const json& j) {
  try {
    Task t;
    t.sweep_id = j.at("sweep").get<std::string>();
    t.task_id = j.at("task").get<std::string>();
    t.attempt = j.value("attempt", 0u);
    t.kind = KindFromName(j.at("kind").get<std::string>());
    t.target = j.value("target", "");
    t.model = j.value("model", "");
    const json& d = j.at("dataset");
    t.dataset.name = d.value("name", "");
    t.dataset.path = d.value("path", "");
    t.dataset.train_subset = d.value("train_subset", 0u);
    t.dataset.test_subset = d.value("test_subset", 0u);
    t.dataset.mean = d.value("mean", std::vector<double>{});
    t.dataset.std = d.value("std", std::vector<double>{});
    t.dataset.class_names = d.value("classes", std::vector<std::string>{});
    t.dataset.task = d.value("task", "image_classification");
    t.dataset.sequence_length = d.value("sequence_length", 0u);
    t.dataset.vocab_size = d.value("vocab_size", 0u);
    t.dataset.tokenizer = d.value("tokenizer", "");
    const json& tr = j.at("training");
    t.training.epochs = tr.value("epochs", 1u);
    t.training.batch_size = tr.value("batch_size", 64u);
    t.training.learning_rate = tr.value("learning_rate", 0.05);
    t.training.momentum = tr.value("momentum", 0.9);
    t.training.weight_decay = tr.value("weight_decay", 0.0);
    t.training.precision = tr.value("precision", std::string("fp32"));
    t.training.optimizer = tr.value("optimizer", "sgd");
    t.training.seed = tr.value("seed", uint64_t{42});
    t.trial = TrialConfigFromJson(j.at("trial"));
    const json& b = j.at("benchmark");
    t.benchmark.warmup_queries = b.value("warmup_queries", 50u);
    t.benchmark.min_queries = b.value("min_queries", 500u);
    t.benchmark.min_duration_s = b.value("min_duration_s", 1.0);
    t.benchmark.offline_batch_size = b.value("offline_batch_size", 256u);
    t.benchmark.offline_min_duration_s = b.value("offline_min_duration_s", 1.0);
    BenchmarkConfig defaults;
    t.benchmark.profile = b.value("profile", defaults.profile);
    t.benchmark.scenarios = b.value("scenarios", defaults.scenarios);
    t.benchmark.max_duration_s = b.value("max_duration_s", defaults.max_duration_s);
    t.benchmark.offline_min_samples = b.value("offline_min_samples", defaults.offline_min_samples);
    t.benchmark.multi_stream_samples = b.value("multi_stream_samples", defaults.multi_stream_samples);
    t.benchmark.server_latency_bound_ms = b.value("server_latency_bound_ms", defaults.server_latency_bound_ms);
    t.benchmark.server_target_qps = b.value("server_target_qps", defaults.server_target_qps);
    t.benchmark.ab_rounds = b.value("ab_rounds", defaults.ab_rounds);
    t.benchmark.sparse_forms = b.value("sparse_forms", defaults.sparse_forms);
    // Records written before these existed: timed with the worker's own threads, no round.
    t.benchmark.threads = b.value("threads", 0u);
    t.benchmark.confirm_rounds = b.value("confirm_rounds", 0u);
    t.benchmark.confirm_candidates = b.value("confirm_candidates", defaults.confirm_candidates);
    t.baseline_key = j.value("baseline_key", "");
    t.baseline_artifact = j.value("baseline_artifact", "");
    t.model_artifact = j.value("model_artifact", "");
    t.input_shape = j.value("input_shape", std::vector<int64_t>{});
    t.spec_hash = j.value("spec_hash", "");
    t.variant_artifact = j.value("variant_artifact", "");
    t.depends_on = j.value("depends_on", "");
    if (j.contains("candidates"))
      for (const auto& c : j["candidates"])
        t.candidates.push_back({c.value("task", ""), c.value("artifact", ""), c.value("form", "dense")});
    return t;
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("task record: ") + e.what());
  }
}

// The detail is stored as JSON text; shown as an object (or as text if it is not JSON).
static json BenchmarkDetail(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json(text) : j;
}

static json LayersJson(const std::vector<LayerStat>& layers) {
  json out = json::array();
  for (const auto& l : layers) {
    double sparsity = l.dense ? 1.0 - static_cast<double>(l.nonzero) / static_cast<double>(l.dense) : 0.0;
    out.push_back({{"name", l.name}, {"dense", l.dense}, {"total", l.total}, {"nonzero", l.nonzero},
                   {"sparsity", sparsity}});
  }
  return out;
}

json ToJson(const TrialResult& r) {
  json j{{"sweep", r.sweep_id},
              {"trial", r.task_id},
              {"attempt", r.attempt},
              {"worker", r.worker_id},
              {"pruned_by", r.pruned_by},
              {"class_names", r.class_names},
              {"preprocessing", r.preprocessing},
              {"target", r.target},
              {"kind", TaskKindName(r.kind)},
              {"model", r.model},
              {"criterion", r.criterion},
              {"granularity", r.granularity},
              {"schedule", r.schedule},
              {"sparsity", r.sparsity},
              {"baseline", r.baseline},
              {"status", r.ok ? "ok" : "failed"},
              {"error", r.error},
              {"per_class_accuracy", r.per_class_accuracy},
              {"baseline_accuracy", r.baseline_accuracy},
              {"metric", r.metric},
              {"baseline_perplexity", r.baseline_perplexity},
              {"worst_class", r.worst_class},
              {"queries", r.queries},
              {"bench_duration_s", r.bench_duration_s},
              {"train_seconds", r.train_seconds},
              {"eval_seconds", r.eval_seconds},
              {"seed", r.seed},
              {"hardware", ToJson(r.hardware)},
              {"artifact_hash", r.artifact_hash},
              {"finished_at_ms", r.finished_at_ms},
              {"bench_valid", r.bench_valid},
              {"speedup_min", r.speedup_min},
              {"speedup_max", r.speedup_max},
              {"deployable_form", r.deployable_form},
              {"benchmark", BenchmarkDetail(r.benchmark_json)},
              {"layers", LayersJson(r.layers)},
              {"params_before", r.params_before},
              {"model_bytes_before", r.model_bytes_before},
              {"round", r.round},
              {"rounds", r.rounds},
              {"layer", r.layer},
              {"config", BenchmarkDetail(r.trial_json)}};
  for (const auto& m : ResultMetrics()) std::visit([&](auto f) { j[m.name] = r.*f; }, m.field);
  return j;
}

StatusOr<TrialResult> ResultFromJson(const json& j) {
  try {
    TrialResult r;
    for (const auto& m : ResultMetrics())
      std::visit([&](auto f) { r.*f = j.value(m.name, std::remove_reference_t<decltype(r.*f)>{0}); }, m.field);
    r.sweep_id = j.at("sweep").get<std::string>();
    r.task_id = j.at("trial").get<std::string>();
    r.attempt = j.value("attempt", 0u);
    r.worker_id = j.value("worker", "");
    r.pruned_by = j.value("pruned_by", "");
    r.class_names = j.value("class_names", std::vector<std::string>{});
    r.preprocessing = j.value("preprocessing", "");
    r.target = j.value("target", "");
    r.kind = KindFromName(j.value("kind", "prune_trial"));
    r.model = j.value("model", "");
    r.criterion = j.value("criterion", "");
    r.granularity = j.value("granularity", "");
    r.schedule = j.value("schedule", "");
    r.sparsity = j.value("sparsity", 0.0);
    r.baseline = j.value("baseline", false);
    r.ok = j.value("status", "failed") == "ok";
    r.error = j.value("error", "");
    r.per_class_accuracy = j.value("per_class_accuracy", std::vector<double>{});
    r.baseline_accuracy = j.value("baseline_accuracy", 0.0);
    r.metric = j.value("metric", "");
    r.baseline_perplexity = j.value("baseline_perplexity", 0.0);
    r.worst_class = j.value("worst_class", -1);
    r.queries = j.value("queries", uint64_t{0});
    r.bench_duration_s = j.value("bench_duration_s", 0.0);
    r.train_seconds = j.value("train_seconds", 0.0);
    r.eval_seconds = j.value("eval_seconds", 0.0);
    r.seed = j.value("seed", uint64_t{0});
    if (j.contains("hardware")) r.hardware = HardwareFromJson(j.at("hardware"));
    r.artifact_hash = j.value("artifact_hash", "");
    r.finished_at_ms = j.value("finished_at_ms", int64_t{0});
    r.bench_valid = j.value("bench_valid", false);
    r.speedup_min = j.value("speedup_min", 0.0);
    r.speedup_max = j.value("speedup_max", 0.0);
    r.deployable_form = j.value("deployable_form", "");
    if (j.contains("layers") && j["layers"].is_array())
      for (const auto& l : j["layers"])
        r.layers.push_back({l.value("name", ""), l.value("dense", uint64_t{0}), l.value("total", uint64_t{0}),
                            l.value("nonzero", uint64_t{0})});
    r.params_before = j.value("params_before", uint64_t{0});
    r.model_bytes_before = j.value("model_bytes_before", uint64_t{0});
    r.round = j.value("round", 0u);
    r.rounds = j.value("rounds", 0u);
    r.layer = j.value("layer", "");
    if (j.contains("config") && j["config"].is_object()) r.trial_json = j["config"].dump();
    if (j.contains("benchmark") && j["benchmark"].is_object()) r.benchmark_json = j["benchmark"].dump();
    else if (j.contains("benchmark") && j["benchmark"].is_string()) r.benchmark_json = j["benchmark"].get<std::string>();
    return r;
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("result record: ") + e.what());
  }
}

json ToJson(const SweepStatus& s) {
  return json{{"id", s.id},           {"name", s.name},       {"state", s.state},
              {"trials", s.trials},   {"done", s.done},       {"failed", s.failed},
              {"running", s.running}, {"pending", s.pending}, {"created_at_ms", s.created_at_ms},
              {"note", s.note}};
}

json ToJson(const WorkerStatus& w) {
  return json{{"worker", w.worker_id}, {"target", w.target},   {"alive", w.alive},
              {"last_seen_ms_ago", w.last_seen_ms_ago},       {"task", w.task_id},
              {"phase", w.phase},      {"progress", w.progress}, {"hardware", ToJson(w.hardware)}};
}

TrialResult MergeStageAndBenchmark(const TrialResult& stage, const TrialResult& bench) {
  TrialResult m = stage;
  m.task_id = bench.task_id;
  m.target = bench.target;
  m.attempt = bench.attempt;
  m.pruned_by = stage.worker_id;
  m.worker_id = bench.worker_id;
  m.hardware = bench.hardware;
  m.kind = TaskKind::kPruneTrial;
  m.intermediates.clear();
  m.ok = stage.ok && bench.ok;
  if (!bench.ok) m.error = "benchmark on target '" + bench.target + "' failed: " + bench.error;
  for (double TrialResult::*f : kSingleStreamLatencyFields) m.*f = bench.*f;
  for (double TrialResult::*f : {&TrialResult::multistream_p99_ms, &TrialResult::server_max_qps,
                                 &TrialResult::server_p99_ms, &TrialResult::speedup_p90, &TrialResult::speedup_min,
                                 &TrialResult::speedup_max, &TrialResult::bench_duration_s,
                                 &TrialResult::throughput_sps})
    m.*f = bench.*f;
  m.bench_valid = bench.bench_valid;
  m.peak_rss_bytes = bench.peak_rss_bytes;
  m.deployable_form = bench.deployable_form;
  m.benchmark_json = bench.benchmark_json;
  m.queries = bench.queries;
  return m;
}

TrialResult ResultFor(const Task& t) {
  TrialResult r;
  r.sweep_id = t.sweep_id;
  r.task_id = t.task_id;
  r.attempt = t.attempt;
  r.target = t.target;
  // A variant's benchmark on a target completes the variant's row for that target.
  const bool trial = t.kind == TaskKind::kPruneTrial || t.kind == TaskKind::kBenchmarkVariant;
  r.kind = trial ? TaskKind::kPruneTrial : t.kind;
  r.model = t.model;
  r.criterion = t.trial.criterion;
  r.granularity = t.trial.granularity;
  r.schedule = t.trial.schedule;
  r.sparsity = trial ? t.trial.sparsity : 0.0;
  r.baseline = t.kind == TaskKind::kEvaluateBaseline;
  r.seed = t.training.seed;
  r.layer = t.trial.layer;
  if (trial) {
    r.rounds = t.trial.schedule == "iterative" ? t.trial.rounds : 1;
    json c = ToJson(t.trial);
    c["spec_hash"] = t.spec_hash;
    c["input_shape"] = t.input_shape;
    c["model_artifact"] = t.model_artifact;
    if (t.dataset.task == "causal_lm")  // what the card says the model takes
      c["language_model"] = {{"sequence_length", t.dataset.sequence_length}, {"vocab_size", t.dataset.vocab_size},
                             {"data", t.dataset.name}, {"path", t.dataset.path}, {"tokenizer", t.dataset.tokenizer}};
    c["training"] = {{"epochs", t.training.epochs}, {"batch_size", t.training.batch_size},
                     {"learning_rate", t.training.learning_rate}, {"seed", t.training.seed},
                     {"precision", t.training.precision}};
    r.trial_json = c.dump();
  }
  return r;
}

const ConfirmedModel* ConfirmationRound::Find(const std::string& task_id) const {
  for (const auto& m : models)
    if (m.task_id == task_id) return &m;
  return nullptr;
}

void SummarizeConfirmation(ConfirmationRound* round) {
  if (round->models.empty()) return;
  const std::vector<double>& base = round->models.front().p90_ms;
  for (auto& m : round->models) {
    m.ratio.clear();
    for (size_t i = 0; i < m.p90_ms.size() && i < base.size(); ++i)
      if (base[i] > 0) m.ratio.push_back(m.p90_ms[i] / base[i]);
    m.median_p90_ms = m.p90_ms.empty() ? 0 : Median(m.p90_ms);
    m.median_ratio = m.ratio.empty() ? 0 : Median(m.ratio);
    m.min_ratio = m.ratio.empty() ? 0 : *std::min_element(m.ratio.begin(), m.ratio.end());
    m.max_ratio = m.ratio.empty() ? 0 : *std::max_element(m.ratio.begin(), m.ratio.end());
  }
}

json ToJson(const ConfirmationRound& round) {
  json models = json::array();
  for (const auto& m : round.models)
    models.push_back({{"trial", m.task_id}, {"form", m.form}, {"p90_ms", m.p90_ms}, {"ratio", m.ratio},
                      {"median_p90_ms", m.median_p90_ms}, {"median_ratio", m.median_ratio},
                      {"min_ratio", m.min_ratio}, {"max_ratio", m.max_ratio}});
  json j{{"rounds", round.rounds}, {"threads", round.threads}, {"verdict", round.verdict},
         {"invalid_reasons", round.invalid_reasons}, {"models", models},
         {"note", "single-stream p90 per round, models in rotating order; ratio = p90 / the baseline's p90 in the "
                  "same round (< 1 is faster)"}};
  if (!round.skipped.empty()) j["skipped"] = round.skipped;
  return j;
}

StatusOr<ConfirmationRound> ConfirmationFromJson(const std::string& benchmark_json) {
  auto j = ParseJson(benchmark_json.empty() ? "{}" : benchmark_json);
  if (!j.ok()) return j.status();
  if (!j->is_object() || !j->contains("confirmation") || !(*j)["confirmation"].is_object())
    return Status::NotFound("no confirmation round in this row");
  try {
    const json& c = (*j)["confirmation"];
    ConfirmationRound round;
    round.rounds = c.value("rounds", 0u);
    round.threads = c.value("threads", 0u);
    round.skipped = c.value("skipped", "");
    round.verdict = c.value("verdict", "clean");
    round.invalid_reasons = c.value("invalid_reasons", std::vector<std::string>{});
    for (const auto& m : c.value("models", json::array())) {
      ConfirmedModel cm;
      cm.task_id = m.value("trial", "");
      cm.form = m.value("form", "");
      cm.p90_ms = m.value("p90_ms", std::vector<double>{});
      round.models.push_back(std::move(cm));
    }
    SummarizeConfirmation(&round);  // recomputed, not trusted from the text
    return round;
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("confirmation round: ") + e.what());
  }
}

StatusOr<json> ParseJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption("not valid JSON");
  return j;
}

std::string DumpJson(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace prunelab
