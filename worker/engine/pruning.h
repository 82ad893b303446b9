// Pruning primitives: L1 magnitude masks (unstructured) and L1 channel pruning that
// physically removes channels. LibTorch header: engine-internal.
#pragma once

#include <map>
#include <string>

#include "worker/engine/model.h"

namespace prunelab::worker {

using Masks = std::map<std::string, torch::Tensor>;  // param name -> {0,1} float mask

// Mask zeroing the round(sparsity * numel) entries of smallest |w| (ties: lowest index first).
torch::Tensor L1UnstructuredMask(const torch::Tensor& weight, double sparsity);
// Layer-wise: the same sparsity in every prunable weight tensor of the layout.
Masks L1UnstructuredMasks(const torch::jit::Module& m, const ModelLayout& layout, double sparsity);
// Multiplies each parameter by its mask in place (no autograd).
void ApplyMasks(torch::jit::Module& m, const Masks& masks);

// Sorted indices of the channels to keep: the max(1, round((1 - sparsity) * C)) output
// channels with the largest L1 norm of their weights.
torch::Tensor L1ChannelsToKeep(const torch::Tensor& weight, double sparsity);
std::map<std::string, torch::Tensor> L1ChannelSelection(const torch::jit::Module& m, const ModelLayout& layout,
                                                         double sparsity);
// Replaces producer and consumer tensors by smaller ones holding only kept channels.
void RemoveChannels(torch::jit::Module& m, const ModelLayout& layout, const std::map<std::string, torch::Tensor>& keep);
// Zeroes the channels that RemoveChannels would remove (weights, bias, BN scale and shift),
// keeping shapes: the reference a channel-pruned model must match.
void ZeroChannels(torch::jit::Module& m, const ModelLayout& layout, const std::map<std::string, torch::Tensor>& keep);

// 1 - (non-zero prunable weights of m) / (prunable weights of the dense model).
double AchievedSparsity(const torch::jit::Module& m, const ModelLayout& layout, int64_t dense_prunable_weights);
int64_t PrunableWeights(const torch::jit::Module& m, const ModelLayout& layout);

}  // namespace prunelab::worker
