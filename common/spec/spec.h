// Sweep spec: YAML text -> validated SweepSpec -> tasks. Validation happens here, before
// anything is stored, and every error names the field path and the allowed values.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/base/types.h"

namespace prunelab {

struct ScheduleSpec {
  std::string type = "one_shot";      // one_shot | iterative
  double finetune_epochs = 1;         // total recovery budget (split evenly over iterative rounds)
  double finetune_fraction = -1;      // >= 0: budget as a fraction of the baseline's epochs instead
  double finetune_learning_rate = 0.01;
  uint32_t rounds = 4;                // iterative
  std::string curve = "cubic";        // iterative: linear | cubic
  double rewind = -1;                 // lottery ticket: < 0 off; 0 = init; f = after f of baseline training
  double distill_temperature = 0;     // distill: {temperature, alpha}; 0: fine-tune on labels only
  double distill_alpha = 0.5;
};

// Release gates: thresholds against the dense baseline measured on the same target.
struct GateSpec {
  double max_accuracy_drop = 2.0;                   // points (classification)
  double max_perplexity_ratio = 1.15;               // language modeling: variant / dense perplexity
  double max_worst_class_drop = -1;                 // points; < 0: off
  std::map<std::string, double> latency_budget_ms;  // latency field (e.g. latency_p90_ms) -> max ms
  double max_memory_fraction = 0.5;                 // variant model_bytes / dense model_bytes; <= 0: off
  double min_throughput_sps = 0;                    // offline samples/s; 0: off
};

// The spec's `report` section: how variants are chosen for deployment.
struct ReportSpec {
  std::string objectives;            // "accuracy:max,latency_p90_ms:min,..." (empty: the default)
  std::string recommend = "fastest";  // fastest | most_accurate | knee (see README)
  GateSpec gates;
};

// The spec's `pruning` section: how every trial of the sweep chooses what to remove.
struct PruningSpec {
  std::string scope = "layer";
  double min_keep = 0.01;
  std::vector<std::string> exclude;
  std::vector<LayerValue> overrides;
  uint32_t round_to = 1;
  uint32_t calibration_batches = 8;
};

struct SweepSpec {
  std::string name;
  std::string model = "cnn";          // zoo name, or "torchscript"
  std::string model_path;             // torchscript: file the CLI reads and submits
  std::vector<int64_t> input_shape;   // torchscript: per-sample input shape
  std::string model_artifact;         // torchscript: content hash, set by the coordinator
  std::string mode = "grid";          // grid | sensitivity
  std::vector<std::string> layers;    // sensitivity: layers/groups (default: all of a zoo model)
  PruningSpec pruning;
  std::string spec_hash;              // of the YAML text
  DatasetConfig dataset;
  TrainingConfig training;
  std::vector<std::string> criteria;
  std::vector<std::string> granularities;
  std::vector<double> sparsities;
  std::vector<ScheduleSpec> schedules;
  // none | int8 | int8_dynamic, after pruning; each mode other than none also adds a trial
  // of the dense baseline quantized alone (granularity "dense").
  std::vector<std::string> quantize = {"none"};
  BenchmarkConfig benchmark;
  std::vector<std::string> targets;
  std::map<std::string, uint32_t> target_threads;  // targets declared {name, threads}
  // Scheduling: higher first; sweeps of equal priority share workers fairly (fewest
  // running tasks first). Range -100..100, default 0.
  int32_t priority = 0;
  ReportSpec report;
};

// Allowed values (what this build implements).
const std::vector<std::string>& AllowedTasks();
const std::vector<std::string>& AllowedModels();
const std::vector<std::string>& AllowedCriteria();
const std::vector<std::string>& AllowedGranularities();
const std::vector<std::string>& AllowedSchedules();
const std::vector<std::string>& AllowedScenarios();

// True when `granularity` is an N:M pattern ("2:4"); fills n and m.
bool ParseNm(const std::string& granularity, int* n, int* m);
// True when `granularity` removes whole structures (structured, or its alias channel).
bool IsStructured(const std::string& granularity);

// Parses and validates. On failure the message lists every problem, one per line,
// each as "field.path: problem (allowed: ...)".
StatusOr<SweepSpec> ParseSpec(const std::string& yaml_text);
StatusOr<std::string> ReadSpecFile(const std::string& path);
// The same spec with its dataset replaced (name and path; subsets kept), e.g. to sweep
// again on data a deployed variant drifted on. The result is validated.
StatusOr<std::string> WithDataset(const std::string& yaml_text, const std::string& name, const std::string& path);

// Content hash of everything that determines the dense baseline (model, data, training).
std::string BaselineKey(const SweepSpec& spec);
// The key prunelab 0.3 used for the same settings: looked up when BaselineKey misses, so a
// baseline trained before the upgrade is still reused.
std::string LegacyBaselineKey(const SweepSpec& spec);

}  // namespace prunelab
