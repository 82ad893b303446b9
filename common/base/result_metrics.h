// The measured figures of a result row, one registry: each metric's name (as written in
// specs, JSON records, tables and on the command line), its unit, which direction is better,
// and the TrialResult field it lives in. Objectives, gates' latency fields and the JSON
// records read this table instead of listing the names again. (The Cap'n Proto codec keeps
// one schema field per metric: the schema is the wire's own registry.)
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/base/types.h"

namespace prunelab {

enum class Better { kHigher, kLower };

struct ResultMetric {
  const char* name;
  const char* unit;  // "fraction", "ms", "bytes", ... (what a value of 1 means)
  Better better;
  std::variant<double TrialResult::*, uint64_t TrialResult::*> field;

  double Read(const TrialResult& r) const {
    if (auto* d = std::get_if<double TrialResult::*>(&field)) return r.**d;
    return static_cast<double>(r.*std::get<uint64_t TrialResult::*>(field));
  }
  bool IsLatency() const { return std::string(unit) == "ms"; }
};

inline const std::vector<ResultMetric>& ResultMetrics() {
  using R = TrialResult;
  static const std::vector<ResultMetric> m{
      {"accuracy", "fraction", Better::kHigher, &R::accuracy},
      {"perplexity", "perplexity", Better::kLower, &R::perplexity},
      {"worst_class_drop", "fraction", Better::kLower, &R::worst_class_drop},
      {"latency_mean_ms", "ms", Better::kLower, &R::latency_mean_ms},
      {"latency_p50_ms", "ms", Better::kLower, &R::latency_p50_ms},
      {"latency_p90_ms", "ms", Better::kLower, &R::latency_p90_ms},
      {"latency_p95_ms", "ms", Better::kLower, &R::latency_p95_ms},
      {"latency_p99_ms", "ms", Better::kLower, &R::latency_p99_ms},
      {"latency_p999_ms", "ms", Better::kLower, &R::latency_p999_ms},
      {"early_stop_p90_ms", "ms", Better::kLower, &R::early_stop_p90_ms},
      {"multistream_p99_ms", "ms", Better::kLower, &R::multistream_p99_ms},
      {"server_max_qps", "queries/s", Better::kHigher, &R::server_max_qps},
      {"server_p99_ms", "ms", Better::kLower, &R::server_p99_ms},
      {"throughput_sps", "samples/s", Better::kHigher, &R::throughput_sps},
      {"peak_rss_bytes", "bytes", Better::kLower, &R::peak_rss_bytes},
      {"params", "parameters", Better::kLower, &R::params},
      {"model_bytes", "bytes", Better::kLower, &R::model_bytes},
      {"achieved_sparsity", "fraction", Better::kHigher, &R::achieved_sparsity},
      {"speedup_p90", "x", Better::kHigher, &R::speedup_p90},
  };
  return m;
}

// The metric named `name`, or nullptr.
inline const ResultMetric* FindResultMetric(const std::string& name) {
  for (const auto& m : ResultMetrics())
    if (name == m.name) return &m;
  return nullptr;
}

}  // namespace prunelab
