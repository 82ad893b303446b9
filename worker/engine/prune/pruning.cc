#include <torch/torch.h>

#include "worker/engine/prune/pruning.h"

#include "worker/engine/prune/importance.h"

namespace prunelab::worker {

torch::Tensor L1UnstructuredMask(const torch::Tensor& weight, double sparsity) {
  return MaskFromScores(weight.detach().abs(), sparsity);
}

Masks L1UnstructuredMasks(const torch::jit::Module& m, const ModelLayout& layout, double sparsity) {
  Masks masks;
  for (const auto& l : layout.layers) masks[l.weight] = L1UnstructuredMask(GetTensor(m, l.weight), sparsity);
  return masks;
}

void ApplyMasks(torch::jit::Module& m, const Masks& masks) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, mask] : masks) GetTensor(m, name).mul_(mask);
}

namespace {
// Sum of each structure's block along `dim`: [S].
torch::Tensor BlockSums(const torch::Tensor& t, int64_t dim, int64_t block) {
  auto moved = t.detach().transpose(0, dim);
  return moved.reshape({moved.size(0) / block, -1}).sum(1);
}

// Indices along the sliced dim that belong to the kept structures.
torch::Tensor Expand(const torch::Tensor& keep, int64_t block) {
  if (block == 1) return keep;
  auto offsets = torch::arange(block, keep.options());
  return (keep.unsqueeze(1) * block + offsets.unsqueeze(0)).flatten();
}

bool IsRunningStat(const std::string& p) {
  auto ends = [&](const char* s) {
    std::string suf(s);
    return p.size() >= suf.size() && p.compare(p.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends("_mean") || ends("_var") || ends("running_mean") || ends("running_var");
}
}  // namespace

torch::Tensor GroupScores(const torch::jit::Module& m, const StructureGroup& g,
                          const std::map<std::string, torch::Tensor>& weight_scores) {
  torch::Tensor total;
  for (const auto& s : g.slices) {
    if (!s.score) continue;
    auto it = weight_scores.find(s.param);
    auto src = it != weight_scores.end() ? it->second : GetTensor(m, s.param).detach().abs();
    auto part = BlockSums(src, s.dim, s.block);
    total = total.defined() ? total + part : part;
  }
  return total;
}

torch::Tensor L1ChannelsToKeep(const torch::Tensor& weight, double sparsity) {
  return ChannelsToKeep(ChannelScores(weight.detach().abs()), sparsity);
}

Keep L1ChannelSelection(const torch::jit::Module& m, const ModelLayout& layout, double sparsity) {
  Keep keep;
  for (const auto& g : layout.groups) keep[g.name] = ChannelsToKeep(GroupScores(m, g, {}), sparsity);
  return keep;
}

void RemoveStructures(torch::jit::Module& m, const ModelLayout& layout, const Keep& keep) {
  torch::NoGradGuard no_grad;
  for (const auto& g : layout.groups) {
    auto k = keep.find(g.name);
    if (k == keep.end()) continue;
    for (const auto& s : g.slices) {
      auto t = GetTensor(m, s.param);
      auto smaller = t.index_select(s.dim, Expand(k->second, s.block)).contiguous().detach().clone();
      smaller.set_requires_grad(t.requires_grad());
      SetTensor(m, s.param, smaller);
    }
  }
}

void ZeroStructures(torch::jit::Module& m, const ModelLayout& layout, const Keep& keep) {
  torch::NoGradGuard no_grad;
  for (const auto& g : layout.groups) {
    auto k = keep.find(g.name);
    if (k == keep.end()) continue;
    auto removed = torch::ones({layout.Structures(m, g)}, torch::kBool);
    removed.index_fill_(0, k->second, false);
    auto idx = removed.nonzero().flatten();
    for (const auto& s : g.slices) {
      if (s.dim != 0 || IsRunningStat(s.param)) continue;
      GetTensor(m, s.param).index_fill_(0, Expand(idx, s.block), 0.0);
    }
  }
}

int64_t PrunableWeights(const torch::jit::Module& m, const ModelLayout& layout) {
  int64_t n = 0;
  for (const auto& l : layout.layers) n += GetTensor(m, l.weight).numel();
  return n;
}

double AchievedSparsity(const torch::jit::Module& m, const ModelLayout& layout, int64_t dense_prunable_weights) {
  int64_t nonzero = 0;
  for (const auto& l : layout.layers) nonzero += GetTensor(m, l.weight).count_nonzero().item<int64_t>();
  return dense_prunable_weights > 0 ? 1.0 - static_cast<double>(nonzero) / dense_prunable_weights : 0.0;
}

std::vector<LayerStat> LayerStats(const torch::jit::Module& m, const torch::jit::Module& dense, const ModelLayout& layout) {
  std::vector<LayerStat> out;
  for (const auto& l : layout.layers) {
    auto w = GetTensor(m, l.weight);
    out.push_back({l.name, static_cast<uint64_t>(GetTensor(dense, l.weight).numel()), static_cast<uint64_t>(w.numel()),
                   static_cast<uint64_t>(w.count_nonzero().item<int64_t>())});
  }
  return out;
}

}  // namespace prunelab::worker
