// Shared pieces of the graph passes over TorchScript modules (trace.cc, groups.cc,
// rewrite.cc, depth.cc).
// LibTorch header: engine-internal.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "worker/engine/model/model.h"

namespace prunelab::worker {

// The IR names every graph pass uses.
using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;
using Shape = std::vector<int64_t>;

// A copy of the module's forward graph with every call inlined and constants propagated.
std::shared_ptr<torch::jit::Graph> InlinedForwardGraph(const torch::jit::Module& m);
// Inlines `graph` (the forward's own, or a copy) in place.
void InlineGraph(torch::jit::Graph& graph);
// Runs `graph` once on `inputs` (the module as `self`) with a recording op after every tensor
// value; the shapes of the values that were computed. Inserts the recording nodes into
// `graph`: pass a copy.
StatusOr<std::map<torch::jit::Value*, std::vector<int64_t>>> RecordValueShapes(const torch::jit::Module& m,
                                                                                 torch::jit::Graph& graph,
                                                                                 const std::vector<c10::IValue>& inputs);
// The op RecordValueShapes inserts after every tensor value (passes over such a graph skip it).
inline const c10::Symbol kRecordShape = c10::Symbol::fromQualString("prunelab::record_shape");
// Reads of the module's configuration (bool, int, float attributes other than `training`
// unless fold_training, and none the graph assigns) become constants, and constants are
// propagated: `if self.use_res_connect:` and `if self.downsample is not None:` leave
// straight-line code. (depth.cc)
void FoldModuleConfiguration(const torch::jit::Module& m, std::shared_ptr<torch::jit::Graph>& g, bool fold_training);
// Every node of `b` and of the blocks nested in it, in order.
std::vector<torch::jit::Node*> AllNodes(torch::jit::Block* b);
// Dotted path of a value read from `self` through prim::GetAttr chains ("" if it is not one).
std::string AttributePath(torch::jit::Value* v);

inline bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
// "a.b" of "a.b.c"; "" for a name without a dot.
inline std::string Parent(const std::string& path) {
  auto dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}
// The module path of a parameter ("layer1.0.conv1" of "layer1.0.conv1.weight").
inline std::string LayerOf(const std::string& weight) { return Parent(weight).empty() ? weight : Parent(weight); }
inline bool IsTensor(torch::jit::Value* v) { return v->type()->cast<c10::TensorType>() != nullptr; }

}  // namespace prunelab::worker
