#include "common/spec/objectives.h"

#include <cstdio>
#include <map>
#include <sstream>
#include <fmt/printf.h>

#include "common/base/result_metrics.h"

namespace prunelab {

const std::vector<std::string>& ObjectiveFields() {
  static const std::vector<std::string> f = [] {
    std::vector<std::string> names;
    for (const auto& m : ResultMetrics()) names.push_back(m.name);
    return names;
  }();
  return f;
}

bool ObjectiveValue(const TrialResult& r, const std::string& f, double* out) {
  const ResultMetric* m = FindResultMetric(f);
  if (!m) return false;
  *out = m->Read(r);
  return true;
}

std::vector<Objective> DefaultObjectives(const std::string& metric) {
  return {{metric == "perplexity" ? "perplexity" : "accuracy", metric != "perplexity"},
          {"latency_p90_ms", false},
          {"model_bytes", false}};
}

bool ScoredByPerplexity(const TrialResult& r) { return r.metric == "perplexity"; }

double QualityScore(const TrialResult& r) { return ScoredByPerplexity(r) ? -r.perplexity : r.accuracy; }

double QualityLoss(const TrialResult& r, const TrialResult& base) {
  if (ScoredByPerplexity(r)) return base.perplexity > 0 ? (r.perplexity / base.perplexity - 1) * 100 : 0;
  return (base.accuracy - r.accuracy) * 100;
}

std::string QualityText(const TrialResult& r) {
  if (ScoredByPerplexity(r)) return fmt::sprintf("perplexity %.2f", r.perplexity);
  return fmt::sprintf("%.2f %%", r.accuracy * 100);
}

StatusOr<std::vector<Objective>> ParseObjectives(const std::string& text) {
  std::vector<Objective> out;
  std::stringstream ss(text);
  std::string part;
  auto allowed = [] {
    std::string a;
    for (const auto& m : ResultMetrics()) a += (a.empty() ? "" : ", ") + std::string(m.name) + " (" + m.unit + ")";
    return a;
  };
  while (std::getline(ss, part, ',')) {
    auto colon = part.find(':');
    std::string field = part.substr(0, colon), dir = colon == std::string::npos ? "" : part.substr(colon + 1);
    const ResultMetric* metric = FindResultMetric(field);
    if (!metric)
      return Status::InvalidArgument("objective '" + part + "': unknown field '" + field + "' (allowed: " + allowed() + ")");
    if (dir != "max" && dir != "min")
      return Status::InvalidArgument("objective '" + part + "': direction must be max or min, as in " + field +
                                     (metric->better == Better::kHigher ? ":max" : ":min") + " (higher " + field +
                                     " is " + (metric->better == Better::kHigher ? "better)" : "worse)"));
    for (const auto& o : out)
      if (o.field == field) return Status::InvalidArgument("objective '" + field + "' is listed twice");
    out.push_back({field, dir == "max"});
  }
  if (out.empty()) return Status::InvalidArgument("objectives: give at least one, e.g. accuracy:max,latency_p90_ms:min");
  return out;
}

}  // namespace prunelab
