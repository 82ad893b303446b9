#include "worker/engine/prune/importance.h"

#include <torch/torch.h>

#include <cmath>

namespace prunelab::worker {

StatusOr<Criterion> ParseCriterion(const std::string& n) {
  if (n == "random") return Criterion::kRandom;
  if (n == "l1") return Criterion::kL1;
  if (n == "l2") return Criterion::kL2;
  if (n == "gradient") return Criterion::kGradient;
  if (n == "taylor") return Criterion::kTaylor;
  if (n == "activation") return Criterion::kActivation;
  if (n == "apoz") return Criterion::kApoz;
  if (n == "wanda") return Criterion::kWanda;
  if (n == "sparsegpt") return Criterion::kSparseGpt;
  return Status::InvalidArgument("criterion '" + n + "' not implemented (have: random, l1, l2, gradient, taylor, activation, apoz, wanda, sparsegpt)");
}

bool NeedsGradients(Criterion c) { return c == Criterion::kGradient || c == Criterion::kTaylor; }
bool ScoresActivations(Criterion c) { return c == Criterion::kActivation || c == Criterion::kApoz; }

StatusOr<std::map<std::string, torch::Tensor>> ActivationScores(torch::jit::Module& m, const ModelLayout& layout,
                                                                const LearningTask& task, const Dataset& calibration,
                                                                int batches,
                                                                int batch_size, bool apoz) {
  if (!layout.has_probe || !m.find_method("probe"))
    return Status::InvalidArgument("activation-based criteria need the model's probe() method (built-in zoo models "
                                   "have one); use l1, l2, gradient or taylor for this model");
  torch::NoGradGuard g;
  m.train(false);
  std::vector<torch::Tensor> acc(layout.groups.size());
  const int64_t n = calibration.size();
  for (int b = 0; b < batches; ++b) {
    int64_t start = (static_cast<int64_t>(b) * batch_size) % std::max<int64_t>(1, n);
    int64_t end = std::min(n, start + batch_size);
    if (end <= start) break;
    auto acts = m.get_method("probe")(task.Range(calibration, start, end).inputs).toTensorVector();
    if (acts.size() != layout.groups.size())
      return Status::Internal("probe() returned " + std::to_string(acts.size()) + " activations for " +
                              std::to_string(layout.groups.size()) + " structure groups");
    for (size_t i = 0; i < acts.size(); ++i) {
      auto a = acts[i].detach().transpose(0, 1).reshape({acts[i].size(1), -1});  // [S, everything else]
      auto s = apoz ? (a != 0).to(torch::kFloat32).mean(1) : a.abs().mean(1);
      acc[i] = acc[i].defined() ? acc[i] + s : s;
    }
  }
  std::map<std::string, torch::Tensor> out;
  for (size_t i = 0; i < layout.groups.size(); ++i)
    if (acc[i].defined()) out[layout.groups[i].name] = acc[i] / batches;
  return out;
}

Scores AccumulateAbsGradients(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                              const Dataset& calibration, int batches, int batch_size) {
  Scores acc;
  for (const auto& l : layout.layers) acc[l.weight] = torch::zeros_like(GetTensor(m, l.weight)).detach();
  m.train(false);
  for (auto p : m.parameters()) p.set_requires_grad(true);
  const int64_t n = calibration.size();
  for (int b = 0; b < batches; ++b) {
    int64_t start = (static_cast<int64_t>(b) * batch_size) % std::max<int64_t>(1, n);
    int64_t end = std::min(n, start + batch_size);
    if (end <= start) break;
    Batch batch = task.Range(calibration, start, end);
    auto loss = task.Loss(m.forward(batch.inputs).toTensor(), batch.targets);
    for (auto p : m.parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    loss.backward();
    torch::NoGradGuard g;
    for (auto& [name, a] : acc) {
      auto grad = GetTensor(m, name).grad();
      if (grad.defined()) a.add_(grad.abs());
    }
  }
  for (auto p : m.parameters())
    if (p.grad().defined()) p.mutable_grad().reset();
  return acc;
}

StatusOr<Scores> WeightScores(const torch::jit::Module& m, const ModelLayout& layout, Criterion c, const Scores* grads,
                              uint64_t seed) {
  torch::NoGradGuard g;
  if (NeedsGradients(c) && !grads) return Status::Internal("gradient-based criterion without gradients");
  Scores out;
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& name : layout.WeightParams()) {
    auto w = GetTensor(m, name).detach();
    switch (c) {
      case Criterion::kRandom: out[name] = torch::rand(w.sizes(), gen); break;
      case Criterion::kL1: out[name] = w.abs(); break;
      case Criterion::kL2: out[name] = w.square(); break;
      case Criterion::kGradient: out[name] = grads->at(name).clone(); break;
      case Criterion::kTaylor: out[name] = (w * grads->at(name)).abs(); break;
      case Criterion::kActivation:
      case Criterion::kApoz: out[name] = w.abs(); break;  // per-weight fallback; structures use ActivationScores
    }
  }
  return out;
}

torch::Tensor MaskFromScores(const torch::Tensor& scores, double sparsity) {
  torch::NoGradGuard g;
  auto flat = scores.detach().flatten();
  int64_t k = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(flat.numel())));
  auto mask = torch::ones({flat.numel()}, torch::kFloat32);
  if (k > 0) {
    auto order = std::get<1>(flat.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
    mask.index_fill_(0, order.slice(0, 0, k), 0.0);
  }
  return mask.view(scores.sizes());
}

torch::Tensor RowMaskFromScores(const torch::Tensor& scores, double sparsity) {
  torch::NoGradGuard g;
  auto rows = scores.detach().reshape({scores.size(0), -1});
  const int64_t k = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(rows.size(1))));
  auto mask = torch::ones(rows.sizes(), torch::kFloat32);
  if (k > 0) {
    auto order = std::get<1>(rows.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
    mask.scatter_(1, order.slice(1, 0, k), 0.0);
  }
  return mask.view(scores.sizes());
}

StatusOr<torch::Tensor> NmMask(const torch::Tensor& scores, int n, int m) {
  if (!(n > 0 && n < m)) return Status::InvalidArgument("N:M needs 0 < N < M, got " + std::to_string(n) + ":" + std::to_string(m));
  torch::NoGradGuard g;
  auto rows = scores.detach().reshape({scores.size(0), -1});
  if (rows.size(1) % m != 0)
    return Status::InvalidArgument("row length " + std::to_string(rows.size(1)) + " is not a multiple of M=" + std::to_string(m));
  auto groups = rows.reshape({rows.size(0), rows.size(1) / m, m});
  auto top = std::get<1>(groups.topk(n, /*dim=*/2, /*largest=*/true, /*sorted=*/true));
  auto mask = torch::zeros_like(groups, torch::kFloat32).scatter_(2, top, 1.0);
  return mask.view(scores.sizes());
}

torch::Tensor ChannelScores(const torch::Tensor& weight_scores) {
  return weight_scores.detach().reshape({weight_scores.size(0), -1}).sum(1);
}

torch::Tensor ChannelsToKeep(const torch::Tensor& channel_scores, double sparsity) {
  int64_t c = channel_scores.size(0);
  int64_t keep = std::max<int64_t>(1, std::llround((1.0 - sparsity) * static_cast<double>(c)));
  auto order = std::get<1>(channel_scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  return std::get<0>(order.slice(0, 0, keep).sort());
}

}  // namespace prunelab::worker
