#include "worker/engine/pruning.h"

#include "worker/engine/importance.h"

#include <cmath>

namespace prunelab::worker {

torch::Tensor L1UnstructuredMask(const torch::Tensor& weight, double sparsity) {
  return MaskFromScores(weight.detach().abs(), sparsity);
}

Masks L1UnstructuredMasks(const torch::jit::Module& m, const ModelLayout& layout, double sparsity) {
  Masks masks;
  for (const auto& name : layout.weight_params) masks[name] = L1UnstructuredMask(GetTensor(m, name), sparsity);
  return masks;
}

void ApplyMasks(torch::jit::Module& m, const Masks& masks) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, mask] : masks) GetTensor(m, name).mul_(mask);
}

torch::Tensor L1ChannelsToKeep(const torch::Tensor& weight, double sparsity) {
  return ChannelsToKeep(ChannelScores(weight.detach().abs()), sparsity);
}

std::map<std::string, torch::Tensor> L1ChannelSelection(const torch::jit::Module& m, const ModelLayout& layout,
                                                         double sparsity) {
  std::map<std::string, torch::Tensor> keep;
  for (const auto& g : layout.channel_groups) keep[g.name] = L1ChannelsToKeep(GetTensor(m, g.importance_param), sparsity);
  return keep;
}

namespace {
// Column indices of the consumer that belong to the kept channels.
torch::Tensor ConsumerColumns(const torch::Tensor& keep, int64_t block) {
  if (block == 1) return keep;
  auto offsets = torch::arange(block, keep.options());
  return (keep.unsqueeze(1) * block + offsets.unsqueeze(0)).flatten();
}
}  // namespace

void RemoveChannels(torch::jit::Module& m, const ModelLayout& layout, const std::map<std::string, torch::Tensor>& keep) {
  torch::NoGradGuard no_grad;
  for (const auto& g : layout.channel_groups) {
    const torch::Tensor& k = keep.at(g.name);
    for (const auto& p : g.producer_params) {
      auto t = GetTensor(m, p);
      auto smaller = t.index_select(0, k).contiguous().detach().clone();
      smaller.set_requires_grad(t.requires_grad());
      SetTensor(m, p, smaller);
    }
    auto c = GetTensor(m, g.consumer_param);
    auto smaller = c.index_select(1, ConsumerColumns(k, g.consumer_block)).contiguous().detach().clone();
    smaller.set_requires_grad(c.requires_grad());
    SetTensor(m, g.consumer_param, smaller);
  }
}

void ZeroChannels(torch::jit::Module& m, const ModelLayout& layout, const std::map<std::string, torch::Tensor>& keep) {
  torch::NoGradGuard no_grad;
  for (const auto& g : layout.channel_groups) {
    auto w = GetTensor(m, g.importance_param);
    auto removed = torch::ones({w.size(0)}, torch::kBool);
    removed.index_fill_(0, keep.at(g.name), false);
    auto idx = removed.nonzero().flatten();
    for (const auto& p : g.producer_params) {
      if (p.find("_mean") != std::string::npos || p.find("_var") != std::string::npos) continue;
      GetTensor(m, p).index_fill_(0, idx, 0.0);
    }
  }
}

int64_t PrunableWeights(const torch::jit::Module& m, const ModelLayout& layout) {
  int64_t n = 0;
  for (const auto& name : layout.weight_params) n += GetTensor(m, name).numel();
  return n;
}

double AchievedSparsity(const torch::jit::Module& m, const ModelLayout& layout, int64_t dense_prunable_weights) {
  int64_t nonzero = 0;
  for (const auto& name : layout.weight_params) nonzero += GetTensor(m, name).count_nonzero().item<int64_t>();
  return dense_prunable_weights > 0 ? 1.0 - static_cast<double>(nonzero) / dense_prunable_weights : 0.0;
}

}  // namespace prunelab::worker
