#include "coordinator/release/assess.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <fmt/printf.h>

#include "common/base/drift.h"

namespace prunelab::coordinator {

using nlohmann::json;

const char* LevelName(Level level) {
  switch (level) {
    case Level::kOk: return "ok";
    case Level::kWarning: return "warning";
    case Level::kCritical: return "critical";
  }
  return "unknown";
}

Level Band::Of(double v) const {
  if (off()) return Level::kOk;
  if (higher_is_worse) return v > critical ? Level::kCritical : v >= warn ? Level::kWarning : Level::kOk;
  return v < critical ? Level::kCritical : v < warn ? Level::kWarning : Level::kOk;
}

namespace {

struct BandField {
  const char* name;
  Band TargetPolicy::*band;
  const char* unit;
};
const BandField kBands[] = {
    {"accuracy_drop", &TargetPolicy::accuracy_drop, "points"},
    {"class_drop", &TargetPolicy::class_drop, "points"},
    {"psi", &TargetPolicy::psi, ""},
    {"memory", &TargetPolicy::memory, "fraction of dense"},
    {"throughput_sps", &TargetPolicy::throughput, "samples/s"},
    {"latency_p95_ms", &TargetPolicy::latency_p95_ms, "ms"},
};

std::string Num(double v) {
  return fmt::sprintf("%.4g", v);
}

}  // namespace

StatusOr<TargetPolicy> ParsePolicy(const json& j, TargetPolicy p) {
  if (!j.is_object()) return Status::InvalidArgument("policy: expected an object of thresholds");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "on_critical") {
      if (!v.is_string() || (v != "notify" && v != "rollback" && v != "resweep"))
        return Status::InvalidArgument("policy.on_critical: allowed values are notify, rollback, resweep");
      p.on_critical = v.get<std::string>();
      continue;
    }
    if (k == "gate_max_accuracy_drop" || k == "gate_max_memory_fraction") {
      if (!v.is_number() || !std::isfinite(v.get<double>()))
        return Status::InvalidArgument("policy." + k + ": a number (< 0: use the sweep's gate)");
      (k == "gate_max_accuracy_drop" ? p.gate_max_accuracy_drop : p.gate_max_memory_fraction) = v.get<double>();
      continue;
    }
    const BandField* f = nullptr;
    for (const auto& b : kBands)
      if (k == b.name) f = &b;
    if (!f)
      return Status::InvalidArgument("policy: unknown field '" + k.substr(0, 64) +
                                     "' (allowed: on_critical, accuracy_drop, class_drop, psi, memory, throughput_sps, "
                                     "latency_p95_ms, gate_max_accuracy_drop, gate_max_memory_fraction)");
    Band& band = p.*(f->band);
    if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
      return Status::InvalidArgument(std::string("policy.") + f->name + ": [warning, critical] in " + f->unit +
                                     " (two numbers; [0, 0] turns it off)");
    const double w = v[0].get<double>(), c = v[1].get<double>();
    if (!std::isfinite(w) || !std::isfinite(c) || w < 0 || c < 0)
      return Status::InvalidArgument(std::string("policy.") + f->name + ": thresholds must be finite and >= 0");
    if (!(w == 0 && c == 0) && (band.higher_is_worse ? c < w : c > w))
      return Status::InvalidArgument(std::string("policy.") + f->name + ": the critical threshold must be " +
                                     (band.higher_is_worse ? "at least" : "at most") + " the warning one (got [" +
                                     Num(w) + ", " + Num(c) + "])");
    band.warn = w;
    band.critical = c;
  }
  return p;
}

json PolicyJson(const TargetPolicy& p) {
  json j{{"on_critical", p.on_critical},
         {"gate_max_accuracy_drop", p.gate_max_accuracy_drop},
         {"gate_max_memory_fraction", p.gate_max_memory_fraction}};
  for (const auto& b : kBands) j[b.name] = {(p.*(b.band)).warn, (p.*(b.band)).critical};
  return j;
}

json Assess(const Measured& m, const Reference& ref, const TargetPolicy& p, const std::vector<std::string>& class_names) {
  json metrics = json::array();
  Level worst = Level::kOk;
  std::string why;
  auto add = [&](const std::string& name, double value, const Band& band, const std::string& unit, json extra = json::object(),
                 bool judged = true) {
    Level l = band.off() || !judged ? Level::kOk : band.Of(value);
    json row{{"metric", name}, {"value", value}, {"unit", unit}, {"level", judged ? LevelName(l) : "not judged"}};
    if (band.off()) row["threshold"] = "not checked";
    else row["threshold"] = {{"warning", band.warn}, {"critical", band.critical}, {"higher_is_worse", band.higher_is_worse}};
    for (auto it = extra.begin(); it != extra.end(); ++it) row[it.key()] = it.value();
    metrics.push_back(row);
    if (l > worst) worst = l;
    if (l != Level::kOk) why += (why.empty() ? "" : "; ") + name + " " + Num(value) + (unit.empty() ? "" : " " + unit) +
                                " (" + LevelName(l) + ")";
  };
  // A drop in points between two measured proportions, judged on its lower 95 % bound.
  struct Drop {
    double points = 0, margin = 0;
    double judged() const { return std::max(0.0, points - margin); }
  };
  auto drop = [](double teacher, uint64_t n_teacher, double variant, uint64_t n_variant) {
    Drop d;
    d.points = 100 * (teacher - variant);
    double var = 0;
    if (n_teacher) var += teacher * (1 - teacher) / static_cast<double>(n_teacher);
    if (n_variant) var += variant * (1 - variant) / static_cast<double>(n_variant);
    d.margin = n_teacher && n_variant ? 100 * 1.96 * std::sqrt(var) : 0;
    return d;
  };
  auto judged_add = [&](const std::string& name, const Drop& d, const Band& band, json extra) {
    const Level l = band.Of(d.judged());
    json row{{"metric", name}, {"value", d.points}, {"unit", "points"}, {"level", LevelName(l)},
             {"margin_95", d.margin}, {"judged", d.judged()}};
    if (band.off()) row["threshold"] = "not checked";
    else row["threshold"] = {{"warning", band.warn}, {"critical", band.critical}, {"higher_is_worse", true}};
    for (auto it = extra.begin(); it != extra.end(); ++it) row[it.key()] = it.value();
    metrics.push_back(row);
    if (l > worst) worst = l;
    if (l != Level::kOk)
      why += (why.empty() ? "" : "; ") + name + " " + Num(d.points) + " points, at least " + Num(d.judged()) +
             " at 95 % confidence (" + LevelName(l) + ")";
  };
  json worst_slice = nullptr;
  if (m.labels) {
    judged_add("accuracy_drop", drop(ref.teacher_accuracy, ref.samples, m.accuracy, m.samples), p.accuracy_drop,
               {{"accuracy", m.accuracy}, {"teacher_accuracy", ref.teacher_accuracy}});
    int worst_class = -1;
    Drop worst_drop;
    for (size_t k = 0; k < m.per_class.size() && k < ref.teacher_per_class.size(); ++k) {
      if (std::isnan(m.per_class[k])) continue;  // no sample of this class in the new data
      Drop d = drop(ref.teacher_per_class[k], k < ref.seen.size() ? ref.seen[k] : 0, m.per_class[k],
                    k < m.seen.size() ? m.seen[k] : 0);
      // The worst slice: the most certain drop (its lower bound), then the largest.
      if (worst_class < 0 || d.judged() > worst_drop.judged() ||
          (d.judged() == worst_drop.judged() && d.points > worst_drop.points))
        worst_drop = d, worst_class = static_cast<int>(k);
    }
    if (worst_class >= 0) {
      const std::string name = static_cast<size_t>(worst_class) < class_names.size() ? class_names[worst_class]
                                                                                       : "class " + std::to_string(worst_class);
      worst_slice = {{"class", worst_class}, {"name", name}, {"drop_points", worst_drop.points},
                     {"margin_95", worst_drop.margin}, {"accuracy", m.per_class[worst_class]},
                     {"teacher_accuracy", ref.teacher_per_class[worst_class]},
                     {"samples", static_cast<size_t>(worst_class) < m.seen.size() ? m.seen[worst_class] : 0}};
      judged_add("worst_class_drop", worst_drop, p.class_drop, {{"class", worst_class}, {"name", name}});
    }
  }
  double psi_input = 0;
  std::string psi_feature;
  json features = json::object();
  for (const auto& [name, counts] : m.features)
    for (const auto& [rname, rcounts] : ref.features)
      if (rname == name) {
        double v = PopulationStabilityIndex(rcounts, counts);
        features[name] = v;
        if (psi_feature.empty() || v > psi_input) psi_input = v, psi_feature = name;
      }
  if (!psi_feature.empty()) add("psi_input", psi_input, p.psi, "", {{"feature", psi_feature}, {"per_feature", features}});
  if (!m.predicted.empty() && !ref.predicted.empty())
    add("psi_predicted", PopulationStabilityIndex(ref.predicted, m.predicted), p.psi, "");
  const json disturbed = m.bench_valid ? json::object() : json{{"note", "benchmark INVALID (disturbed by other load)"}};
  if (m.latency_p95_ms > 0) add("latency_p95_ms", m.latency_p95_ms, p.latency_p95_ms, "ms", disturbed, m.bench_valid);
  if (ref.dense_model_bytes > 0) add("memory", m.model_bytes / ref.dense_model_bytes, p.memory, "fraction of dense",
                                     {{"model_bytes", m.model_bytes}, {"dense_model_bytes", ref.dense_model_bytes}});
  if (m.throughput_sps > 0) add("throughput_sps", m.throughput_sps, p.throughput, "samples/s", disturbed, m.bench_valid);
  if (!m.bench_valid)
    why += std::string(why.empty() ? "" : "; ") +
           "latency and throughput not judged: the timing runs were disturbed by other load (INVALID); evaluate again on a quiet machine";
  // The slice is named in the reason when its own drop is what raised a level.
  bool slice_raised = false;
  for (const auto& row : metrics) slice_raised |= row["metric"] == "worst_class_drop" && row["level"] != "ok";
  if (worst_slice.is_object() && slice_raised)
    why += "; worst slice: " + worst_slice["name"].get<std::string>() + " (" + Num(worst_slice["drop_points"].get<double>()) +
           " points below the teacher)";
  return json{{"level", LevelName(worst)}, {"metrics", metrics}, {"worst_slice", worst_slice},
              {"why", why.empty() ? "every metric within its ok band" : why}, {"samples", m.samples}, {"labels", m.labels},
              {"bench_valid", m.bench_valid}};
}

}  // namespace prunelab::coordinator
