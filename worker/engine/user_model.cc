#include "worker/engine/user_model.h"

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <map>
#include <set>

namespace prunelab::worker {
namespace {

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

const std::set<std::string>& Passthrough() {
  static const std::set<std::string> ops{
      "aten::relu",       "aten::relu_",         "aten::gelu",          "aten::sigmoid",     "aten::tanh",
      "aten::silu",       "aten::leaky_relu",    "aten::hardtanh",      "aten::elu",         "aten::dropout",
      "aten::dropout_",   "aten::feature_dropout", "aten::max_pool2d",  "aten::avg_pool2d",  "aten::adaptive_avg_pool2d",
      "aten::contiguous", "aten::clone",         "aten::batch_norm",    "aten::max_pool1d",  "aten::hardswish"};
  return ops;
}

struct Trace {
  std::vector<Slice> slices;
  std::string error;
  bool reaches_output = false;
  bool flattened = false;
};

class Tracer {
 public:
  Tracer(const torch::jit::Module& m, const std::string& layer) : m_(m), layer_(layer) {}

  void Follow(Value* v, Trace* t) {
    if (!visited_.insert(v).second || !t->error.empty()) return;
    for (const auto& use : v->uses()) {
      Node* n = use.user;
      std::string kind = n->kind().toQualString();
      if (n->kind() == c10::prim::Return) {
        Node* owner = n->owningBlock()->owningNode();
        if (!owner) {
          t->reaches_output = true;
        } else if (owner->kind() == c10::prim::If) {
          Follow(owner->output(use.offset), t);
        } else {
          Fail(t, std::string(owner->kind().toQualString()));
        }
        continue;
      }
      if (kind == "aten::size" || kind == "aten::dim" || kind == "prim::shape" || kind == "aten::len" ||
          kind == "prim::device" || kind == "prim::dtype" || kind == "aten::__isnot__" || kind == "aten::__is__") {
        continue;  // reads shape or identity, not data
      }
      if ((kind == "aten::linear" || kind == "aten::conv2d" || kind == "aten::conv1d") && use.offset == 0) {
        std::string w = AttrPath(n->input(1));
        if (w.empty()) return Fail(t, kind + " with a computed weight");
        consumers_.push_back({w, t->flattened});
        continue;
      }
      if (kind == "aten::batch_norm" && use.offset == 0) {
        std::string w = AttrPath(n->input(1));
        std::string mod = Parent(w);
        for (const char* p : {"weight", "bias", "running_mean", "running_var"})
          if (HasTensor(m_, Join(mod, p))) t->slices.push_back({Join(mod, p), 0, 1, false});
        Follow(n->output(0), t);
        continue;
      }
      if (Passthrough().count(kind) && use.offset == 0) {
        Follow(n->output(0), t);
        continue;
      }
      if ((kind == "aten::flatten" || kind == "aten::view" || kind == "aten::reshape") && use.offset == 0) {
        t->flattened = true;
        Follow(n->output(0), t);
        continue;
      }
      return Fail(t, kind);
    }
  }

  // Consumer weights with whether a flatten happened before them.
  std::vector<std::pair<std::string, bool>> consumers_;

 private:
  void Fail(Trace* t, const std::string& op) {
    t->error = "structured pruning cannot follow " + op + " after layer '" + layer_ +
               "' (followed: linear, conv2d, batch_norm, activations, pooling, dropout, flatten); "
               "use unstructured or N:M granularity for this model";
  }
  const torch::jit::Module& m_;
  std::string layer_;
  std::set<Value*> visited_;
};

}  // namespace

ModelLayout InferLayout(const torch::jit::Module& m) {
  ModelLayout layout;
  std::map<std::string, std::string> weight_of_layer;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) {
    if (p.value.dim() < 2 || !EndsWith(p.name, "weight")) continue;
    std::string name = Parent(p.name).empty() ? p.name : Parent(p.name);
    layout.layers.push_back({name, p.name});
  }
  auto method = m.find_method("forward");
  if (!method) {
    layout.structured_error = "the module has no forward method";
    return layout;
  }
  auto graph = method->graph()->copy();
  torch::jit::Inline(*graph);
  torch::jit::ConstantPropagation(graph);
  for (Node* n : graph->nodes()) {
    std::string kind = n->kind().toQualString();
    if (kind != "aten::linear" && kind != "aten::conv2d" && kind != "aten::conv1d") continue;
    std::string w = AttrPath(n->input(1));
    if (w.empty()) continue;
    std::string layer = Parent(w).empty() ? w : Parent(w);
    Tracer tracer(m, layer);
    Trace t;
    t.slices.push_back({w, 0, 1, true});
    std::string b = AttrPath(n->input(2));
    if (!b.empty()) t.slices.push_back({b, 0, 1, false});
    tracer.Follow(n->output(0), &t);
    if (!t.error.empty()) {
      if (layout.structured_error.empty()) layout.structured_error = t.error;
      continue;
    }
    if (t.reaches_output) continue;  // the model's output layer: its outputs are the classes
    int64_t c = GetTensor(m, w).size(0);
    for (const auto& [cw, flattened] : tracer.consumers_) {
      int64_t in = GetTensor(m, cw).size(1);
      int64_t block = flattened ? in / c : 1;
      if (block * c != in) {
        layout.structured_error = "structured pruning: layer '" + layer + "' has " + std::to_string(c) +
                                  " outputs but its consumer '" + cw + "' reads " + std::to_string(in);
        break;
      }
      t.slices.push_back({cw, 1, block, false});
    }
    if (tracer.consumers_.empty()) continue;
    layout.groups.push_back({layer, kind == "aten::linear" ? "neuron" : "channel", t.slices, {layer}});
  }
  return layout;
}

}  // namespace prunelab::worker
