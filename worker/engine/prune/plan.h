// Turning scores into a pruning decision: which weights (masks) or which structures (keep
// sets) survive, for layer or global scope, with exclusions, per-layer overrides, a
// per-layer minimum in global scope, and kept widths rounded to a multiple.
// LibTorch header: engine-internal.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/base/types.h"
#include "worker/engine/prune/pruning.h"

namespace prunelab::worker {

struct PlanOptions {
  std::string scope = "layer";              // layer | global
  double min_keep = 0.01;                   // global: fraction of each layer/group always kept
  std::set<std::string> exclude;            // resolved layer/group names left dense
  std::map<std::string, double> overrides;  // layer/group -> its own sparsity
  int64_t round_to = 1;                     // structured: kept widths rounded to a multiple
  std::string only;                         // sensitivity: prune this layer/group alone
  bool per_row = false;                     // unstructured, layer scope: each output row keeps its share (wanda)
};

// Validates names against the layout ("first"/"last" = first/last prunable layer) and builds
// the options. Errors name the field and list the layers and groups.
StatusOr<PlanOptions> MakePlanOptions(const TrialConfig& trial, const ModelLayout& layout, bool structured);

// Unstructured (nm_m == 0) or N:M masks. `previous` (may be empty) keeps pruned weights
// pruned in later rounds. Layers whose rows are not a multiple of M stay dense; an error if
// none can hold the pattern.
StatusOr<Masks> PlanMasks(const ModelLayout& layout, const std::map<std::string, torch::Tensor>& scores,
                          double sparsity, const PlanOptions& o, int nm_n, int nm_m, const Masks& previous);

// Structures to keep per group, counted against each group's original size
// (`original`: group -> structures in the dense model) so iterative rounds reach the target.
StatusOr<Keep> PlanStructures(const ModelLayout& layout, const std::map<std::string, torch::Tensor>& group_scores,
                              const std::map<std::string, int64_t>& original, double sparsity, const PlanOptions& o);

// Kept count for `structures` at `sparsity`, rounded to a multiple of round_to (at least one
// multiple, never more than `available`).
int64_t KeptWidth(int64_t structures, double sparsity, int64_t round_to, int64_t available);

// Sparsity after round r of R: linear s*r/R, or cubic s*(1-(1-r/R)^3) (Zhu & Gupta).
double ScheduledSparsity(double target, uint32_t round, uint32_t rounds, const std::string& curve);

}  // namespace prunelab::worker
