// The dependency graph of a user's TorchScript module: which output channels of which
// layers must be removed together (Tracer: union-find over channel elements along the traced
// graph), why a group cannot be removed, and the layout the pruning engine plans over.
#include <torch/csrc/jit/ir/ir.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "worker/engine/model/graph.h"
#include "worker/engine/model/user_model.h"

namespace prunelab::worker {
namespace {

const char* const kOutput = "the model's output";

std::string Join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

std::optional<int64_t> ConstInt(Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (iv && iv->isInt()) return iv->toInt();
  return std::nullopt;
}
std::optional<std::vector<int64_t>> ConstInts(Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (iv && iv->isIntList()) return iv->toIntVector();
  if (iv && iv->isInt()) return std::vector<int64_t>{iv->toInt()};
  if (v->node()->kind() == c10::prim::ListConstruct) {
    std::vector<int64_t> out;
    for (Value* in : v->node()->inputs()) {
      auto i = ConstInt(in);
      if (!i) return std::nullopt;
      out.push_back(*i);
    }
    return out;
  }
  return std::nullopt;
}
int64_t Prod(const Shape& s, size_t from, size_t to) {  // [from, to)
  int64_t p = 1;
  for (size_t i = from; i < to && i < s.size(); ++i) p *= s[i];
  return p;
}

// Ops that act on each channel separately (values stay in their channel; spatial or
// token axes may change).
const std::set<std::string>& PerChannel() {
  static const std::set<std::string> ops{
      "aten::relu", "aten::relu_", "aten::relu6", "aten::gelu", "aten::sigmoid", "aten::sigmoid_", "aten::tanh",
      "aten::tanh_", "aten::silu", "aten::silu_", "aten::leaky_relu", "aten::leaky_relu_", "aten::hardtanh",
      "aten::hardtanh_", "aten::elu", "aten::elu_", "aten::hardswish", "aten::hardswish_", "aten::hardsigmoid",
      "aten::hardsigmoid_", "aten::mish", "aten::softplus", "aten::selu", "aten::celu", "aten::dropout",
      "aten::dropout_", "aten::feature_dropout", "aten::feature_dropout_", "aten::alpha_dropout",
      "aten::feature_alpha_dropout", "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d", "aten::avg_pool1d",
      "aten::avg_pool2d", "aten::avg_pool3d", "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d",
      "aten::adaptive_avg_pool3d", "aten::adaptive_max_pool2d", "aten::contiguous", "aten::clone", "aten::detach",
      "aten::to", "aten::type_as", "aten::float", "aten::upsample_nearest2d", "aten::upsample_bilinear2d",
      "aten::__interpolate", "aten::neg", "aten::abs", "aten::exp", "aten::sqrt", "aten::square", "aten::clamp",
      "aten::clamp_", "aten::clamp_min", "aten::clamp_max", "prim::unchecked_cast", "aten::roll", "aten::expand",
      "aten::expand_as", "aten::slice", "aten::max_pool2d_with_indices"};
  return ops;
}
// Reads of shape or identity, not of data.
const std::set<std::string>& Inert() {
  static const std::set<std::string> ops{
      "aten::size", "aten::dim", "prim::shape", "aten::len", "prim::device", "prim::dtype", "aten::__isnot__",
      "aten::__is__", "prim::isinstance", "aten::numel", "prim::requires_grad", "aten::is_floating_point",
      "aten::warn", "prim::RaiseException", "aten::format", "prim::Uninitialized", "aten::str", "prim::layout",
      "aten::is_contiguous", "prim::is_cuda", "aten::__contains__"};
  return ops;
}
const std::set<std::string>& Binary() {
  static const std::set<std::string> ops{"aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul",
                                         "aten::mul_", "aten::div", "aten::div_", "aten::maximum", "aten::minimum"};
  return ops;
}
const std::set<std::string>& Reshaping() {
  static const std::set<std::string> ops{"aten::view", "aten::reshape", "aten::flatten", "aten::unflatten",
                                         "aten::squeeze", "aten::unsqueeze", "aten::view_as", "aten::reshape_as",
                                         "aten::squeeze_", "aten::unsqueeze_"};
  return ops;
}

// Union-find over channel elements; a root carries why it cannot be removed.
struct Elements {
  std::vector<int> parent;
  std::vector<std::string> layer;    // the producer layer that made the element
  std::vector<std::string> blocked;  // root only
  int New(const std::string& l) {
    parent.push_back(static_cast<int>(parent.size()));
    layer.push_back(l);
    blocked.emplace_back();
    return parent.back();
  }
  int Find(int e) {
    while (parent[e] != e) e = parent[e] = parent[parent[e]];
    return e;
  }
  void Union(int a, int b) {
    a = Find(a), b = Find(b);
    if (a == b) return;
    if (b < a) std::swap(a, b);
    parent[b] = a;
    if (blocked[a].empty()) blocked[a] = blocked[b];
  }
  void Block(int e, const std::string& why) {
    e = Find(e);
    if (blocked[e].empty()) blocked[e] = why;
  }
};

// How a tensor's channel axis maps to elements. Entry i of `el` covers `block` consecutive
// indices along axis `dim` (block 0: flattened, width found by the consumer). A split
// channel axis (view(b, g, C/g, ...)) spans axes dim (n1) and dim2 (n2): el[i*n2 + j].
struct Chan {
  std::vector<int> el;
  int64_t dim = 1;
  int64_t block = 1;
  int64_t dim2 = -1;
  int64_t n1 = 0, n2 = 0;
  int64_t Width() const { return static_cast<int64_t>(el.size()) * block; }
};

struct RawSlice {
  std::string param;
  int64_t dim;
  std::vector<int> el;
  int64_t block;
  bool score;
};

class Tracer {
 public:
  Tracer(const torch::jit::Module& m, std::map<Value*, Shape> shapes, bool have_shapes)
      : m_(m), shapes_(std::move(shapes)), have_shapes_(have_shapes) {}

  void Walk(Block* b) {
    for (Node* n : b->nodes()) Visit(n);
  }

  void Finish(Block* top, ModelLayout* layout) {
    for (Value* v : top->outputs()) Stop(v, kOutput);
    // Group structures by the producer slices they share.
    std::vector<int> gparent;
    std::map<int, int> gidx;
    auto gid = [&](int root) {
      auto it = gidx.find(root);
      if (it != gidx.end()) return it->second;
      int id = static_cast<int>(gparent.size());
      gparent.push_back(id);
      gidx[root] = id;
      return id;
    };
    std::function<int(int)> gfind = [&](int x) { return gparent[x] == x ? x : gparent[x] = gfind(gparent[x]); };
    for (const auto& s : slices_) {
      if (!s.score) continue;
      int first = -1;
      for (int e : s.el) {
        int g = gid(el_.Find(e));
        if (first < 0) first = g;
        else gparent[gfind(g)] = gfind(first);
      }
    }
    // Groups in forward order of their first producer; structures in order of appearance.
    std::map<int, size_t> out_index;  // group root -> index in groups
    std::vector<StructureGroup> groups;
    std::vector<std::map<int, int64_t>> structure_of;  // per group: element root -> structure
    std::vector<std::string> blocked;
    for (const auto& s : slices_) {
      if (!s.score) continue;
      int g = gfind(gid(el_.Find(s.el.front())));
      if (!out_index.count(g)) {
        out_index[g] = groups.size();
        groups.emplace_back();
        groups.back().name = el_.layer[s.el.front()];
        structure_of.emplace_back();
        blocked.emplace_back();
      }
      size_t gi = out_index[g];
      auto& layers = groups[gi].layers;
      std::string l = LayerOf(s.param);
      if (std::find(layers.begin(), layers.end(), l) == layers.end()) layers.push_back(l);
      for (int e : s.el) {
        int r = el_.Find(e);
        if (!structure_of[gi].count(r)) structure_of[gi].emplace(r, static_cast<int64_t>(structure_of[gi].size()));
        if (blocked[gi].empty() && !el_.blocked[r].empty()) blocked[gi] = el_.blocked[r];
      }
    }
    for (const auto& s : slices_) {
      std::map<size_t, Slice> per_group;
      int64_t positions = static_cast<int64_t>(s.el.size()) * s.block;
      for (int64_t p = 0; p < positions; ++p) {
        int r = el_.Find(s.el[p / s.block]);
        auto g = gidx.find(r);
        if (g == gidx.end()) continue;
        auto oi = out_index.find(gfind(g->second));
        if (oi == out_index.end()) continue;
        auto st = structure_of[oi->second].find(r);
        if (st == structure_of[oi->second].end()) continue;
        auto& sl = per_group[oi->second];
        if (sl.map.empty()) {
          sl.param = s.param;
          sl.dim = s.dim;
          sl.score = s.score;
          sl.map.assign(positions, -1);
        }
        sl.map[p] = st->second;
      }
      for (auto& [gi, sl] : per_group) groups[gi].slices.push_back(std::move(sl));
    }
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      auto& g = groups[gi];
      g.structures = static_cast<int64_t>(structure_of[gi].size());
      g.kind = g.layers.size() > 1 ? "residual" : (kind_[g.layers.front()] == "aten::linear" ? "neuron" : "channel");
      if (blocked[gi].rfind(kOutput, 0) == 0) continue;  // the classifier: never a structure group
      if (!blocked[gi].empty())
        g.blocked = "structured pruning cannot remove channels of layer '" + g.name + "': " + blocked[gi];
      else if (g.structures < 2)
        g.blocked = "structured pruning: the channels of layer '" + g.name + "' are coupled into one structure";
      layout->groups.push_back(std::move(g));
    }
    layout->depthwise = depthwise_;
  }

 private:
  const Shape* ShapeOf(Value* v) {
    auto it = shapes_.find(v);
    if (it != shapes_.end()) return &it->second;
    std::string path = AttributePath(v);
    if (!path.empty() && HasTensor(m_, path)) {
      param_shapes_[v] = GetTensor(m_, path).sizes().vec();
      return &param_shapes_[v];
    }
    return nullptr;
  }
  int64_t Rank(Value* v) {
    const Shape* s = ShapeOf(v);
    return s ? static_cast<int64_t>(s->size()) : -1;
  }
  bool Executed(Node* n) {
    if (!have_shapes_) return true;
    bool any_tensor = false;
    for (Value* o : n->outputs())
      if (IsTensor(o)) {
        any_tensor = true;
        if (shapes_.count(o)) return true;
      }
    return !any_tensor;
  }
  bool BlockRan(Block* b) {
    if (!have_shapes_) return true;
    bool any_tensor = false;
    for (Node* n : b->nodes()) {
      if (n->kind() == kRecordShape) return true;
      for (Value* o : n->outputs())
        if (IsTensor(o)) {
          any_tensor = true;
          if (shapes_.count(o)) return true;
        }
    }
    return !any_tensor;
  }

  const Chan* ChanOf(Value* v) {
    auto it = chan_.find(v);
    return it == chan_.end() ? nullptr : &it->second;
  }
  // Positive channel axis of v's chan (resolving "last" with the recorded rank), or -1.
  int64_t AxisOf(Value* v, const Chan& c) {
    if (c.dim >= 0) return c.dim;
    int64_t r = Rank(v);
    return r > 0 ? r + c.dim : -1;
  }
  int64_t Norm(int64_t d, int64_t rank) { return d < 0 && rank > 0 ? d + rank : d; }

  std::string Where(const std::vector<int>& els) {
    return els.empty() ? "" : " after layer '" + el_.layer[els.front()] + "'";
  }
  void StopEls(const std::vector<int>& els, const std::string& why) {
    std::string w = why + Where(els);
    for (int e : els) el_.Block(e, w);
  }
  // Blocks every element a value carries (its channels, list members, or taint).
  void Stop(Value* v, const std::string& why) {
    if (auto* c = ChanOf(v)) StopEls(c->el, why);
    auto l = list_.find(v);
    if (l != list_.end())
      for (auto& member : l->second)
        if (member) StopEls(member->el, why);
    auto t = taint_.find(v);
    if (t != taint_.end()) StopEls(t->second, why);
  }
  void StopInputs(Node* n, const std::string& op) {
    for (Value* in : n->inputs()) Stop(in, op);
  }
  void Unite(const Chan& a, const Chan& b) {
    for (size_t i = 0; i < a.el.size() && i < b.el.size(); ++i) el_.Union(a.el[i], b.el[i]);
  }
  // Elements at the same offset of each of k equal parts of a channel axis must go together
  // (chunk, grouped convolution, channel shuffle keep equal parts).
  void UnitePositional(const std::vector<int>& el, int64_t parts) {
    if (parts <= 1 || el.size() % parts) return;
    size_t each = el.size() / parts;
    for (size_t p = 1; p < static_cast<size_t>(parts); ++p)
      for (size_t j = 0; j < each; ++j) el_.Union(el[j], el[p * each + j]);
  }

  std::vector<int> NewEls(int64_t n, const std::string& layer) {
    std::vector<int> out;
    for (int64_t i = 0; i < n; ++i) out.push_back(el_.New(layer));
    return out;
  }
  // A consumer reads channels c along `wdim` of weight w (`positions` entries).
  bool Consume(const std::string& w, int64_t wdim, const Chan& c, int64_t positions, const std::string& op) {
    int64_t block = c.block;
    if (block == 0) block = c.el.empty() ? 0 : positions / static_cast<int64_t>(c.el.size());
    if (block <= 0 || block * static_cast<int64_t>(c.el.size()) != positions) {
      StopEls(c.el, op + " reading a reshaped input");
      return false;
    }
    slices_.push_back({w, wdim, c.el, block, false});
    SameAsEarlierCalls(w + "#" + std::to_string(wdim), c.el);  // a shared layer reads the same channels
    return true;
  }

  void Visit(Node* n) {
    if (n->kind() == kRecordShape) return;
    const std::string kind = n->kind().toQualString();
    if (n->kind() == c10::prim::If) return VisitIf(n);
    if (n->kind() == c10::prim::Loop) return VisitLoop(n, kind);
    for (Block* b : n->blocks()) Walk(b);
    if (!Executed(n)) return;
    if (n->kind() == c10::prim::GetAttr || n->kind() == c10::prim::Constant || Inert().count(kind)) return;
    if (kind == "aten::linear" || kind == "aten::conv1d" || kind == "aten::conv2d" || kind == "aten::conv3d") {
      if (Producer(n, kind)) return;
    }
    if (kind == "aten::embedding" && Embedding(n, kind)) return;
    if (kind == "aten::batch_norm" || kind == "aten::instance_norm") return ChannelNorm(n, kind);
    if (kind == "aten::layer_norm") return LayerNorm(n);
    if (PerChannel().count(kind)) return PassThrough(n, kind);
    if (Binary().count(kind)) return BinaryOp(n, kind);
    if (Reshaping().count(kind)) return ReshapeOp(n, kind);
    if (kind == "aten::permute" || kind == "aten::transpose" || kind == "aten::transpose_" || kind == "aten::t")
      return PermuteOp(n, kind);
    if (kind == "aten::mean" || kind == "aten::sum" || kind == "aten::amax") return Reduce(n, kind);
    if (kind == "aten::select") return Select(n, kind);
    if (kind == "aten::cat" || kind == "aten::concat" || kind == "aten::stack") return Cat(n, kind);
    if (kind == "aten::chunk" || kind == "aten::unsafe_chunk") return Chunk(n, kind);
    if (kind == "aten::constant_pad_nd" || kind == "aten::pad") return Pad(n, kind);
    if (n->kind() == c10::prim::ListConstruct || n->kind() == c10::prim::TupleConstruct) return Construct(n);
    if (n->kind() == c10::prim::ListUnpack || n->kind() == c10::prim::TupleUnpack) return Unpack(n);
    if (n->kind() == c10::prim::TupleIndex || kind == "aten::__getitem__") return GetItem(n, kind);
    if (kind == "aten::append") return Append(n);
    // Anything else that reads channels stops them (a list is named by its consumer).
    StopInputs(n, kind);
  }

  void VisitIf(Node* n) {
    std::vector<Block*> ran;
    for (Block* b : n->blocks())
      if (BlockRan(b)) ran.push_back(b);
    if (ran.empty()) ran.assign(n->blocks().begin(), n->blocks().end());
    for (Block* b : ran) Walk(b);
    for (size_t i = 0; i < n->outputs().size(); ++i) {
      std::optional<Chan> merged;
      for (Block* b : ran) {
        Value* o = b->outputs()[i];
        if (auto* c = ChanOf(o)) {
          if (!merged) merged = *c;
          else if (merged->el.size() == c->el.size() && merged->dim == c->dim && merged->block == c->block)
            Unite(*merged, *c);
          else {
            StopEls(merged->el, "prim::If whose branches differ in channels");
            StopEls(c->el, "prim::If whose branches differ in channels");
          }
        }
        auto l = list_.find(o);
        if (l != list_.end()) list_[n->output(i)] = l->second;
        auto t = taint_.find(o);
        if (t != taint_.end()) taint_[n->output(i)] = t->second;
      }
      if (merged) chan_[n->output(i)] = *merged;
    }
  }

  void VisitLoop(Node* n, const std::string& kind) {
    // Loops that carry channels are not followed; loops over lists (e.g. checks of
    // requires_grad) are walked so their reads of list members are seen.
    for (size_t i = 2; i < n->inputs().size(); ++i) Stop(n->input(i), kind + " carrying channels");
    for (Block* b : n->blocks()) {
      Walk(b);
      for (Value* o : b->outputs()) Stop(o, kind + " carrying channels");
    }
  }

  // A weight called more than once (a shared layer) produces the same channels each time.
  void SameAsEarlierCalls(const std::string& w, const std::vector<int>& el) {
    auto [it, first] = produced_.emplace(w, el);
    if (!first && it->second.size() == el.size())
      for (size_t i = 0; i < el.size(); ++i) el_.Union(it->second[i], el[i]);
  }

  bool Producer(Node* n, const std::string& kind) {
    if (n->inputs().size() < 2) return false;
    std::string w = AttributePath(n->input(1));
    if (w.empty() || !HasTensor(m_, w)) return false;
    auto weight = GetTensor(m_, w);
    std::string b = n->inputs().size() > 2 ? AttributePath(n->input(2)) : "";
    if (!b.empty() && !HasTensor(m_, b)) b.clear();
    std::string layer = LayerOf(w);
    kind_[layer] = kind;
    const Chan* in = ChanOf(n->input(0));
    const int64_t out_ch = weight.size(0);
    if (kind == "aten::linear") {
      if (in) {
        int64_t ax = AxisOf(n->input(0), *in);
        int64_t rank = Rank(n->input(0));
        if (in->dim2 >= 0 || (rank > 0 && ax != rank - 1 && in->dim >= 0)) StopEls(in->el, kind + " over a non-channel axis");
        else Consume(w, 1, *in, weight.size(1), kind);
      }
      Chan out;
      out.el = NewEls(out_ch, layer);
      out.dim = -1;
      SameAsEarlierCalls(w, out.el);
      slices_.push_back({w, 0, out.el, 1, true});
      if (!b.empty()) slices_.push_back({b, 0, out.el, 1, false});
      int64_t rank = Rank(n->output(0));
      if (rank > 0) out.dim = rank - 1;
      chan_[n->output(0)] = std::move(out);
      return true;
    }
    // Convolution: groups tie input and output channels.
    auto groups = n->inputs().size() > 6 ? ConstInt(n->input(6)) : std::optional<int64_t>(1);
    if (!groups) {
      if (in) StopEls(in->el, kind + " with a groups argument that is not a constant");
      return false;
    }
    const int64_t g = *groups, per_group_in = weight.size(1), cin = per_group_in * g;
    if (in && (AxisOf(n->input(0), *in) != 1 || in->block != 1 || in->dim2 >= 0)) {
      StopEls(in->el, kind + " reading a reshaped input");
      in = nullptr;
    }
    Chan out;
    out.dim = 1;
    if (g > 1 && per_group_in == 1 && out_ch % g == 0) {  // depthwise: output o reads input o / mult
      const int64_t mult = out_ch / g;
      if (!in || static_cast<int64_t>(in->el.size()) != cin) {
        out.el = NewEls(out_ch, layer);
        StopEls(out.el, "a depthwise " + kind + " on channels the pass does not follow");
      } else {
        for (int64_t o = 0; o < out_ch; ++o) out.el.push_back(in->el[o / mult]);
      }
      depthwise_[w] = mult;
      slices_.push_back({w, 0, out.el, 1, true});
      if (!b.empty()) slices_.push_back({b, 0, out.el, 1, false});
      chan_[n->output(0)] = std::move(out);
      return true;
    }
    if (in) {
      if (static_cast<int64_t>(in->el.size()) != cin) {
        StopEls(in->el, kind + " reading a reshaped input");
      } else {
        UnitePositional(in->el, g);  // every group keeps the same input offsets
        Chan first = *in;
        first.el.resize(per_group_in);
        Consume(w, 1, first, per_group_in, kind);
      }
    }
    out.el = NewEls(out_ch, layer);
    UnitePositional(out.el, g);
    SameAsEarlierCalls(w, out.el);
    slices_.push_back({w, 0, out.el, 1, true});
    if (!b.empty()) slices_.push_back({b, 0, out.el, 1, false});
    chan_[n->output(0)] = std::move(out);
    return true;
  }

  // A lookup table's columns are the channels of its output (the last axis): an embedding
  // is a producer whose structures are columns of its weight; the ids it reads carry none.
  bool Embedding(Node* n, const std::string& kind) {
    std::string w = AttributePath(n->input(0));
    if (w.empty() || !HasTensor(m_, w)) return false;
    auto weight = GetTensor(m_, w);
    if (weight.dim() != 2) return false;
    std::string layer = LayerOf(w);
    kind_[layer] = kind;
    Stop(n->input(1), kind + " reading channels as ids");
    Chan out;
    out.el = NewEls(weight.size(1), layer);
    out.dim = -1;
    SameAsEarlierCalls(w + "#1", out.el);
    slices_.push_back({w, 1, out.el, 1, true});
    int64_t rank = Rank(n->output(0));
    if (rank > 0) out.dim = rank - 1;
    chan_[n->output(0)] = std::move(out);
    return true;
  }

  void ChannelNorm(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    if (AxisOf(n->input(0), *in) != 1 || in->block != 1 || in->dim2 >= 0) {
      StopEls(in->el, kind + " over a reshaped channel axis");
      return;
    }
    std::set<std::string> params;
    for (size_t i = 1; i <= 4 && i < n->inputs().size(); ++i) {
      std::string p = AttributePath(n->input(i));
      if (!p.empty() && HasTensor(m_, p)) params.insert(p);
    }
    std::string mod = params.empty() ? "" : Parent(*params.begin());
    for (const char* p : {"weight", "bias", "running_mean", "running_var"})
      if (!mod.empty() && HasTensor(m_, Join(mod, p))) params.insert(Join(mod, p));
    for (const auto& p : params) {
      if (GetTensor(m_, p).dim() != 1 || GetTensor(m_, p).size(0) != static_cast<int64_t>(in->el.size())) {
        StopEls(in->el, kind + " with parameters of another width");
        return;
      }
    }
    for (const auto& p : params) slices_.push_back({p, 0, in->el, 1, false});
    chan_[n->output(0)] = *in;
  }

  void LayerNorm(Node* n) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    auto shape = ConstInts(n->input(1));
    int64_t rank = Rank(n->input(0));
    int64_t ax = AxisOf(n->input(0), *in);
    if (!shape || rank < 0 || ax < 0 || ax >= rank - static_cast<int64_t>(shape->size()) || in->dim2 >= 0) {
      StopEls(in->el, "aten::layer_norm normalizes over these channels (removing one changes the others)");
    }
    chan_[n->output(0)] = *in;
  }

  void PassThrough(Node* n, const std::string& kind) {
    const Chan* in = n->inputs().empty() ? nullptr : ChanOf(n->input(0));
    auto t = n->inputs().empty() ? taint_.end() : taint_.find(n->input(0));
    if (t != taint_.end()) taint_[n->output(0)] = t->second;
    if (!in) {
      for (size_t i = 1; i < n->inputs().size(); ++i) Stop(n->input(i), kind);
      return;
    }
    Chan c = *in;
    int64_t ax = AxisOf(n->input(0), c);
    if (kind == "aten::slice" || kind == "aten::roll" || kind == "aten::expand") {
      // Along another axis only.
      auto d = n->inputs().size() > 1 ? ConstInts(n->input(1)) : std::nullopt;
      const Shape* si = ShapeOf(n->input(0));
      const Shape* so = ShapeOf(n->output(0));
      bool touches = false;
      if (kind == "aten::slice" && d && !d->empty()) touches = Norm((*d)[0], Rank(n->input(0))) == ax;
      if (kind == "aten::roll") {
        auto dims = n->inputs().size() > 2 ? ConstInts(n->input(2)) : std::nullopt;
        if (!dims) touches = true;
        else
          for (int64_t x : *dims) touches |= Norm(x, Rank(n->input(0))) == ax;
      }
      if (kind == "aten::expand" && (!si || !so || si->size() != so->size() || ax < 0 || (*si)[ax] != (*so)[ax]))
        touches = true;
      if (c.dim2 >= 0) touches = true;
      if (touches) {
        StopEls(c.el, kind + " along the channel axis");
        return;
      }
    }
    if (n->outputs().size() > 1 && kind != "aten::max_pool2d_with_indices" && kind != "aten::adaptive_max_pool2d") {
      StopEls(c.el, kind);
      return;
    }
    chan_[n->output(0)] = c;
  }

  void BinaryOp(Node* n, const std::string& kind) {
    if (n->inputs().size() < 2) return StopInputs(n, kind);
    Value* a = n->input(0);
    Value* b = n->input(1);
    const Chan* ca = ChanOf(a);
    const Chan* cb = ChanOf(b);
    bool tensor_b = IsTensor(b);
    if (!ca && cb && IsTensor(a)) {
      std::swap(a, b);
      std::swap(ca, cb);
    }
    if (!ca) {
      if (cb) Stop(b, kind);
      return;
    }
    if (!IsTensor(b) && !tensor_b) {  // scalar
      chan_[n->output(0)] = *ca;
      return;
    }
    const int64_t ra = Rank(a), rb = Rank(b), ax = AxisOf(a, *ca);
    if (cb) {
      int64_t bx = AxisOf(b, *cb);
      bool same = ca->el.size() == cb->el.size() && ca->block == cb->block && ca->dim2 < 0 && cb->dim2 < 0 &&
                  ra > 0 && rb > 0 && ra - ax == rb - bx;
      if (!same) {
        StopEls(ca->el, kind + " of tensors with different channel layouts");
        StopEls(cb->el, kind + " of tensors with different channel layouts");
        return;
      }
      Unite(*ca, *cb);
      chan_[n->output(0)] = *ca;
      return;
    }
    // b carries no channels: fine when broadcast along the channel axis, or when it is a
    // parameter that can be sliced with them.
    const Shape* sb = ShapeOf(b);
    const bool mul = kind.rfind("aten::mul", 0) == 0 || kind.rfind("aten::div", 0) == 0;
    if (!sb) {
      if (mul && !have_shapes_) {
        chan_[n->output(0)] = *ca;
        return;
      }
      StopEls(ca->el, kind + " with a tensor of unknown shape");
      return;
    }
    int64_t bax = ax < 0 || ra < 0 ? -1 : ax - (ra - rb);
    if (ax >= 0 && ra > 0 && (bax < 0 || (*sb)[bax] == 1)) {
      chan_[n->output(0)] = *ca;
      return;
    }
    std::string p = AttributePath(b);
    if (ax >= 0 && bax >= 0 && !p.empty() && HasTensor(m_, p) && (*sb)[bax] == ca->Width() && ca->dim2 < 0 &&
        ca->block >= 1) {
      slices_.push_back({p, bax, ca->el, ca->block, false});
      chan_[n->output(0)] = *ca;
      return;
    }
    StopEls(ca->el, kind + " with a tensor the pass does not follow");
  }

  void ReshapeOp(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) {
      auto t = taint_.find(n->input(0));
      if (t != taint_.end()) taint_[n->output(0)] = t->second;
      return;
    }
    const Shape* si = ShapeOf(n->input(0));
    const Shape* so = ShapeOf(n->output(0));
    Chan c = *in;
    if (!si || !so) {
      // Without shapes only flatten(x, 1) of NCHW is understood.
      if (kind == "aten::flatten" && c.dim == 1 && c.dim2 < 0 && n->inputs().size() > 1 && ConstInt(n->input(1)) == 1) {
        c.block = 0;
        chan_[n->output(0)] = c;
        return;
      }
      return StopEls(c.el, kind + " of channels without a recorded shape");
    }
    int64_t ax = AxisOf(n->input(0), c);
    if (c.dim2 >= 0) {
      // Merging a split channel axis back: the two axes must be adjacent.
      int64_t lo = std::min(c.dim, c.dim2), hi = std::max(c.dim, c.dim2);
      int64_t pre = Prod(*si, 0, lo);
      for (size_t d = 0; d < so->size(); ++d) {
        if (Prod(*so, 0, d) != pre) continue;
        if (hi == lo + 1 && (*so)[d] == c.n1 * c.n2 && Prod(*so, d + 1, so->size()) == Prod(*si, hi + 1, si->size())) {
          Chan out;
          out.dim = static_cast<int64_t>(d);
          if (c.dim < c.dim2) {
            out.el = c.el;
          } else {  // transposed: axis j (n2) is now the major one
            for (int64_t j = 0; j < c.n2; ++j)
              for (int64_t i = 0; i < c.n1; ++i) out.el.push_back(c.el[i * c.n2 + j]);
          }
          chan_[n->output(0)] = std::move(out);
          return;
        }
        break;
      }
      return StopEls(c.el, kind + " reshaping split channels");
    }
    if (ax < 0 || ax >= static_cast<int64_t>(si->size())) return StopEls(c.el, kind + " of channels");
    const int64_t pre = Prod(*si, 0, ax), width = (*si)[ax], post = Prod(*si, ax + 1, si->size());
    for (size_t d = 0; d < so->size(); ++d) {
      int64_t p = Prod(*so, 0, d);
      if (p < pre) continue;
      if (p > pre) break;
      if ((*so)[d] == width && Prod(*so, d + 1, so->size()) == post) {  // axis kept (maybe moved)
        c.dim = static_cast<int64_t>(d);
        chan_[n->output(0)] = c;
        return;
      }
      if ((*so)[d] > width && (*so)[d] % width == 0 && c.block >= 1) {  // merged with the axes after it
        int64_t merged = (*so)[d] / width, acc = 1;
        size_t k = ax + 1;
        while (k < si->size() && acc < merged) acc *= (*si)[k++];
        if (acc == merged) {
          c.block *= merged;
          c.dim = static_cast<int64_t>(d);
          chan_[n->output(0)] = c;
          return;
        }
      }
      if (d + 1 < so->size() && (*so)[d] * (*so)[d + 1] == width && c.block == 1 && (*so)[d] > 1 &&
          (*so)[d + 1] > 1 && Prod(*so, d + 2, so->size()) == post) {  // split in two axes
        c.dim = static_cast<int64_t>(d);
        c.dim2 = static_cast<int64_t>(d + 1);
        c.n1 = (*so)[d];
        c.n2 = (*so)[d + 1];
        UnitePositional(c.el, c.n1);  // view(b, g, C/g) needs every row the same width
        chan_[n->output(0)] = c;
        return;
      }
    }
    StopEls(c.el, kind + " reshaping the channel axis");
  }

  void PermuteOp(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    Chan c = *in;
    int64_t rank = Rank(n->input(0));
    std::vector<int64_t> perm;
    if (kind == "aten::permute") {
      auto p = ConstInts(n->input(1));
      if (!p) return StopEls(c.el, kind + " with dims that are not constant");
      perm = *p;
      rank = static_cast<int64_t>(perm.size());
    } else {
      if (rank < 0) return StopEls(c.el, kind + " of a tensor without a recorded shape");
      int64_t a = 0, b = 1;
      if (kind != "aten::t") {
        auto x = ConstInt(n->input(1)), y = ConstInt(n->input(2));
        if (!x || !y) return StopEls(c.el, kind + " with dims that are not constant");
        a = Norm(*x, rank), b = Norm(*y, rank);
      }
      perm.resize(rank);
      std::iota(perm.begin(), perm.end(), 0);
      std::swap(perm[a], perm[b]);
    }
    for (auto& p : perm) p = Norm(p, rank);
    auto where = [&](int64_t axis) -> int64_t {
      for (size_t i = 0; i < perm.size(); ++i)
        if (perm[i] == axis) return static_cast<int64_t>(i);
      return -1;
    };
    int64_t ax = AxisOf(n->input(0), c);
    if (ax < 0) return StopEls(c.el, kind + " of a tensor without a recorded shape");
    c.dim = where(ax);
    if (c.dim2 >= 0) c.dim2 = where(c.dim2);
    chan_[n->output(0)] = c;
  }

  void Reduce(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    Chan c = *in;
    auto dims = n->inputs().size() > 1 ? ConstInts(n->input(1)) : std::nullopt;
    auto keep = n->inputs().size() > 2 ? torch::jit::toIValue(n->input(2)) : c10::optional<c10::IValue>();
    int64_t rank = Rank(n->input(0)), ax = AxisOf(n->input(0), c);
    if (!dims || dims->empty() || !keep || !keep->isBool() || rank < 0 || ax < 0 || c.dim2 >= 0)
      return StopEls(c.el, kind);
    int64_t before = 0;
    for (int64_t d : *dims) {
      d = Norm(d, rank);
      if (d == ax) return StopEls(c.el, kind + " over the channel axis");
      if (d < ax) ++before;
    }
    if (!keep->toBool()) c.dim = ax - before;
    chan_[n->output(0)] = c;
  }

  void Select(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    Chan c = *in;
    auto d = ConstInt(n->input(1));
    int64_t rank = Rank(n->input(0)), ax = AxisOf(n->input(0), c);
    if (!d || rank < 0 || ax < 0 || c.dim2 >= 0) return StopEls(c.el, kind);
    int64_t dd = Norm(*d, rank);
    if (dd == ax) return StopEls(c.el, kind + " of one channel");
    if (dd < ax) c.dim = ax - 1;
    chan_[n->output(0)] = c;
  }

  // Members of a list value: from its construction, appends, or a list-producing op.
  std::vector<std::optional<Chan>>* Members(Value* v) {
    auto it = list_.find(v);
    return it == list_.end() ? nullptr : &it->second;
  }

  void Cat(Node* n, const std::string& kind) {
    auto* members = Members(n->input(0));
    auto dimv = ConstInt(n->input(1));
    if (!members || !dimv) return StopInputs(n, kind);
    Node* lc = n->input(0)->node();
    std::vector<Value*> values;
    if (lc->kind() == c10::prim::ListConstruct) values.assign(lc->inputs().begin(), lc->inputs().end());
    const Shape* so = ShapeOf(n->output(0));
    int64_t rank = so ? static_cast<int64_t>(so->size()) : -1;
    if (kind == "aten::stack" && rank > 0) --rank;  // the inputs' rank
    const int64_t d = Norm(*dimv, rank);
    // The channel axis of the members (all must agree).
    int64_t ax = -1;
    bool any = false;
    for (size_t i = 0; i < members->size(); ++i) {
      const auto& m = (*members)[i];
      if (!m) continue;
      any = true;
      int64_t a = m->dim >= 0 ? m->dim : (rank > 0 ? rank + m->dim : -1);
      if (m->dim2 >= 0 || a < 0 || (ax >= 0 && a != ax)) {
        Stop(n->input(0), kind + " of tensors with different channel layouts");
        return;
      }
      ax = a;
    }
    if (!any) return;
    if (kind != "aten::stack" && d == ax) {
      // Along the channel axis: channels are concatenated (members without channels the
      // pass follows get fixed elements that are never removed).
      Chan out;
      out.dim = ax;
      int64_t block = -1;
      for (size_t i = 0; i < members->size(); ++i) {
        const auto& m = (*members)[i];
        if (m) {
          if (block >= 0 && block != m->block) return Stop(n->input(0), kind + " of flattened tensors");
          block = m->block;
          out.el.insert(out.el.end(), m->el.begin(), m->el.end());
        } else {
          const Shape* s = i < values.size() ? ShapeOf(values[i]) : nullptr;
          if (!s || ax >= static_cast<int64_t>(s->size())) return Stop(n->input(0), kind + " with a tensor of unknown shape");
          auto fixed = NewEls((*s)[ax], "");
          StopEls(fixed, "concatenated input the pass does not follow");
          out.el.insert(out.el.end(), fixed.begin(), fixed.end());
        }
      }
      out.block = block < 0 ? 1 : block;
      if (out.block != 1) return Stop(n->input(0), kind + " of flattened tensors");
      chan_[n->output(0)] = std::move(out);
      return;
    }
    // Along another axis: every member has the same channels.
    const Chan* first = nullptr;
    std::vector<std::pair<std::string, int64_t>> params;  // members that are parameters
    for (size_t i = 0; i < members->size(); ++i) {
      const auto& m = (*members)[i];
      if (!m) {
        // e.g. ViT's class token: a parameter holding the same channels.
        std::string p = i < values.size() ? AttributePath(values[i]) : "";
        const Shape* s = i < values.size() ? ShapeOf(values[i]) : nullptr;
        if (p.empty() || !s) return Stop(n->input(0), kind + " with a tensor the pass does not follow");
        params.push_back({p, ax - (rank - static_cast<int64_t>(s->size()))});
        continue;
      }
      if (first && (first->el.size() != m->el.size() || first->block != m->block))
        return Stop(n->input(0), kind + " of tensors with different channels");
      if (first) Unite(*first, *m);
      else first = &*m;
    }
    Chan out = *first;
    for (auto& [p, pd] : params) {
      if (pd < 0 || GetTensor(m_, p).size(pd) != out.Width()) return Stop(n->input(0), kind + " with a tensor the pass does not follow");
      slices_.push_back({p, pd, out.el, out.block, false});
    }
    out.dim = kind == "aten::stack" && d <= ax ? ax + 1 : ax;
    chan_[n->output(0)] = std::move(out);
  }

  void Chunk(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    auto k = ConstInt(n->input(1));
    auto d = ConstInt(n->input(2));
    int64_t rank = Rank(n->input(0)), ax = AxisOf(n->input(0), *in);
    if (!k || !d || rank < 0 || ax < 0 || in->dim2 >= 0) return StopEls(in->el, kind);
    std::vector<std::optional<Chan>> parts;
    if (Norm(*d, rank) != ax) {
      for (int64_t i = 0; i < *k; ++i) parts.push_back(*in);
    } else {
      if (in->block != 1 || in->el.size() % *k) return StopEls(in->el, kind + " of channels into unequal parts");
      UnitePositional(in->el, *k);  // chunk needs equal parts: remove the same offsets in each
      size_t each = in->el.size() / *k;
      for (int64_t i = 0; i < *k; ++i) {
        Chan c = *in;
        c.el.assign(in->el.begin() + i * each, in->el.begin() + (i + 1) * each);
        parts.push_back(std::move(c));
      }
    }
    list_[n->output(0)] = std::move(parts);
  }

  void Pad(Node* n, const std::string& kind) {
    const Chan* in = ChanOf(n->input(0));
    if (!in) return;
    auto pad = ConstInts(n->input(1));
    int64_t rank = Rank(n->input(0)), ax = AxisOf(n->input(0), *in);
    if (!pad || rank < 0 || ax < 0 || in->dim2 >= 0) return StopEls(in->el, kind);
    // pad lists pairs from the last axis backwards.
    int64_t from_end = rank - 1 - ax;
    if (2 * from_end + 1 < static_cast<int64_t>(pad->size()) && ((*pad)[2 * from_end] || (*pad)[2 * from_end + 1]))
      return StopEls(in->el, kind + " of the channel axis");
    chan_[n->output(0)] = *in;
  }

  void Construct(Node* n) {
    std::vector<std::optional<Chan>> members;
    bool any = false;
    for (Value* in : n->inputs()) {
      const Chan* c = ChanOf(in);
      members.push_back(c ? std::optional<Chan>(*c) : std::nullopt);
      any |= c != nullptr;
      if (!c) {
        auto* nested = Members(in);
        if (nested)
          for (auto& m : *nested)
            if (m) StopEls(m->el, "a nested list");
      }
    }
    if (any || n->kind() == c10::prim::ListConstruct) list_[n->output()] = std::move(members);
  }

  void Unpack(Node* n) {
    auto* members = Members(n->input(0));
    if (!members) return;
    for (size_t i = 0; i < n->outputs().size() && i < members->size(); ++i)
      if ((*members)[i]) chan_[n->output(i)] = *(*members)[i];
  }

  void GetItem(Node* n, const std::string& kind) {
    auto* members = Members(n->input(0));
    if (!members) return StopInputs(n, kind);
    auto i = ConstInt(n->input(1));
    if (i) {
      int64_t idx = *i < 0 ? *i + static_cast<int64_t>(members->size()) : *i;
      if (idx >= 0 && idx < static_cast<int64_t>(members->size()) && (*members)[idx]) chan_[n->output(0)] = *(*members)[idx];
      return;
    }
    // An index known only at run time: the value may hold any member's channels.
    std::vector<int> all;
    for (auto& m : *members)
      if (m) all.insert(all.end(), m->el.begin(), m->el.end());
    if (!all.empty()) taint_[n->output(0)] = std::move(all);
  }

  void Append(Node* n) {
    auto* members = Members(n->input(0));
    const Chan* c = ChanOf(n->input(1));
    if (!members) return StopInputs(n, "aten::append");
    members->push_back(c ? std::optional<Chan>(*c) : std::nullopt);
  }

  const torch::jit::Module& m_;
  std::map<Value*, Shape> shapes_;
  std::map<Value*, Shape> param_shapes_;
  bool have_shapes_;
  Elements el_;
  std::map<Value*, Chan> chan_;
  std::map<Value*, std::vector<std::optional<Chan>>> list_;
  std::map<Value*, std::vector<int>> taint_;
  std::vector<RawSlice> slices_;
  std::map<std::string, std::vector<int>> produced_;  // weight -> the elements of its first call
  std::map<std::string, std::string> kind_;
  std::map<std::string, int64_t> depthwise_;
};

}  // namespace

ModelLayout InferLayout(const torch::jit::Module& m, const LearningTask& task) {
  ModelLayout layout;
  layout.input_shape = task.Sample().shape;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) {
    if (p.value.dim() < 2 || !EndsWith(p.name, "weight")) continue;
    layout.layers.push_back({LayerOf(p.name), p.name});
  }
  if (!m.find_method("forward")) {
    layout.structured_error = "the module has no forward method";
    return layout;
  }
  try {
    auto graph = InlinedForwardGraph(m);
    std::map<Value*, Shape> shapes;
    bool have = false;
    std::string run_error;
    if (!layout.input_shape.empty()) {
      torch::jit::Module runner = m;
      if (m.is_training()) {
        runner = CloneModule(m);
        runner.eval();
      }
      auto rec = RecordValueShapes(runner, *graph, task.ExampleInputs(2));
      if (rec.ok()) {
        shapes = std::move(rec).value();
        have = true;
      } else {
        run_error = rec.status().message();
      }
    }
    Tracer t(m, std::move(shapes), have);
    t.Walk(graph->block());
    t.Finish(graph->block(), &layout);
    AddAttentionHeads(m, &layout);
    bool any = false;
    for (const auto& g : layout.groups) any |= g.blocked.empty();
    if (!any && !run_error.empty()) layout.structured_error = "structured pruning: " + run_error;
  } catch (const c10::Error& e) {
    layout.groups.clear();
    layout.structured_error = std::string("structured pruning: cannot follow this module's graph: ") + e.what_without_backtrace();
  }
  return layout;
}

}  // namespace prunelab::worker
