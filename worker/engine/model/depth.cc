#include "worker/engine/model/depth.h"

#include <torch/torch.h>

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "worker/engine/model/graph.h"

namespace prunelab::worker {
namespace {

void CollectNodes(Block* b, std::vector<Node*>* out) {
  for (Node* n : b->nodes()) {
    out->push_back(n);
    for (Block* sub : n->blocks()) CollectNodes(sub, out);
  }
}

bool CarriesTensor(const c10::TypePtr& t) {
  if (t->cast<c10::TensorType>()) return true;
  for (const auto& c : t->containedTypes())
    if (CarriesTensor(c)) return true;
  return false;
}

// One residual add: where it is (indices into the top block) and what it owns.
struct Branch {
  size_t add = 0;
  int64_t shortcut_node = -1;  // -1: a graph input
  size_t shortcut_offset = 0;
  bool identity = true;
  std::set<size_t> nodes;      // what only the branch computes
  std::set<std::string> params;
  int64_t weights = 0;
  int64_t weight_tensors = 0;
  std::string block;
};

struct Analysis {
  std::shared_ptr<Graph> graph;
  std::vector<Node*> top;  // the top block's nodes, in order
  std::vector<Branch> branches;
  std::vector<DepthBlock> blocks;
};

std::string CommonPrefix(const std::set<std::string>& params) {
  // The module path shared by every tensor, else their common characters up to a separator.
  std::vector<std::string> common;
  bool first = true;
  for (const auto& p : params) {
    std::vector<std::string> parts;
    for (size_t start = 0, dot = 0; start <= p.size(); start = dot + 1) {
      dot = p.find('.', start);
      if (dot == std::string::npos) dot = p.size();
      parts.push_back(p.substr(start, dot - start));
    }
    parts.pop_back();  // the tensor's own name
    if (first) {
      common = parts;
      first = false;
    } else {
      size_t k = 0;
      while (k < common.size() && k < parts.size() && common[k] == parts[k]) ++k;
      common.resize(k);
    }
  }
  std::string out;
  for (const auto& c : common) out += (out.empty() ? "" : ".") + c;
  if (!out.empty() || params.empty()) return out;
  std::string chars = *params.begin();
  for (const auto& p : params) {
    size_t k = 0;
    while (k < chars.size() && k < p.size() && chars[k] == p[k]) ++k;
    chars.resize(k);
  }
  while (!chars.empty() && (chars.back() == '_' || chars.back() == '.')) chars.pop_back();
  return chars;
}

StatusOr<Analysis> Analyze(const torch::jit::Module& m, std::shared_ptr<Graph> g, const LearningTask& task) {
  Analysis a;
  FoldModuleConfiguration(m, g, /*fold_training=*/false);
  a.graph = g;
  Block* top = g->block();
  for (Node* n : top->nodes()) a.top.push_back(n);
  std::map<Node*, size_t> index;
  for (size_t i = 0; i < a.top.size(); ++i) index[a.top[i]] = i;

  // Shapes, from a copy (the recording op goes there); its nodes line up with ours.
  std::map<Value*, Shape> shapes;
  {
    auto copy = g->copy();
    std::vector<Node*> ctop;
    for (Node* n : copy->block()->nodes()) ctop.push_back(n);
    torch::jit::Module runner = m;
    if (m.is_training()) {
      runner = CloneModule(m);
      runner.eval();
    }
    auto rec = RecordValueShapes(runner, *copy, task.ExampleInputs(2));
    if (!rec.ok()) return rec.status();
    for (size_t i = 0; i < a.top.size() && i < ctop.size(); ++i)
      for (size_t j = 0; j < a.top[i]->outputs().size(); ++j) {
        auto it = rec->find(ctop[i]->output(j));
        if (it != rec->end()) shapes[a.top[i]->output(j)] = it->second;
      }
    for (size_t k = 0; k < g->inputs().size(); ++k) {
      auto it = rec->find(copy->inputs()[k]);
      if (it != rec->end()) shapes[g->inputs()[k]] = it->second;
    }
  }

  // Per top node: the top nodes whose values it reads (its sub-blocks included), and
  // whether it depends on the model's input.
  const size_t n = a.top.size();
  std::vector<std::vector<size_t>> deps(n);
  std::vector<bool> from_input(n, false);
  std::vector<std::vector<Value*>> reads(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<Node*> inner{a.top[i]};
    for (Block* sub : a.top[i]->blocks()) CollectNodes(sub, &inner);
    for (Node* x : inner)
      for (Value* v : x->inputs()) {
        if (v->node()->owningBlock() != top && v->node()->kind() != c10::prim::Param) {
          if (v->node()->kind() == c10::prim::GetAttr) reads[i].push_back(v);  // a tensor read inside an if
          continue;
        }
        reads[i].push_back(v);
        if (v->node()->kind() == c10::prim::Param) {
          if (v->offset() > 0) from_input[i] = true;  // input 0 is self
          continue;
        }
        auto it = index.find(v->node());
        if (it == index.end()) continue;
        deps[i].push_back(it->second);
        if (from_input[it->second]) from_input[i] = true;
      }
  }
  auto depends_on_input = [&](Value* v) {
    if (v->node()->kind() == c10::prim::Param) return v->offset() > 0;
    auto it = index.find(v->node());
    return it != index.end() && from_input[it->second];
  };
  auto ancestors = [&](Value* v) {
    std::set<size_t> out;
    auto it = index.find(v->node());
    if (it == index.end()) return out;
    std::vector<size_t> stack{it->second};
    while (!stack.empty()) {
      size_t k = stack.back();
      stack.pop_back();
      if (!out.insert(k).second) continue;
      for (size_t d : deps[k]) stack.push_back(d);
    }
    return out;
  };
  auto top_of = [&](Node* x) {
    while (x->owningBlock() != top) x = x->owningBlock()->owningNode();
    return x;
  };

  for (size_t i = 0; i < n; ++i) {
    Node* add = a.top[i];
    const std::string kind = add->kind().toQualString();
    if ((kind != "aten::add" && kind != "aten::add_") || add->inputs().size() != 3) continue;
    auto alpha = torch::jit::toIValue(add->input(2));
    if (!alpha || !((alpha->isInt() && alpha->toInt() == 1) || (alpha->isDouble() && alpha->toDouble() == 1.0))) continue;
    Value* x = add->input(0);
    Value* y = add->input(1);
    if (!x->type()->cast<c10::TensorType>() || !y->type()->cast<c10::TensorType>()) continue;
    if (!depends_on_input(x) || !depends_on_input(y)) continue;
    auto sx = shapes.find(x), sy = shapes.find(y), so = shapes.find(add->output());
    if (sx == shapes.end() || sy == shapes.end() || so == shapes.end() || sx->second != sy->second ||
        sx->second != so->second)
      continue;
    std::set<size_t> ax = ancestors(x), ay = ancestors(y);
    auto exclusive = [&](const std::set<size_t>& mine, const std::set<size_t>& other) {
      std::set<size_t> out;
      for (size_t k : mine)
        if (!other.count(k) && from_input[k]) out.insert(k);
      return out;
    };
    std::set<size_t> ex = exclusive(ax, ay), ey = exclusive(ay, ax);
    auto weights_of = [&](const std::set<size_t>& nodes, std::set<std::string>* params, int64_t* tensors) {
      int64_t elements = 0;
      *tensors = 0;
      for (size_t k : nodes)
        for (Value* v : reads[k]) {
          if (!v->type()->cast<c10::TensorType>()) continue;
          std::string p = AttributePath(v);
          if (p.empty() || !params->insert(p).second || !HasTensor(m, p)) continue;
          torch::Tensor t = GetTensor(m, p);
          if (t.dim() >= 2) {
            elements += t.numel();
            ++*tensors;
          }
        }
      return elements;
    };
    // The shortcut: the operand computed by nothing of its own (identity), else the one
    // reading fewer weight tensors (projection); equal weight: not clear, not a block.
    Branch bx, by;
    bx.weights = weights_of(ex, &bx.params, &bx.weight_tensors);
    by.weights = weights_of(ey, &by.params, &by.weight_tensors);
    bx.nodes = ex;
    by.nodes = ey;
    const bool x_is_shortcut = ex.empty() || (!ey.empty() && bx.weight_tensors < by.weight_tensors);
    const bool y_is_shortcut = !x_is_shortcut && (ey.empty() || by.weight_tensors < bx.weight_tensors);
    if (!x_is_shortcut && !y_is_shortcut) continue;
    Value* shortcut = x_is_shortcut ? x : y;
    Branch b = x_is_shortcut ? by : bx;  // the residual branch is the other operand
    b.add = i;
    b.identity = x_is_shortcut ? ex.empty() : ey.empty();
    if (b.weight_tensors == 0) continue;
    // The data the branch computes must serve the branch alone (shape reads may be shared);
    // checks on it that output nothing used (a batch norm's input-rank check) go with it.
    bool alone = true;
    std::set<size_t> checks;
    for (size_t k : b.nodes)
      for (Value* o : a.top[k]->outputs())
        for (const auto& use : o->uses()) {
          if (!CarriesTensor(o->type())) continue;
          Node* user = top_of(use.user);
          if (user == add || b.nodes.count(index[user])) continue;
          bool sink = true;
          for (Value* uo : user->outputs()) sink &= !uo->hasUses();
          if (sink) checks.insert(index[user]);
          else alone = false;
        }
    b.nodes.insert(checks.begin(), checks.end());
    if (!alone) continue;
    if (shortcut->node()->kind() == c10::prim::Param) {
      b.shortcut_node = -1;
    } else {
      b.shortcut_node = static_cast<int64_t>(index[shortcut->node()]);
    }
    b.shortcut_offset = shortcut->offset();
    a.branches.push_back(std::move(b));
  }
  // An add whose branch holds another branch is a stage around blocks, not a block.
  std::vector<Branch> inner;
  for (const auto& b : a.branches) {
    bool outer = false;
    for (const auto& c : a.branches) outer |= &c != &b && b.nodes.count(c.add);
    if (!outer) inner.push_back(b);
  }
  a.branches = std::move(inner);
  std::map<std::string, size_t> block_of;
  for (size_t k = 0; k < a.branches.size(); ++k) {
    Branch& b = a.branches[k];
    b.block = CommonPrefix(b.params);
    if (b.block.empty()) b.block = "residual" + std::to_string(k);
    auto it = block_of.find(b.block);
    if (it == block_of.end()) {
      block_of[b.block] = a.blocks.size();
      a.blocks.push_back(DepthBlock{b.block, b.identity ? "identity" : "projection", 0, 0, {}});
      it = block_of.find(b.block);
    }
    DepthBlock& d = a.blocks[it->second];
    d.branches += 1;
    d.weights += b.weights;
    if (!b.identity) d.shortcut = "projection";
    d.params.insert(d.params.end(), b.params.begin(), b.params.end());
  }
  return a;
}

// Makes every add of the named blocks return its shortcut, then drops what no longer runs.
// `a` describes `g` or a copy of it (same node order).
void Skip(const Analysis& a, Graph& g, const std::set<std::string>& names) {
  std::vector<Node*> top;
  for (Node* n : g.block()->nodes()) top.push_back(n);
  std::vector<Node*> dead;
  std::map<Value*, Value*> replaced;  // a removed add's output -> what stands for it now
  for (const auto& b : a.branches) {
    if (!names.count(b.block)) continue;
    Node* add = top[b.add];
    Value* s = b.shortcut_node < 0 ? g.inputs()[b.shortcut_offset] : top[b.shortcut_node]->output(b.shortcut_offset);
    for (auto it = replaced.find(s); it != replaced.end(); it = replaced.find(s)) s = it->second;
    add->output()->replaceAllUsesWith(s);
    replaced[add->output()] = s;
    dead.push_back(add);
  }
  for (Node* d : dead) d->destroy();
  // The branches' nodes, last first (EliminateDeadCode keeps a batch norm that may update its
  // running statistics); a shape read also used elsewhere stays.
  std::set<size_t> branch_nodes;
  for (const auto& b : a.branches)
    if (names.count(b.block)) branch_nodes.insert(b.nodes.begin(), b.nodes.end());
  for (auto it = branch_nodes.rbegin(); it != branch_nodes.rend(); ++it) {
    Node* n = top[*it];
    bool used = false;
    for (Value* o : n->outputs()) used |= o->hasUses();
    if (!used) n->destroy();
  }
}

torch::Tensor RunGraph(const torch::jit::Module& m, const std::shared_ptr<Graph>& g,
                       const std::vector<c10::IValue>& inputs, std::vector<torch::Tensor>* extra = nullptr) {
  torch::jit::GraphExecutor exec(g, "prunelab_depth");
  torch::jit::Stack stack{m._ivalue()};
  stack.insert(stack.end(), inputs.begin(), inputs.end());
  exec.run(stack);
  if (extra)
    for (size_t i = 1; i < stack.size(); ++i) extra->push_back(stack[i].toTensor());
  return stack.front().toTensor();
}

}  // namespace

std::vector<Node*> AllNodes(Block* b) {
  std::vector<Node*> out;
  CollectNodes(b, &out);
  return out;
}

void FoldModuleConfiguration(const torch::jit::Module& m, std::shared_ptr<Graph>& g, bool fold_training) {
  std::vector<Node*> all;
  CollectNodes(g->block(), &all);
  std::set<std::string> assigned;
  for (Node* n : all)
    if (n->kind() == c10::prim::SetAttr) assigned.insert(n->s(c10::attr::name));
  for (Node* n : all) {
    if (n->kind() != c10::prim::GetAttr) continue;
    const std::string name = n->s(c10::attr::name);
    auto kind = n->output()->type()->kind();
    if ((name == "training" && !fold_training) || assigned.count(name) ||
        (kind != c10::TypeKind::BoolType && kind != c10::TypeKind::IntType && kind != c10::TypeKind::FloatType))
      continue;
    const std::string path = AttributePath(n->output());
    if (path.empty()) continue;
    c10::IValue v = m._ivalue();
    for (size_t start = 0, dot = 0; start <= path.size(); start = dot + 1) {
      dot = path.find('.', start);
      if (dot == std::string::npos) dot = path.size();
      v = v.toObject()->getAttr(path.substr(start, dot - start));
    }
    torch::jit::WithInsertPoint guard(n);
    n->output()->replaceAllUsesWith(g->insertConstant(v));
  }
  torch::jit::ConstantPropagation(g);
  torch::jit::EliminateDeadCode(g);
}

StatusOr<std::vector<DepthBlock>> FindDepthBlocks(const torch::jit::Module& m, const LearningTask& task) {
  if (!m.find_method("forward")) return Status::InvalidArgument("the module has no forward method");
  try {
    auto a = Analyze(m, InlinedForwardGraph(m), task);
    if (!a.ok()) return a.status();
    return a->blocks;
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(std::string("depth: cannot follow this module's graph: ") + e.what_without_backtrace());
  }
}

StatusOr<std::vector<double>> DepthImportance(const torch::jit::Module& m, const LearningTask& task,
                                              const std::vector<DepthBlock>& blocks, const std::string& criterion,
                                              const Dataset& calibration, int batches, int batch_size, uint64_t seed) {
  std::vector<double> out(blocks.size(), 0.0);
  if (criterion == "random") {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto r = torch::rand({static_cast<int64_t>(blocks.size())}, gen, torch::kDouble);
    for (size_t i = 0; i < blocks.size(); ++i) out[i] = r[i].item<double>();
    return out;
  }
  if (criterion != "loss" && criterion != "angular")
    return Status::InvalidArgument("criterion '" + criterion + "' does not rank blocks (granularity depth: loss, angular, random)");
  torch::jit::Module eval = CloneModule(m);
  eval.eval();
  auto analysis = Analyze(eval, InlinedForwardGraph(eval), task);
  if (!analysis.ok()) return analysis.status();
  const Analysis& a = analysis.value();
  torch::NoGradGuard no_grad;
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  torch::jit::setGraphExecutorOptimize(false);
  struct Restore {
    bool v;
    ~Restore() { torch::jit::setGraphExecutorOptimize(v); }
  } restore{optimize};
  const int64_t n = calibration.size();
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int b = 0; b < std::max(1, batches); ++b) {
    int64_t start = (static_cast<int64_t>(b) * batch_size) % std::max<int64_t>(1, n);
    int64_t end = std::min(n, start + batch_size);
    if (end > start) ranges.emplace_back(start, end);
  }
  if (ranges.empty()) return Status::InvalidArgument("depth importance: the calibration set is empty");
  auto mean_loss = [&](const std::shared_ptr<Graph>& g) {
    double sum = 0;
    int64_t count = 0;
    for (auto [s, e] : ranges) {
      Batch batch = task.Range(calibration, s, e);
      sum += task.Loss(RunGraph(eval, g, batch.inputs), batch.targets, LossReduction::kSum).item<double>();
      count += e - s;
    }
    return sum / std::max<int64_t>(1, count);
  };
  if (criterion == "loss") {
    const double base = mean_loss(a.graph);
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto g = a.graph->copy();
      Skip(a, *g, {blocks[i].name});
      torch::jit::EliminateDeadCode(g);
      out[i] = mean_loss(g) - base;
    }
    return out;
  }
  // angular: the block's input (its first branch's shortcut) against its output (its last
  // branch's sum), as extra outputs of one graph.
  auto g = a.graph->copy();
  std::vector<Node*> top;
  for (Node* node : g->block()->nodes()) top.push_back(node);
  std::vector<int> first_out(blocks.size(), -1);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const Branch* first = nullptr;
    const Branch* last = nullptr;
    for (const auto& b : a.branches)
      if (b.block == blocks[i].name) {
        if (!first) first = &b;
        last = &b;
      }
    if (!first) continue;
    Value* in = first->shortcut_node < 0 ? g->inputs()[first->shortcut_offset]
                                         : top[first->shortcut_node]->output(first->shortcut_offset);
    first_out[i] = static_cast<int>(g->outputs().size()) - 1;
    g->registerOutput(in);
    g->registerOutput(top[last->add]->output());
  }
  std::vector<double> sums(blocks.size(), 0.0);
  int64_t samples = 0;
  for (auto [s, e] : ranges) {
    std::vector<torch::Tensor> extra;
    RunGraph(eval, g, task.Range(calibration, s, e).inputs, &extra);
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (first_out[i] < 0) continue;
      auto x = extra[first_out[i]].flatten(1).to(torch::kDouble);
      auto y = extra[first_out[i] + 1].flatten(1).to(torch::kDouble);
      if (x.sizes() != y.sizes()) continue;
      auto nx = x.norm(2, 1), ny = y.norm(2, 1);
      auto cos = (x * y).sum(1) / (nx * ny).clamp_min(1e-300);
      cos = torch::where((nx == 0) & (ny == 0), torch::ones_like(cos), cos);  // both zero: unchanged
      sums[i] += (torch::acos(cos.clamp(-1.0, 1.0)) / M_PI).sum().item<double>();
    }
    samples += e - s;
  }
  for (size_t i = 0; i < blocks.size(); ++i) out[i] = sums[i] / std::max<int64_t>(1, samples);
  return out;
}

StatusOr<torch::jit::Module> RemoveDepthBlocks(const torch::jit::Module& m, const LearningTask& task,
                                               const std::set<std::string>& names) {
  try {
    // A fresh copy: its class types are its own, so editing its forward touches nothing else.
    torch::jit::Module copy = CloneModule(m);
    auto& fn = torch::jit::toGraphFunction(copy.get_method("forward").function());
    auto graph = fn.graph();
    InlineGraph(*graph);
    torch::jit::ConstantPropagation(graph);
    auto a = Analyze(copy, graph, task);
    if (!a.ok()) return a.status();
    std::set<std::string> found, params;
    for (const auto& b : a->blocks)
      if (names.count(b.name)) {
        found.insert(b.name);
        params.insert(b.params.begin(), b.params.end());
      }
    for (const auto& name : names)
      if (!found.count(name)) return Status::InvalidArgument("depth: no block '" + name + "' in this model");
    Skip(a.value(), *graph, names);
    torch::jit::EliminateDeadCode(graph);
    // Tensors still read stay; the removed blocks' others are emptied.
    std::vector<Node*> all;
    CollectNodes(graph->block(), &all);
    std::set<std::string> still;
    for (Node* node : all)
      if (node->kind() == c10::prim::GetAttr) still.insert(AttributePath(node->output()));
    for (const auto& p : params)
      if (!still.count(p) && HasTensor(copy, p)) {
        torch::Tensor t = GetTensor(copy, p);
        SetTensor(copy, p, torch::empty({0}, t.options()).set_requires_grad(t.requires_grad()));
      }
    torch::jit::Module out = CloneModule(copy);
    // The variant runs and keeps the output's shape.
    auto input = task.ExampleInputs(2, at::make_generator<at::CPUGeneratorImpl>(0));
    torch::NoGradGuard no_grad;
    torch::jit::Module before = CloneModule(m), after = CloneModule(out);
    before.eval();
    after.eval();
    auto want = before.forward(input).toTensor();
    auto got = after.forward(input).toTensor();
    if (got.sizes() != want.sizes())
      return Status::InvalidArgument("depth: removing the blocks changed the output from " + c10::str(want.sizes()) +
                                     " to " + c10::str(got.sizes()));
    if (!torch::isfinite(got).all().item<bool>())
      return Status::InvalidArgument("depth: the model without the blocks outputs non-finite values");
    return out;
  } catch (const c10::Error& e) {
    return Status::InvalidArgument(std::string("depth: cannot remove blocks: ") + e.what_without_backtrace());
  }
}

}  // namespace prunelab::worker
