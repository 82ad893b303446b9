// Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for Large Language
// Models"): a weight's score is |W_ij| * ||X_j||_2, the norm of its input feature over the
// calibration tokens. The norms are gathered by a hook the engine inserts into the model's
// inlined forward graph before every linear and convolution whose weight is a prunable layer
// (not by a hand-written probe), so users' models are calibrated like the zoo's.
#include <torch/torch.h>

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/library.h>

#include <mutex>
#include <set>

#include "worker/engine/model/graph.h"
#include "worker/engine/prune/importance.h"

namespace prunelab::worker {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// While a calibration graph runs: id -> sum over every position of x_j^2 (float64: a sum of
// hundreds of thousands of squares), and the positions seen.
std::mutex g_calibration_mu;
std::map<int64_t, at::Tensor>* g_sums = nullptr;

void AccumulateSquares(const at::Tensor& x, int64_t id, int64_t dim) {
  if (!g_sums) return;
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

StatusOr<InputNorms> CalibrateInputNorms(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                         const Dataset& calibration, int batches, int batch_size) {
  auto graph = InlinedForwardGraph(m);
  std::set<std::string> prunable;
  for (const auto& l : layout.layers) prunable.insert(l.weight);
  static const c10::Symbol kAccumulate = c10::Symbol::fromQualString("prunelab::accumulate_squares");
  std::map<int64_t, std::string> ids;
  for (Node* n : AllNodes(graph->block())) {
    auto dim = FeatureDim(n);
    if (!dim || n->inputs().size() < 2) continue;
    const std::string weight = AttributePath(n->input(1));
    if (!prunable.count(weight)) continue;
    const int64_t id = static_cast<int64_t>(ids.size());
    ids[id] = weight;
    torch::jit::WithInsertPoint guard(n);
    Value* idc = graph->insertConstant(id);
    Value* dc = graph->insertConstant(*dim);
    graph->create(kAccumulate, {n->input(0), idc, dc}, 0)->insertBefore(n);
  }
  InputNorms out;
  if (ids.empty()) return out;
  torch::NoGradGuard no_grad;
  const bool was_training = m.is_training();
  m.train(false);
  std::map<int64_t, at::Tensor> sums;
  std::lock_guard<std::mutex> lock(g_calibration_mu);
  g_sums = &sums;
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
      out.samples += end - start;
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
  for (const auto& [id, s] : sums) {
    auto& norm = out.norms[ids[id]];
    auto v = s.sqrt().to(at::kFloat);
    norm = norm.defined() ? (norm.pow(2) + v.pow(2)).sqrt() : v;  // a weight read twice: both uses
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

}  // namespace prunelab::worker
