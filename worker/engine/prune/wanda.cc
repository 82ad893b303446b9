// Calibration criteria for language models, on statistics of what each layer sees:
// Wanda (Sun et al. 2023): a weight's score is |W_ij| * ||X_j||_2, the norm of its input
// feature over the calibration tokens; SparseGPT (Frantar & Alistarh 2023): per linear layer
// H = 2 X X^T, the mask from w^2 / [H^-1]_cc^2 and the kept weights updated through the inverse
// Hessian's Cholesky factor. The statistics are gathered by a hook the engine inserts into the
// model's inlined forward graph before every linear and convolution whose weight is a prunable
// layer (not by a hand-written probe), so users' models are calibrated like the zoo's.
#include <torch/torch.h>

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/library.h>

#include <mutex>
#include <set>

#include "worker/engine/model/graph.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/prune/pruning.h"

namespace prunelab::worker {
namespace {

// While a calibration graph runs: id -> sum over every position of x_j^2 (float64: a sum of
// hundreds of thousands of squares), and the positions seen.
std::mutex g_calibration_mu;
std::map<int64_t, at::Tensor>* g_sums = nullptr;
bool g_gram = false;  // accumulate X^T X [in, in] (SparseGPT) instead of per-feature squares

void AccumulateSquares(const at::Tensor& x, int64_t id, int64_t dim) {
  if (!g_sums) return;
  if (g_gram) {
    if (dim != -1) return;  // convolutions: no Hessian here (SparseGPT runs on linear layers)
    auto rows = x.detach().to(at::kDouble).reshape({-1, x.size(-1)});
    auto& acc = (*g_sums)[id];
    auto g = rows.t().matmul(rows);
    acc = acc.defined() ? acc + g : g;
    return;
  }
  auto t = x.detach().to(at::kDouble);
  const int64_t d = dim < 0 ? t.dim() + dim : dim;
  std::vector<int64_t> others;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (i != d) others.push_back(i);
  auto s = others.empty() ? t.pow(2) : t.pow(2).sum(others);
  auto& acc = (*g_sums)[id];
  acc = acc.defined() ? acc + s : s;
}

TORCH_LIBRARY_FRAGMENT(prunelab, lib) {
  lib.def(torch::schema("prunelab::accumulate_squares(Tensor x, int id, int dim) -> ()",
                        c10::AliasAnalysisKind::CONSERVATIVE),
          &AccumulateSquares);
}

// The feature axis of a layer's input: the last for linear, the channels for convolutions.
std::optional<int64_t> FeatureDim(const Node* n) {
  const std::string k = n->kind().toQualString();
  if (k == "aten::linear") return -1;
  if (k == "aten::conv1d" || k == "aten::conv2d" || k == "aten::conv3d" || k == "aten::_convolution") return 1;
  return std::nullopt;
}

}  // namespace

namespace {
// Runs the calibration batches through the forward graph with the hooks in; id -> the
// accumulated statistic, the layer of each id, and the samples run.
Status RunCalibration(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                      const Dataset& calibration, int batches, int batch_size, bool gram,
                      std::map<int64_t, at::Tensor>* sums, std::map<int64_t, std::string>* ids, int64_t* samples) {
  auto graph = InlinedForwardGraph(m);
  std::set<std::string> prunable;
  for (const auto& l : layout.layers) prunable.insert(l.weight);
  static const c10::Symbol kAccumulate = c10::Symbol::fromQualString("prunelab::accumulate_squares");
  std::map<int64_t, std::string>& layer_of = *ids;
  for (Node* n : AllNodes(graph->block())) {
    auto dim = FeatureDim(n);
    if (!dim || n->inputs().size() < 2) continue;
    const std::string weight = AttributePath(n->input(1));
    if (!prunable.count(weight)) continue;
    const int64_t id = static_cast<int64_t>(layer_of.size());
    layer_of[id] = weight;
    torch::jit::WithInsertPoint guard(n);
    Value* idc = graph->insertConstant(id);
    Value* dc = graph->insertConstant(*dim);
    graph->create(kAccumulate, {n->input(0), idc, dc}, 0)->insertBefore(n);
  }
  if (layer_of.empty()) return Status::Ok();
  torch::NoGradGuard no_grad;
  const bool was_training = m.is_training();
  m.train(false);
  std::lock_guard<std::mutex> lock(g_calibration_mu);
  g_sums = sums;
  g_gram = gram;
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  try {
    torch::jit::setGraphExecutorOptimize(false);
    torch::jit::GraphExecutor exec(graph, "prunelab_calibration");
    const int64_t n = calibration.size();
    for (int b = 0; b < batches; ++b) {
      const int64_t start = (static_cast<int64_t>(b) * batch_size) % std::max<int64_t>(1, n);
      const int64_t end = std::min(n, start + batch_size);
      if (end <= start) break;
      Batch batch = task.Range(calibration, start, end);
      torch::jit::Stack stack{m._ivalue()};
      stack.insert(stack.end(), batch.inputs.begin(), batch.inputs.end());
      exec.run(stack);
      *samples += end - start;
    }
  } catch (const std::exception& e) {
    torch::jit::setGraphExecutorOptimize(optimize);
    g_sums = nullptr;
    m.train(was_training);
    return Status::InvalidArgument(std::string("calibration: the model did not run on its calibration batches: ") + e.what());
  }
  torch::jit::setGraphExecutorOptimize(optimize);
  g_sums = nullptr;
  m.train(was_training);
  return Status::Ok();
}
}  // namespace

StatusOr<InputNorms> CalibrateInputNorms(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                         const Dataset& calibration, int batches, int batch_size) {
  InputNorms out;
  std::map<int64_t, at::Tensor> sums;
  std::map<int64_t, std::string> ids;
  PRUNELAB_RETURN_IF_ERROR(
      RunCalibration(m, layout, task, calibration, batches, batch_size, false, &sums, &ids, &out.samples));
  for (const auto& [id, s] : sums) {
    auto& norm = out.norms[ids[id]];
    auto v = s.sqrt().to(at::kFloat);
    norm = norm.defined() ? (norm.pow(2) + v.pow(2)).sqrt() : v;  // a weight read twice: both uses
  }
  return out;
}

StatusOr<std::map<std::string, torch::Tensor>> HookedActivationScores(torch::jit::Module& m, const ModelLayout& layout,
                                                                      const LearningTask& task,
                                                                      const Dataset& calibration, int batches,
                                                                      int batch_size,
                                                                      std::vector<std::string>* magnitude_only,
                                                                      int64_t* samples) {
  auto in = CalibrateInputNorms(m, layout, task, calibration, batches, batch_size);
  if (!in.ok()) return in.status();
  if (samples) *samples = in->samples;
  torch::NoGradGuard g;
  // GroupScores sums the scored slices of a group per structure: here the consumers' input
  // columns, each scored by its calibration energy (a [1, in] row: nothing else to sum).
  std::map<std::string, torch::Tensor> energy;
  for (const auto& [param, norm] : in->norms) energy[param] = norm.to(torch::kFloat32).pow(2).view({1, -1});
  std::map<std::string, torch::Tensor> out;
  for (const auto& grp : layout.groups) {
    if (!grp.blocked.empty()) continue;
    StructureGroup consumers = grp;
    bool any = false;
    for (auto& s : consumers.slices) {
      auto it = energy.find(s.param);
      const int64_t width = it == energy.end() ? -1 : it->second.size(1);
      s.score = !s.score && s.dim == 1 && width == GetTensor(m, s.param).size(1) &&
                (s.map.empty() ? s.block > 0 && width % s.block == 0 : static_cast<int64_t>(s.map.size()) == width);
      any |= s.score;
    }
    if (!any && magnitude_only) magnitude_only->push_back(grp.name);
    out[grp.name] = any ? GroupScores(m, consumers, energy) : GroupScores(m, grp, {});
  }
  return out;
}

StatusOr<Scores> WandaScores(const torch::jit::Module& m, const ModelLayout& layout, const InputNorms& in,
                             std::vector<std::string>* magnitude_only) {
  torch::NoGradGuard g;
  Scores out;
  for (const auto& l : layout.layers) {
    auto w = GetTensor(m, l.weight).detach().abs().to(at::kFloat);
    auto it = in.norms.find(l.weight);
    if (it == in.norms.end() || w.dim() < 2 || w.size(1) != it->second.numel()) {
      // Not reached by the calibration batches, or a grouped convolution: magnitude.
      if (magnitude_only) magnitude_only->push_back(l.name);
      out[l.weight] = w;
      continue;
    }
    std::vector<int64_t> shape(w.dim(), 1);
    shape[1] = w.size(1);
    out[l.weight] = w * it->second.view(shape);
  }
  return out;
}

StatusOr<InputGrams> CalibrateInputGrams(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                         const Dataset& calibration, int batches, int batch_size) {
  InputGrams out;
  std::map<int64_t, at::Tensor> sums;
  std::map<int64_t, std::string> ids;
  PRUNELAB_RETURN_IF_ERROR(
      RunCalibration(m, layout, task, calibration, batches, batch_size, true, &sums, &ids, &out.samples));
  for (const auto& [id, g] : sums) {
    auto& h = out.grams[ids[id]];
    h = h.defined() ? h + g : g;  // a weight read twice: both uses
  }
  return out;
}

StatusOr<SparseGptLayer> SparseGpt(const torch::Tensor& weight, const torch::Tensor& gram, double sparsity, int nm_n,
                                   int nm_m, int64_t block, double damp_fraction) {
  torch::NoGradGuard g;
  if (weight.dim() != 2 || gram.dim() != 2 || gram.size(0) != weight.size(1))
    return Status::InvalidArgument("sparsegpt: a linear weight [out, in] and its [in, in] Hessian are needed");
  const int64_t cols = weight.size(1);
  if (nm_m > 0 && cols % nm_m != 0)
    return Status::InvalidArgument("sparsegpt: " + std::to_string(cols) + " inputs are not a multiple of M = " +
                                   std::to_string(nm_m));
  auto W = weight.detach().to(at::kDouble).clone();
  auto H = (2.0 * gram.to(at::kDouble)).clone();  // H = 2 X X^T
  // Dead inputs (never non-zero on the calibration data): their weights do nothing there; the
  // paper sets H_cc = 1 and the weights to 0.
  auto dead = H.diagonal() == 0;
  SparseGptLayer out;
  out.dead_inputs = dead.sum().item<int64_t>();
  if (out.dead_inputs) {
    H.diagonal().masked_fill_(dead, 1.0);
    W.index_put_({torch::indexing::Slice(), dead}, 0.0);
  }
  // Dampening: damp_fraction of the mean diagonal, raised tenfold until the Cholesky
  // factorization succeeds (a Hessian that is only semi-definite: llm-compressor #142).
  const double mean_diag = H.diagonal().mean().item<double>();
  at::Tensor Hinv;
  double damp = damp_fraction > 0 ? damp_fraction : 1e-8;
  for (; damp <= 1.0 * (1 + 1e-9); damp *= 10) {
    auto Hd = H.clone();
    Hd.diagonal().add_(damp * mean_diag);
    auto [L, info] = at::linalg_cholesky_ex(Hd);
    if (info.item<int64_t>() != 0) continue;
    auto inv = at::cholesky_inverse(L);
    auto [U, info2] = at::linalg_cholesky_ex(inv, /*upper=*/true);
    if (info2.item<int64_t>() != 0) continue;
    Hinv = U;
    out.damp = damp;
    break;
  }
  if (!Hinv.defined())
    return Status::InvalidArgument("sparsegpt: the Hessian is not positive definite even dampened by its mean "
                                   "diagonal (the calibration data may hold NaN or Inf)");
  auto mask = torch::zeros_like(W, at::kBool);  // true = pruned
  const auto original = W.clone();
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(cols, i1 + block), count = i2 - i1;
    auto W1 = W.slice(1, i1, i2).clone();
    auto Q1 = torch::zeros_like(W1);
    auto Err1 = torch::zeros_like(W1);
    auto Hinv1 = Hinv.slice(0, i1, i2).slice(1, i1, i2);
    auto M1 = torch::zeros_like(W1, at::kBool);
    auto d1 = Hinv1.diagonal();
    if (nm_m == 0) {
      auto tmp = W1.pow(2) / d1.pow(2).view({1, -1});
      const int64_t k = static_cast<int64_t>(static_cast<double>(tmp.numel()) * sparsity);
      if (k > 0) {
        auto thresh = std::get<0>(tmp.flatten().sort()).index({k - 1});
        M1 = tmp <= thresh;
      }
    }
    for (int64_t i = 0; i < count; ++i) {
      auto w = W1.select(1, i);
      const double d = Hinv1.index({i, i}).item<double>();
      if (nm_m > 0 && i % nm_m == 0) {
        auto tmp = W1.slice(1, i, i + nm_m).pow(2) / d1.slice(0, i, i + nm_m).pow(2).view({1, -1});
        auto low = std::get<1>(tmp.topk(nm_m - nm_n, 1, /*largest=*/false));
        M1.slice(1, i, i + nm_m).scatter_(1, low, true);
      }
      auto q = w.clone().masked_fill_(M1.select(1, i), 0.0);
      Q1.select(1, i).copy_(q);
      auto err = (w - q) / d;
      W1.slice(1, i).sub_(err.unsqueeze(1).matmul(Hinv1.index({i}).slice(0, i).unsqueeze(0)));
      Err1.select(1, i).copy_(err);
    }
    W.slice(1, i1, i2).copy_(Q1);
    mask.slice(1, i1, i2).copy_(M1);
    if (i2 < cols) W.slice(1, i2).sub_(Err1.matmul(Hinv.slice(0, i1, i2).slice(1, i2)));
  }
  // Reconstruction error on the calibration data: ||(W - W') X||^2 / ||W X||^2, from H.
  auto delta = original - W;
  const double num = (delta.matmul(H).mul(delta)).sum().item<double>();
  const double den = (original.matmul(H).mul(original)).sum().item<double>();
  out.relative_error = den > 0 ? num / den : 0;
  out.weight = W.to(weight.scalar_type());
  out.mask = (~mask).to(at::kFloat);
  return out;
}

StatusOr<CalibratedPrune> PruneSequentially(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                            const Dataset& calibration, int batches, int batch_size, bool sparsegpt,
                                            double sparsity, const PlanOptions& opts, int nm_n, int nm_m,
                                            const Masks& previous, int64_t block,
                                            const std::function<void(const std::string&, double)>& progress) {
  CalibratedPrune out;
  size_t done = 0;
  for (const auto& l : layout.layers) {
    if (progress) progress(l.name, static_cast<double>(done++) / layout.layers.size());
    if (opts.exclude.count(l.name)) continue;
    ModelLayout one;
    one.layers = {l};
    CalibratedLayer report{l.name};
    auto weight = GetTensor(m, l.weight);
    if (nm_m > 0 && (weight.dim() < 2 || (weight.numel() / weight.size(0)) % nm_m != 0)) {
      report.left_dense = true;  // as PlanMasks does: a row that cannot hold the pattern stays dense
      out.layers.push_back(report);
      continue;
    }
    if (sparsegpt) {
      // This layer's Hessian on the model as it is now: every earlier layer already pruned and
      // reconstructed.
      auto grams = CalibrateInputGrams(m, one, task, calibration, batches, batch_size);
      if (!grams.ok()) return grams.status();
      out.samples = std::max(out.samples, grams->samples);
      auto it = grams->grams.find(l.weight);
      if (it != grams->grams.end() && weight.dim() == 2) {
        out.peak_statistic_bytes = std::max<int64_t>(out.peak_statistic_bytes, it->second.numel() * it->second.element_size());
        const double s = opts.overrides.count(l.name) ? opts.overrides.at(l.name) : sparsity;
        auto pruned = SparseGpt(weight, it->second, s, nm_n, nm_m, block);
        if (!pruned.ok()) return Status::InvalidArgument(l.name + ": " + pruned.status().message());
        {
          torch::NoGradGuard g;
          SetTensor(m, l.weight, pruned->weight);
        }
        out.masks[l.weight] = pruned->mask;
        report.relative_error = pruned->relative_error;
        report.damp = pruned->damp;
        report.dead_inputs = pruned->dead_inputs;
        out.layers.push_back(report);
        continue;
      }
      report.not_reached = true;  // not a linear layer's input (an embedding table, a convolution): stays dense
      out.layers.push_back(report);
      continue;
    } else {
      auto norms = CalibrateInputNorms(m, one, task, calibration, batches, batch_size);
      if (!norms.ok()) return norms.status();
      out.samples = std::max(out.samples, norms->samples);
      for (const auto& [w, n] : norms->norms)
        out.peak_statistic_bytes = std::max<int64_t>(out.peak_statistic_bytes, n.numel() * n.element_size());
      if (!norms->norms.count(l.weight)) {
        report.not_reached = true;  // read by no linear or convolution (an embedding table): stays dense
        out.layers.push_back(report);
        continue;
      }
      std::vector<std::string> magnitude_only;
      auto scores = WandaScores(m, one, norms.value(), &magnitude_only);
      if (!scores.ok()) return scores.status();
      report.magnitude = !magnitude_only.empty();
      auto planned = PlanMasks(one, scores.value(), sparsity, opts, nm_n, nm_m, previous);
      if (!planned.ok()) return planned.status();
      for (auto& [w, mask] : planned.value()) out.masks[w] = mask;
    }
    // Pruned now, so the layers after it are calibrated on what it outputs pruned.
    Masks mine;
    if (out.masks.count(l.weight)) mine[l.weight] = out.masks.at(l.weight);
    ApplyMasks(m, mine);
    out.layers.push_back(report);
  }
  if (out.masks.empty() && nm_m == 0)
    return Status::InvalidArgument("no prunable layer's input was reached by the calibration (these criteria prune "
                                   "the weights of linear layers and convolutions)");
  if (out.masks.empty())
    return Status::InvalidArgument("no layer of this model can hold a " + std::to_string(nm_n) + ":" +
                                   std::to_string(nm_m) + " pattern (rows must be a multiple of " + std::to_string(nm_m) +
                                   ")");
  return out;
}

}  // namespace prunelab::worker
