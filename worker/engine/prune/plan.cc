#include "worker/engine/prune/plan.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "worker/engine/prune/importance.h"

namespace prunelab::worker {
namespace {

std::string Names(const ModelLayout& layout) {
  std::string layers, groups;
  for (const auto& l : layout.layers) layers += (layers.empty() ? "" : ", ") + l.name;
  for (const auto& g : layout.groups) groups += (groups.empty() ? "" : ", ") + g.name;
  return "layers: " + layers + "; groups: " + (groups.empty() ? "(none)" : groups) + "; or first, last";
}

bool IsLayer(const ModelLayout& layout, const std::string& n) {
  return std::any_of(layout.layers.begin(), layout.layers.end(), [&](const PrunableLayer& l) { return l.name == n; });
}

// Global selection: every candidate's reserved minimum first, then the highest scores
// across candidates until `keep_total` are kept. Returns kept flags per candidate.
std::vector<torch::Tensor> GlobalKeep(const std::vector<torch::Tensor>& scores, const std::vector<int64_t>& minimum,
                                      int64_t keep_total) {
  std::vector<torch::Tensor> keep;
  std::vector<torch::Tensor> rest;
  int64_t reserved = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    auto flat = scores[i].flatten();
    auto k = torch::zeros({flat.numel()}, torch::kBool);
    int64_t m = std::min<int64_t>(minimum[i], flat.numel());
    if (m > 0) k.index_fill_(0, std::get<1>(flat.topk(m)), true);
    reserved += m;
    keep.push_back(k);
    // Reserved entries leave the global ranking.
    rest.push_back(flat.masked_fill(k, -std::numeric_limits<float>::infinity()));
  }
  int64_t extra = std::max<int64_t>(0, keep_total - reserved);
  if (extra > 0) {
    auto all = torch::cat(rest);
    auto top = std::get<1>(all.topk(std::min<int64_t>(extra, all.numel())));
    auto sel = torch::zeros({all.numel()}, torch::kBool).index_fill_(0, top, true);
    int64_t off = 0;
    for (size_t i = 0; i < keep.size(); ++i) {
      int64_t n = keep[i].numel();
      keep[i] = keep[i] | sel.slice(0, off, off + n);
      off += n;
    }
  }
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = keep[i].view(scores[i].sizes());
  return keep;
}

double SparsityFor(const std::string& name, const std::vector<std::string>& also, double sparsity, const PlanOptions& o,
                   bool* excluded) {
  *excluded = false;
  if (!o.only.empty()) {
    *excluded = name != o.only;
    return *excluded ? 0.0 : sparsity;
  }
  auto hit = [&](const std::string& n) { return o.exclude.count(n) > 0; };
  if (hit(name) || std::any_of(also.begin(), also.end(), hit)) {
    *excluded = true;
    return 0.0;
  }
  auto ov = o.overrides.find(name);
  if (ov != o.overrides.end()) return ov->second;
  for (const auto& a : also) {
    ov = o.overrides.find(a);
    if (ov != o.overrides.end()) return ov->second;
  }
  return sparsity;
}

}  // namespace

StatusOr<PlanOptions> MakePlanOptions(const TrialConfig& t, const ModelLayout& layout, bool structured) {
  PlanOptions o;
  o.scope = t.scope.empty() ? "layer" : t.scope;
  if (o.scope != "layer" && o.scope != "global")
    return Status::InvalidArgument("pruning.scope '" + o.scope + "' (allowed: layer, global)");
  o.min_keep = t.min_keep;
  o.round_to = std::max<int64_t>(1, t.round_to);
  if (layout.layers.empty()) return Status::InvalidArgument("the model has no prunable linear or convolution weights");
  auto resolve = [&](const std::string& n, const std::string& field) -> StatusOr<std::string> {
    if (n == "first") return layout.layers.front().name;
    if (n == "last") return layout.layers.back().name;
    if (IsLayer(layout, n) || layout.Group(n)) return n;
    return Status::InvalidArgument(field + ": '" + n + "' is not a layer or structure group of this model (" +
                                   Names(layout) + ")");
  };
  for (const auto& e : t.exclude) {
    auto r = resolve(e, "pruning.exclude");
    if (!r.ok()) return r.status();
    o.exclude.insert(r.value());
  }
  for (const auto& ov : t.overrides) {
    auto r = resolve(ov.name, "pruning.overrides");
    if (!r.ok()) return r.status();
    o.overrides[r.value()] = ov.value;
  }
  if (!t.layer.empty()) {
    auto r = resolve(t.layer, "sweep.layers");
    if (!r.ok()) return r.status();
    if (structured && !layout.Group(r.value()))
      return Status::InvalidArgument("sweep.layers: '" + t.layer + "' is not a structure group (" + Names(layout) + ")");
    if (!structured && !IsLayer(layout, r.value()))
      return Status::InvalidArgument("sweep.layers: '" + t.layer + "' is not a prunable layer (" + Names(layout) + ")");
    o.only = r.value();
  }
  return o;
}

StatusOr<Masks> PlanMasks(const ModelLayout& layout, const std::map<std::string, torch::Tensor>& scores, double sparsity,
                          const PlanOptions& o, int nm_n, int nm_m, const Masks& previous) {
  torch::NoGradGuard g;
  // Already-pruned weights rank below everything (scores are >= 0), so they stay pruned.
  auto effective = [&](const std::string& w) {
    auto s = scores.at(w).detach();
    auto p = previous.find(w);
    return p == previous.end() ? s : s * p->second - (1 - p->second);
  };
  Masks masks;
  std::vector<std::string> global_layers;
  for (const auto& l : layout.layers) {
    bool excluded = false;
    double s = SparsityFor(l.name, {}, sparsity, o, &excluded);
    if (excluded) continue;
    if (nm_m > 0) {
      auto mask = NmMask(effective(l.weight), nm_n, nm_m);
      if (mask.ok()) masks[l.weight] = mask.value();
    } else if (o.scope == "global" && !o.overrides.count(l.name) && o.only.empty()) {
      global_layers.push_back(l.weight);
    } else {
      masks[l.weight] = o.per_row ? RowMaskFromScores(effective(l.weight), s) : MaskFromScores(effective(l.weight), s);
    }
  }
  if (!global_layers.empty()) {
    std::vector<torch::Tensor> s;
    std::vector<int64_t> minimum;
    int64_t total = 0;
    for (const auto& w : global_layers) {
      s.push_back(effective(w));
      total += s.back().numel();
      minimum.push_back(static_cast<int64_t>(std::ceil(o.min_keep * static_cast<double>(s.back().numel()))));
    }
    int64_t keep_total = total - std::llround(sparsity * static_cast<double>(total));
    auto keep = GlobalKeep(s, minimum, keep_total);
    for (size_t i = 0; i < global_layers.size(); ++i) masks[global_layers[i]] = keep[i].to(torch::kFloat32);
  }
  if (nm_m > 0 && masks.empty())
    return Status::InvalidArgument("no layer of this model can hold a " + std::to_string(nm_n) + ":" +
                                   std::to_string(nm_m) + " pattern (rows must be a multiple of " + std::to_string(nm_m) + ")");
  return masks;
}

int64_t KeptWidth(int64_t structures, double sparsity, int64_t round_to, int64_t available) {
  int64_t k = std::max<int64_t>(1, std::llround((1.0 - sparsity) * static_cast<double>(structures)));
  if (round_to > 1) k = std::max<int64_t>(round_to, std::llround(static_cast<double>(k) / round_to) * round_to);
  return std::min(k, available);
}

StatusOr<Keep> PlanStructures(const ModelLayout& layout, const std::map<std::string, torch::Tensor>& group_scores,
                              const std::map<std::string, int64_t>& original, double sparsity, const PlanOptions& o) {
  if (!layout.structured_error.empty()) return Status::InvalidArgument(layout.structured_error);
  if (layout.groups.empty()) return Status::InvalidArgument("this model has no prunable structures");
  torch::NoGradGuard g;
  Keep keep;
  auto pick = [](const torch::Tensor& scores, int64_t k) {
    auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    return std::get<0>(order.slice(0, 0, k).sort());
  };
  std::vector<const StructureGroup*> global;
  std::string first_blocked;
  for (const auto& grp : layout.groups) {
    bool excluded = false;
    double s = SparsityFor(grp.name, grp.layers, sparsity, o, &excluded);
    if (excluded) continue;
    if (!grp.blocked.empty()) {  // left dense; an error only when nothing can be pruned
      if (first_blocked.empty()) first_blocked = grp.blocked;
      continue;
    }
    const auto& sc = group_scores.at(grp.name);
    if (o.scope == "global" && o.only.empty() && !o.overrides.count(grp.name)) {
      global.push_back(&grp);
      continue;
    }
    auto orig = original.find(grp.name);
    keep[grp.name] = pick(sc, KeptWidth(orig != original.end() ? orig->second : sc.size(0), s, o.round_to, sc.size(0)));
  }
  if (keep.empty() && global.empty() && !first_blocked.empty())
    return Status::InvalidArgument("no structure group of this model can be pruned; the first: " + first_blocked);
  if (!global.empty()) {
    // Sums of weight scores grow with fan-in: normalize by each group's mean so one
    // ranking across groups compares like with like.
    std::vector<torch::Tensor> s;
    std::vector<int64_t> minimum;
    int64_t total = 0;
    for (const auto* grp : global) {
      auto sc = group_scores.at(grp->name).to(torch::kFloat32);
      s.push_back(sc / sc.mean().clamp_min(1e-12));
      auto orig = original.find(grp->name);
      int64_t n = orig != original.end() ? orig->second : sc.size(0);
      total += n;
      minimum.push_back(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.min_keep * static_cast<double>(n)))));
    }
    int64_t keep_total = total - std::llround(sparsity * static_cast<double>(total));
    auto flags = GlobalKeep(s, minimum, keep_total);
    for (size_t i = 0; i < global.size(); ++i) {
      int64_t k = flags[i].sum().item<int64_t>();
      int64_t width = KeptWidth(k, 0.0, o.round_to, s[i].size(0));
      keep[global[i]->name] = pick(s[i], width);
    }
  }
  return keep;
}

double ScheduledSparsity(double target, uint32_t round, uint32_t rounds, const std::string& curve) {
  if (rounds <= 1 || round >= rounds) return target;
  double f = static_cast<double>(round) / rounds;
  if (curve == "linear") return target * f;
  return target * (1.0 - std::pow(1.0 - f, 3.0));
}

}  // namespace prunelab::worker
