// Continuous evaluation of a released variant: the thresholds of a target (with levels ok /
// warning / critical), what happens on critical, and the assessment of one evaluation
// against the reference recorded when the variant was released. Pure functions over plain
// data: no store, no network, no LibTorch.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/base/status.h"

namespace prunelab::coordinator {

enum class Level { kOk = 0, kWarning = 1, kCritical = 2 };
const char* LevelName(Level level);

// One metric's bands. Higher is worse (drops, PSI, memory, latency): value < warn is ok,
// warn..critical warning, > critical critical. Higher is better (throughput): value >= warn
// is ok, critical..warn warning, < critical critical. Off when both are 0.
struct Band {
  double warn = 0;
  double critical = 0;
  bool higher_is_worse = true;
  bool off() const { return warn == 0 && critical == 0; }
  Level Of(double value) const;
};

// A target's thresholds and policy. Defaults from practice (see README "Releases").
struct TargetPolicy {
  Band accuracy_drop{2, 5};              // points below the dense teacher
  Band class_drop{5, 10};                // worst class, points below the teacher's per-class accuracy
  Band psi{0.1, 0.25};                   // input features and predicted classes
  Band memory{0.5, 0.7};                 // variant model bytes / dense model bytes
  Band throughput{1000, 500, false};     // offline samples/s on the target
  Band latency_p95_ms{0, 0};             // single-stream p95 budget (off: the sweep's gate, else unchecked)
  std::string on_critical = "notify";    // notify | rollback | resweep
  // Release gates of this target instead of the sweep's (< 0: the sweep's).
  double gate_max_accuracy_drop = -1;
  double gate_max_memory_fraction = -1;
};

// Parses a policy document ({"on_critical": "rollback", "psi": [0.1, 0.25], ...}) over
// `base`; errors name the field and the allowed values. Unknown fields are refused.
StatusOr<TargetPolicy> ParsePolicy(const nlohmann::json& j, TargetPolicy base = {});
nlohmann::json PolicyJson(const TargetPolicy& p);

// What one evaluation measured (a worker's result, see worker evaluateRelease).
struct Measured {
  bool labels = false;
  double accuracy = 0;
  std::vector<double> per_class;
  std::vector<uint64_t> seen;                      // samples per class (empty: unknown)
  std::vector<uint64_t> predicted;                 // predicted-class counts
  std::vector<std::pair<std::string, std::vector<uint64_t>>> features;  // input feature -> bin counts
  double latency_p95_ms = 0;
  double throughput_sps = 0;
  double model_bytes = 0;
  uint64_t samples = 0;
  // False when the timing runs were disturbed (INVALID): latency and throughput are then
  // shown but not judged, and the evaluation says to time again on a quiet machine.
  bool bench_valid = true;
};

// What it is compared with: recorded at release (the reference run), or the dense teacher
// measured on the same data (A/B).
struct Reference {
  double teacher_accuracy = 0;
  std::vector<double> teacher_per_class;
  uint64_t samples = 0;                 // what the teacher's figures were measured on (0: unknown)
  std::vector<uint64_t> seen;           // per class
  std::vector<uint64_t> predicted;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> features;
  double dense_model_bytes = 0;
};

// Every metric with its value, threshold and level; the worst slice (class) named; the
// overall level (the worst); one line saying why. Accuracy drops are judged on their lower
// 95 % confidence bound (drop - 1.96 x the standard error of the two proportions) where the
// sample counts are known: a class of 200 samples moves by +-7 points by chance alone, and
// a level must not flip on that.
nlohmann::json Assess(const Measured& m, const Reference& ref, const TargetPolicy& p,
                      const std::vector<std::string>& class_names);

}  // namespace prunelab::coordinator
