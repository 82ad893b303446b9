// Tracing a TorchScript module's forward: the graph with every call inlined, the shapes
// each value takes on an example input (a recording op inserted after every tensor), and
// attribute paths of values read from `self`. What groups.cc and depth.cc build on.
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "worker/engine/model/graph.h"

namespace prunelab::worker {
namespace {

// --- shape recording: prunelab::record_shape(x, id) stores x's sizes while a graph runs ---
std::mutex g_record_mu;
std::map<int64_t, Shape>* g_recorded = nullptr;

void RecordShape(const at::Tensor& t, int64_t id) {
  if (g_recorded && !g_recorded->count(id)) (*g_recorded)[id] = t.sizes().vec();
}

TORCH_LIBRARY(prunelab, lib) {
  lib.def(torch::schema("prunelab::record_shape(Tensor x, int id) -> ()", c10::AliasAnalysisKind::CONSERVATIVE),
          &RecordShape);
}


// The forward graph with every call inlined (callees' graphs need the executor's
// optimizations switched on to be inlinable, as the worker runs with them off).
std::shared_ptr<torch::jit::Graph> InlinedForward(const torch::jit::Module& m) {
  auto graph = m.get_method("forward").graph()->copy();
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  torch::jit::setGraphExecutorOptimize(true);
  torch::jit::Inline(*graph);
  torch::jit::setGraphExecutorOptimize(optimize);
  torch::jit::ConstantPropagation(graph);
  return graph;
}

// Inserts prunelab::record_shape after every tensor value (graph inputs included) and runs
// the graph once on `input`; returns the shapes of the values that were computed.
StatusOr<std::map<Value*, Shape>> RecordShapes(const torch::jit::Module& m, torch::jit::Graph& graph,
                                                 const std::vector<c10::IValue>& inputs) {
  std::map<int64_t, Value*> ids;
  std::vector<Value*> targets;
  std::function<void(Block*)> collect = [&](Block* b) {
    for (Value* in : b->inputs())
      if (IsTensor(in)) targets.push_back(in);
    for (Node* n : b->nodes()) {
      for (Block* sub : n->blocks()) collect(sub);
      for (Value* o : n->outputs())
        if (IsTensor(o)) targets.push_back(o);
    }
  };
  collect(graph.block());
  for (Value* v : targets) {
    int64_t id = static_cast<int64_t>(ids.size());
    ids[id] = v;
    Node* anchor = v->node();
    Node* r;
    if (anchor->kind() == c10::prim::Param) {
      torch::jit::WithInsertPoint guard(anchor->owningBlock()->nodes().front());
      Value* c = graph.insertConstant(id);
      r = graph.create(kRecordShape, {v, c}, 0);
      r->insertAfter(c->node());
    } else {
      torch::jit::WithInsertPoint guard(anchor->next());
      Value* c = graph.insertConstant(id);
      r = graph.create(kRecordShape, {v, c}, 0);
      r->insertAfter(c->node());
    }
  }
  std::map<int64_t, Shape> recorded;
  std::lock_guard<std::mutex> lock(g_record_mu);
  g_recorded = &recorded;
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  try {
    torch::NoGradGuard no_grad;
    torch::jit::setGraphExecutorOptimize(false);
    // The executor runs a copy: the recorded ids map back to this graph's values.
    torch::jit::GraphExecutor exec(graph.copy(), "prunelab_layout");
    torch::jit::Stack stack{m._ivalue()};
    stack.insert(stack.end(), inputs.begin(), inputs.end());
    exec.run(stack);
    torch::jit::setGraphExecutorOptimize(optimize);
  } catch (const std::exception& e) {
    torch::jit::setGraphExecutorOptimize(optimize);
    g_recorded = nullptr;
    std::string described;
    for (const auto& in : inputs)
      described += (described.empty() ? "" : ", ") +
                   (in.isTensor() ? std::string(c10::toString(in.toTensor().scalar_type())) + c10::str(in.toTensor().sizes())
                                  : in.tagKind());
    return Status::InvalidArgument("the model did not run on an input of " + described + ": " + e.what());
  }
  g_recorded = nullptr;
  std::map<Value*, Shape> out;
  for (auto& [id, s] : recorded) out[ids[id]] = s;
  return out;
}

}  // namespace

std::shared_ptr<torch::jit::Graph> InlinedForwardGraph(const torch::jit::Module& m) { return InlinedForward(m); }
void InlineGraph(torch::jit::Graph& graph) {
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  torch::jit::setGraphExecutorOptimize(true);
  torch::jit::Inline(graph);
  torch::jit::setGraphExecutorOptimize(optimize);
}
StatusOr<std::map<Value*, Shape>> RecordValueShapes(const torch::jit::Module& m, torch::jit::Graph& graph,
                                                    const std::vector<c10::IValue>& inputs) {
  return RecordShapes(m, graph, inputs);
}

// Dotted attribute path of a value read from `self` through prim::GetAttr chains ("" if not).
// Follows optional reads (`x if cond else None`, unchecked_cast) to the attribute.
std::string AttributePath(Value* v) {
  for (int hops = 0; hops < 8; ++hops) {
    Node* n = v->node();
    if (n->kind() == c10::prim::unchecked_cast) {
      v = n->input(0);
      continue;
    }
    if (n->kind() == c10::prim::If) {
      size_t i = v->offset();
      Value* found = nullptr;
      for (Block* b : n->blocks()) {
        Value* o = b->outputs()[i];
        if (o->node()->kind() == c10::prim::GetAttr || o->node()->kind() == c10::prim::unchecked_cast) found = o;
      }
      if (!found) return "";
      v = found;
      continue;
    }
    break;
  }
  std::vector<std::string> parts;
  while (v->node()->kind() == c10::prim::GetAttr) {
    parts.push_back(v->node()->s(c10::attr::name));
    v = v->node()->input(0);
  }
  if (v->node()->kind() != c10::prim::Param || parts.empty()) return "";
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += (out.empty() ? "" : ".") + *it;
  return out;
}

}  // namespace prunelab::worker
