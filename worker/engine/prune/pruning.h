// Pruning primitives on a ModelLayout: masks (unstructured, N:M) and structural removal
// of neurons, channels, residual groups and attention heads. LibTorch header: engine-internal.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/base/types.h"
#include "worker/engine/model/model.h"

namespace prunelab::worker {

using Masks = std::map<std::string, torch::Tensor>;  // weight param -> {0,1} float mask
using Keep = std::map<std::string, torch::Tensor>;   // group name -> sorted kept structure indices

// Mask zeroing the round(sparsity * numel) entries of smallest |w| (ties: lowest index first).
torch::Tensor L1UnstructuredMask(const torch::Tensor& weight, double sparsity);
// Layer-wise: the same sparsity in every prunable weight tensor of the layout.
Masks L1UnstructuredMasks(const torch::jit::Module& m, const ModelLayout& layout, double sparsity);
// Multiplies each parameter by its mask in place (no autograd).
void ApplyMasks(torch::jit::Module& m, const Masks& masks);

// Per-structure importance of one group from per-weight scores: every scored slice's block
// summed ([S] tensor).
torch::Tensor GroupScores(const torch::jit::Module& m, const StructureGroup& g,
                          const std::map<std::string, torch::Tensor>& weight_scores);
// L1 structure selection at the same sparsity in every group (tests and benches).
Keep L1ChannelSelection(const torch::jit::Module& m, const ModelLayout& layout, double sparsity);
torch::Tensor L1ChannelsToKeep(const torch::Tensor& weight, double sparsity);

// Replaces every tensor a group slices by a smaller one holding only the kept structures.
void RemoveStructures(torch::jit::Module& m, const ModelLayout& layout, const Keep& keep);
// Zeroes the producer slices (weights, biases, norm scale/shift) of the structures that
// RemoveStructures would remove, keeping shapes: the reference a pruned model must match.
void ZeroStructures(torch::jit::Module& m, const ModelLayout& layout, const Keep& keep);
// The check every structured variant passes before fine-tuning: `pruned` runs on `inputs`,
// its output has the same shape as `zeroed`'s (the original with the removed structures
// zeroed), and differs from it by at most `tolerance` of the output's largest magnitude
// (*relative_error gets the figure). FailedPrecondition naming what failed otherwise.
Status CheckStructuredVariant(torch::jit::Module& zeroed, torch::jit::Module& pruned,
                              const std::vector<c10::IValue>& inputs, double tolerance, double* relative_error);

// 1 - (non-zero prunable weights of m) / (prunable weights of the dense model).
double AchievedSparsity(const torch::jit::Module& m, const ModelLayout& layout, int64_t dense_prunable_weights);
int64_t PrunableWeights(const torch::jit::Module& m, const ModelLayout& layout);
// Per prunable layer: weights in the dense model, now, and non-zero now.
std::vector<LayerStat> LayerStats(const torch::jit::Module& m, const torch::jit::Module& dense, const ModelLayout& layout);

}  // namespace prunelab::worker
