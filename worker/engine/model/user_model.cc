#include "worker/engine/model/user_model.h"

#include <torch/torch.h>

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <functional>
#include <map>
#include <set>

namespace prunelab::worker {
namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Dotted attribute path of a value read from `self` through prim::GetAttr chains ("" if not).
std::string AttrPath(Value* v) {
  std::vector<std::string> parts;
  while (v->node()->kind() == c10::prim::GetAttr) {
    parts.push_back(v->node()->s(c10::attr::name));
    v = v->node()->input(0);
  }
  if (v->node()->kind() != c10::prim::Param) return "";
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += (out.empty() ? "" : ".") + *it;
  return out;
}

std::string Parent(const std::string& path) {
  auto dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}
std::string Join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
std::string LayerOf(const std::string& weight) { return Parent(weight).empty() ? weight : Parent(weight); }

// Ops that act on each channel separately: a channel's values stay in that channel.
const std::set<std::string>& Elementwise() {
  static const std::set<std::string> ops{
      "aten::relu",        "aten::relu_",       "aten::gelu",        "aten::sigmoid",   "aten::tanh",
      "aten::silu",        "aten::leaky_relu",  "aten::hardtanh",    "aten::elu",       "aten::dropout",
      "aten::dropout_",    "aten::feature_dropout", "aten::max_pool2d", "aten::avg_pool2d", "aten::adaptive_avg_pool2d",
      "aten::contiguous",  "aten::clone",       "aten::max_pool1d",  "aten::hardswish", "aten::relu6"};
  return ops;
}
// Reads of shape or identity, not of data.
const std::set<std::string>& Inert() {
  static const std::set<std::string> ops{"aten::size",   "aten::dim",     "prim::shape", "aten::len",
                                         "prim::device", "prim::dtype",   "aten::__isnot__", "aten::__is__",
                                         "prim::isinstance", "aten::numel"};
  return ops;
}

// Channel spaces: every tensor that carries some producer's output channels belongs to one;
// residual adds merge spaces; a merged space is one structure group.
class Tracer {
 public:
  explicit Tracer(const torch::jit::Module& m) : m_(m) {}

  void Walk(Block* b) {
    for (Node* n : b->nodes()) Visit(n);
  }

  void Finish(Block* top, ModelLayout* layout) {
    for (Value* v : top->outputs())
      if (int s = SpaceOf(v)) output_.insert(Find(s));
    std::map<int, StructureGroup> groups;
    for (auto& [id, sp] : spaces_) {
      int root = Find(id);
      auto& g = groups[root];
      g.slices.insert(g.slices.end(), sp.slices.begin(), sp.slices.end());
      g.layers.insert(g.layers.end(), sp.layers.begin(), sp.layers.end());
      if (!sp.blocked.empty() && blocked_[root].empty()) blocked_[root] = sp.blocked;
    }
    for (auto& [root, g] : groups) {
      if (g.layers.empty() || output_.count(root)) continue;  // no producer, or the model's outputs
      bool consumed = false;
      for (const auto& s : g.slices) consumed |= s.dim == 1;
      if (!consumed && blocked_[root].empty()) continue;
      g.name = g.layers.front();
      g.kind = g.layers.size() > 1 ? "residual" : (kind_[g.layers.front()] == "aten::linear" ? "neuron" : "channel");
      if (!blocked_[root].empty())
        g.blocked = "structured pruning cannot follow " + blocked_[root] + " after layer '" + g.name +
                    "' (followed: linear, conv2d, batch_norm, activations, pooling, dropout, flatten, residual add); "
                    "exclude that layer, or use unstructured or N:M granularity";
      layout->groups.push_back(g);
    }
  }

 private:
  struct Space {
    std::vector<Slice> slices;
    std::vector<std::string> layers;  // producers
    std::string blocked;
    int64_t channels = 0;
  };

  int Find(int s) { return parent_[s] == s ? s : parent_[s] = Find(parent_[s]); }
  int SpaceOf(Value* v) {
    auto it = space_.find(v);
    return it == space_.end() ? 0 : Find(it->second);
  }
  void Union(int a, int b) {
    a = Find(a), b = Find(b);
    if (a != b) parent_[b] = a;
  }
  int NewSpace(int64_t channels) {
    int id = static_cast<int>(spaces_.size()) + 1;
    spaces_[id].channels = channels;
    parent_[id] = id;
    return id;
  }
  // The first op that stops structured pruning of a space (named in the error later).
  void Stop(int s, const std::string& op) {
    if (spaces_[s].blocked.empty()) spaces_[s].blocked = op;
  }

  void Visit(Node* n) {
    std::string kind = n->kind().toQualString();
    for (Block* b : n->blocks()) Walk(b);
    if (n->kind() == c10::prim::If) {
      for (size_t i = 0; i < n->outputs().size(); ++i) {
        int merged = 0;
        for (Block* b : n->blocks())
          if (int s = SpaceOf(b->outputs()[i])) merged ? Union(merged, s) : void(merged = s);
        if (merged) space_[n->output(i)] = merged;
      }
      return;
    }
    if (Inert().count(kind) || n->kind() == c10::prim::GetAttr || n->kind() == c10::prim::Constant) return;
    if ((kind == "aten::linear" || kind == "aten::conv2d" || kind == "aten::conv1d") && n->inputs().size() >= 2) {
      std::string w = AttrPath(n->input(1));
      if (!w.empty()) {
        if (int s = SpaceOf(n->input(0))) {
          int64_t in = GetTensor(m_, w).size(1);
          int64_t c = spaces_[s].channels;
          bool flat = flattened_.count(n->input(0)) > 0;
          int64_t block = flat && c > 0 ? in / c : 1;
          if (block * c != in && c > 0) Stop(s, kind + " reading a reshaped input");
          else spaces_[s].slices.push_back({w, 1, block, false});
        }
        int out = NewSpace(GetTensor(m_, w).size(0));
        std::string layer = LayerOf(w);
        spaces_[out].slices.push_back({w, 0, 1, true});
        std::string b = n->inputs().size() > 2 ? AttrPath(n->input(2)) : "";
        if (!b.empty()) spaces_[out].slices.push_back({b, 0, 1, false});
        spaces_[out].layers.push_back(layer);
        kind_[layer] = kind;
        space_[n->output(0)] = out;
        return;
      }
    }
    int s0 = n->inputs().empty() ? 0 : SpaceOf(n->input(0));
    if (kind == "aten::batch_norm" && s0) {
      std::string mod = Parent(AttrPath(n->input(1)));
      for (const char* p : {"weight", "bias", "running_mean", "running_var"})
        if (HasTensor(m_, Join(mod, p))) spaces_[s0].slices.push_back({Join(mod, p), 0, 1, false});
      space_[n->output(0)] = s0;
      return;
    }
    if (Elementwise().count(kind) && s0) {
      space_[n->output(0)] = s0;
      if (flattened_.count(n->input(0))) flattened_.insert(n->output(0));
      return;
    }
    if ((kind == "aten::flatten" || kind == "aten::view" || kind == "aten::reshape") && s0) {
      space_[n->output(0)] = s0;
      flattened_.insert(n->output(0));
      return;
    }
    if (kind == "aten::add" || kind == "aten::add_" || kind == "aten::sub" || kind == "aten::mul" ||
        kind == "aten::div") {
      int s1 = n->inputs().size() > 1 ? SpaceOf(n->input(1)) : 0;
      bool tensor1 = n->inputs().size() > 1 && n->input(1)->type()->cast<c10::TensorType>();
      if (s0 && s1 && (kind == "aten::add" || kind == "aten::add_")) {
        Union(s0, s1);  // a residual connection: both sides are one channel space
        space_[n->output(0)] = Find(s0);
        return;
      }
      if (s0 && !tensor1) {  // scaling by a scalar keeps channels apart
        space_[n->output(0)] = s0;
        return;
      }
    }
    // Anything else that reads a channel space stops structured pruning of that space
    // (a list of tensors is named by what consumes it, e.g. aten::cat).
    std::string op = kind;
    if ((n->kind() == c10::prim::ListConstruct || n->kind() == c10::prim::TupleConstruct) && n->output()->hasUses())
      op = n->output()->uses()[0].user->kind().toQualString();
    for (Value* in : n->inputs())
      if (int s = SpaceOf(in)) Stop(s, op);
  }

  const torch::jit::Module& m_;
  std::map<int, Space> spaces_;
  std::map<int, int> parent_;
  std::map<Value*, int> space_;
  std::set<Value*> flattened_;
  std::set<int> output_;
  std::map<int, std::string> blocked_;
  std::map<std::string, std::string> kind_;
};

}  // namespace

ModelLayout InferLayout(const torch::jit::Module& m) {
  ModelLayout layout;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) {
    if (p.value.dim() < 2 || !EndsWith(p.name, "weight")) continue;
    layout.layers.push_back({LayerOf(p.name), p.name});
  }
  auto method = m.find_method("forward");
  if (!method) {
    layout.structured_error = "the module has no forward method";
    return layout;
  }
  auto graph = method->graph()->copy();
  // Inline() takes callees' optimized graphs, which stay un-inlined while the graph
  // executor's optimizations are off (as the worker runs); switch them on for this pass.
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  torch::jit::setGraphExecutorOptimize(true);
  torch::jit::Inline(*graph);
  torch::jit::setGraphExecutorOptimize(optimize);
  torch::jit::ConstantPropagation(graph);
  try {
    Tracer t(m);
    t.Walk(graph->block());
    t.Finish(graph->block(), &layout);
  } catch (const c10::Error& e) {
    layout.groups.clear();
    layout.structured_error = std::string("structured pruning: cannot follow this module's graph: ") + e.what_without_backtrace();
  }
  return layout;
}

}  // namespace prunelab::worker
