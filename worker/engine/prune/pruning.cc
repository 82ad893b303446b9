#include <torch/torch.h>

#include "worker/engine/prune/pruning.h"

#include "worker/engine/prune/importance.h"
#include "worker/engine/model/user_model.h"

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
    torch::Tensor part;
    if (s.map.empty()) {
      part = BlockSums(src, s.dim, s.block);
    } else {
      auto per_index = BlockSums(src.to(torch::kFloat32), s.dim, 1);
      auto owner = torch::tensor(s.map, torch::kInt64);
      auto mine = owner.ge(0);
      part = torch::zeros({g.structures}, per_index.options()).index_add_(0, owner.masked_select(mine), per_index.masked_select(mine));
    }
    total = total.defined() ? total + part : part;
  }
  return total;
}

torch::Tensor L1ChannelsToKeep(const torch::Tensor& weight, double sparsity) {
  return ChannelsToKeep(ChannelScores(weight.detach().abs()), sparsity);
}

Keep L1ChannelSelection(const torch::jit::Module& m, const ModelLayout& layout, double sparsity) {
  Keep keep;
  for (const auto& g : layout.groups)
    if (g.blocked.empty()) keep[g.name] = ChannelsToKeep(GroupScores(m, g, {}), sparsity);
  return keep;
}

namespace {
// Per (param, dim): which indices the removed structures of every group own.
std::map<std::pair<std::string, int64_t>, torch::Tensor> RemovedIndices(const torch::jit::Module& m,
                                                                         const ModelLayout& layout, const Keep& keep,
                                                                         bool for_zeroing) {
  std::map<std::pair<std::string, int64_t>, torch::Tensor> removed;
  for (const auto& g : layout.groups) {
    auto k = keep.find(g.name);
    if (k == keep.end()) continue;
    auto gone = torch::ones({layout.Structures(m, g)}, torch::kBool);
    gone.index_fill_(0, k->second, false);
    for (const auto& s : g.slices) {
      if (for_zeroing && s.map.empty() && (s.dim != 0 || IsRunningStat(s.param))) continue;
      if (for_zeroing && !s.map.empty() && IsRunningStat(s.param)) continue;
      torch::Tensor idx;
      if (s.map.empty()) {
        idx = Expand(gone.nonzero().flatten(), s.block);
      } else {
        auto owner = torch::tensor(s.map, torch::kInt64);
        auto mine = owner.ge(0);
        auto flags = torch::zeros({owner.size(0)}, torch::kBool);
        flags.masked_scatter_(mine, gone.index_select(0, owner.masked_select(mine)));
        idx = flags.nonzero().flatten();
      }
      auto& r = removed[{s.param, s.dim}];
      if (!r.defined()) r = torch::zeros({GetTensor(m, s.param).size(s.dim)}, torch::kBool);
      r.index_fill_(0, idx, true);
    }
  }
  return removed;
}
}  // namespace

void RemoveStructures(torch::jit::Module& m, const ModelLayout& layout, const Keep& keep) {
  {
    torch::NoGradGuard no_grad;
    auto removed = RemovedIndices(m, layout, keep, /*for_zeroing=*/false);
    // Several entries of one tensor (e.g. a weight's rows and columns) apply in turn.
    for (const auto& [key, flags] : removed) {
      const auto& [param, dim] = key;
      auto t = GetTensor(m, param);
      auto kept = flags.logical_not().nonzero().flatten();
      auto smaller = t.index_select(dim, kept).contiguous().detach().clone();
      smaller.set_requires_grad(t.requires_grad());
      SetTensor(m, param, smaller);
    }
  }
  RewriteAttention(m, layout);
  RewriteDepthwiseGroups(m, layout);
}

void ZeroStructures(torch::jit::Module& m, const ModelLayout& layout, const Keep& keep) {
  torch::NoGradGuard no_grad;
  // Zoo layouts: producer slices (outputs of weights, biases, norm scale and shift).
  // User layouts: every slice but running statistics, so a removed channel neither leaves
  // its producer nor reaches any consumer, whatever the activation does to zero.
  for (const auto& [key, flags] : RemovedIndices(m, layout, keep, /*for_zeroing=*/true))
    GetTensor(m, key.first).index_fill_(key.second, flags.nonzero().flatten(), 0.0);
}

Status CheckStructuredVariant(torch::jit::Module& zeroed, torch::jit::Module& pruned,
                              const std::vector<c10::IValue>& inputs, double tolerance, double* relative_error) {
  torch::NoGradGuard no_grad;
  const bool zt = zeroed.is_training(), pt = pruned.is_training();
  zeroed.eval();
  pruned.eval();
  torch::Tensor ref, got;
  std::string error;
  try {
    ref = zeroed.forward(inputs).toTensor();
  } catch (const std::exception& e) {
    error = std::string("the original model with the removed structures zeroed did not run: ") + e.what();
  }
  if (error.empty()) {
    try {
      got = pruned.forward(inputs).toTensor();
    } catch (const c10::Error& e) {
      error = std::string("the pruned model does not run: ") + e.what_without_backtrace();
    } catch (const std::exception& e) {
      error = std::string("the pruned model does not run: ") + e.what();
    }
  }
  zeroed.train(zt);
  pruned.train(pt);
  if (!error.empty()) return Status::InvalidArgument("structured pruning check failed: " + error);
  if (got.sizes() != ref.sizes())
    return Status::InvalidArgument("structured pruning check failed: the output shape changed from " +
                                      c10::str(ref.sizes()) + " to " + c10::str(got.sizes()));
  double scale = ref.abs().max().item<double>();
  if (!(scale > 1e-12))
    return Status::InvalidArgument("structured pruning check failed: the model's output is zero on the check input, "
                                   "so the pruned model cannot be compared with it");
  double err = (got - ref).abs().max().item<double>() / std::max(scale, 1e-6);
  if (relative_error) *relative_error = err;
  if (!(err <= tolerance))
    return Status::InvalidArgument("structured pruning check failed: the pruned model differs from the original with "
                                      "the removed structures zeroed by " + std::to_string(err) +
                                      " of the output's largest value (tolerance " + std::to_string(tolerance) +
                                      "); exclude the layers of the last group listed, or use unstructured pruning");
  return Status::Ok();
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
