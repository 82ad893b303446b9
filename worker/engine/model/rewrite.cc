// Attention modules, whose heads are removed whole: their head groups (AddAttentionHeads)
// and the rewrites that let a module compute with fewer heads or groups than it was built
// with (RewriteAttention, RewriteDepthwiseGroups).
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/torch.h>

#include <string>

#include "worker/engine/model/graph.h"
#include "worker/engine/model/user_model.h"

namespace prunelab::worker {

namespace {

bool IsMultiheadAttention(const torch::jit::Module& m) {
  auto name = m.type()->name();
  if (!name) return false;
  const std::string q = name->qualifiedName();
  return q.find("torch.nn.modules.activation.") != std::string::npos && EndsWith(q, "MultiheadAttention");
}

// torchvision's Swin window attention: qkv and proj linears, the head count in num_heads;
// v1 keeps a relative position bias table with a column per head, v2 makes the bias with a
// small MLP (a row of its last weight per head) and scales cosine attention per head.
enum class Window { kNone, kV1, kV2 };
Window WindowAttentionKind(const torch::jit::Module& m) {
  auto name = m.type()->name();
  if (!name) return Window::kNone;
  const std::string q = name->qualifiedName();
  if (q.find("torchvision.models.swin_transformer.") == std::string::npos) return Window::kNone;
  if (EndsWith(q, "ShiftedWindowAttention")) return Window::kV1;
  if (EndsWith(q, "ShiftedWindowAttentionV2")) return Window::kV2;
  return Window::kNone;
}
bool IsWindowAttention(const torch::jit::Module& m) { return WindowAttentionKind(m) != Window::kNone; }

bool AttrIsTensor(const torch::jit::Module& m, const std::string& name) {
  return m.hasattr(name) && m.attr(name).isTensor() && m.attr(name).toTensor().defined();
}

bool TypeFlag(const torch::jit::Module& m, const std::string& name) {
  if (m.type()->hasConstant(name)) return m.type()->getConstant(name).toBool();
  return m.hasattr(name) && m.attr(name).isBool() && m.attr(name).toBool();
}

// Why a MultiheadAttention module's heads cannot be structures ("" when they can).
std::string AttentionUnsupported(const torch::jit::Module& a) {
  if (!TypeFlag(a, "_qkv_same_embed_dim") || !AttrIsTensor(a, "in_proj_weight"))
    return "separate q/k/v projection weights (kdim/vdim differ from embed_dim)";
  if (!AttrIsTensor(a, "in_proj_bias")) return "no in_proj_bias (bias=False)";
  if (a.hasattr("bias_k") && !a.attr("bias_k").isNone()) return "add_bias_kv=True";
  if (TypeFlag(a, "add_zero_attn")) return "add_zero_attn=True";
  if (!a.hasattr("out_proj") || !a.attr("out_proj").isModule()) return "no out_proj";
  auto out = a.attr("out_proj").toModule();
  if (!AttrIsTensor(out, "weight") || !AttrIsTensor(out, "bias")) return "out_proj without a bias";
  if (!a.hasattr("num_heads") || !a.attr("num_heads").isInt()) return "no num_heads";
  auto fn = a.find_method("forward");
  if (!fn || fn->function().getSchema().arguments().size() != 8)
    return "a forward signature this version does not know";
  return "";
}

std::string WindowAttentionUnsupported(const torch::jit::Module& a) {
  for (const char* sub : {"qkv", "proj"})
    if (!a.hasattr(sub) || !a.attr(sub).isModule() || !AttrIsTensor(a.attr(sub).toModule(), "weight"))
      return std::string("no ") + sub + " linear";
  if (WindowAttentionKind(a) == Window::kV1 && !AttrIsTensor(a, "relative_position_bias_table"))
    return "no relative_position_bias_table";
  if (WindowAttentionKind(a) == Window::kV2 &&
      (!AttrIsTensor(a, "logit_scale") || !HasTensor(a, "cpb_mlp.2.weight") || HasTensor(a, "cpb_mlp.2.bias") ||
       !HasTensor(a, "qkv.bias")))
    return "no logit_scale, qkv bias or cpb_mlp.2 (a bias-free linear)";
  if (!a.hasattr("num_heads") || !a.attr("num_heads").isInt()) return "no num_heads";
  if (!a.find_method("get_relative_position_bias")) return "no get_relative_position_bias";
  for (const char* list : {"window_size", "shift_size"})
    if (!a.hasattr(list) || !a.attr(list).isIntList() || a.attr(list).toIntVector().size() != 2)
      return std::string("no 2-D ") + list;
  auto fn = a.find_method("forward");
  if (!fn || fn->function().getSchema().arguments().size() != 2) return "a forward signature this version does not know";
  return "";
}

// Swin's windowed self-attention for any number of heads (head_dim from the qkv weight):
// pad to whole windows, cyclic shift, partition, scaled dot products plus the relative
// position bias and, when shifted, -100 between positions of different regions, softmax,
// projection, merge, shift back, crop; dropouts as torchvision applies them.
std::string WindowAttentionSource(bool v2) {
  const std::string scores_v1 = R"(
    q = qkv[0] * (1.0 / (float(d) ** 0.5))
    attn = torch.matmul(q, qkv[1].transpose(-2, -1)) + bias)";
  // v2: cosine similarity (each vector over its length, at least 1e-12) times the head's
  // scale, capped at 100; k's bias is zero.
  const std::string scores_v2 = R"(
    q = qkv[0]
    k = qkv[1]
    q = q / torch.clamp_min(torch.sqrt(torch.sum(q * q, [-1], True)), 1e-12)
    k = k / torch.clamp_min(torch.sqrt(torch.sum(k * k, [-1], True)), 1e-12)
    scale = torch.exp(torch.clamp_max(self.logit_scale, 4.605170185988092))
    attn = torch.matmul(q, k.transpose(-2, -1)) * scale + bias)";
  const std::string qkv_bias_v2 = R"(
    qb = self.qkv.bias
    third = qb.size(0) // 3
    qb = torch.cat([qb[0:third], torch.zeros_like(qb[third:2 * third]), qb[2 * third:]]))";
  return std::string(R"(
def prunelab_forward(self, x: Tensor) -> Tensor:
    bias = self.get_relative_position_bias()
    w = self.qkv.weight
    heads = self.num_heads
    ws = self.window_size
    shift = self.shift_size
    B = x.size(0)
    H = x.size(1)
    W = x.size(2)
    C = x.size(3)
    d = w.size(0) // (3 * heads)
    pad_h = (ws[0] - H % ws[0]) % ws[0]
    pad_w = (ws[1] - W % ws[1]) % ws[1]
    t = torch.constant_pad_nd(x, [0, 0, 0, pad_w, 0, pad_h], 0.0)
    PH = H + pad_h
    PW = W + pad_w
    s0 = shift[0] if ws[0] < PH else 0
    s1 = shift[1] if ws[1] < PW else 0
    nh = PH // ws[0]
    nw = PW // ws[1]
    N = ws[0] * ws[1]
    if s0 + s1 > 0:
        t = torch.roll(t, [-s0, -s1], [1, 2])
    t = t.reshape([B, nh, ws[0], nw, ws[1], C]).permute([0, 1, 3, 2, 4, 5]).reshape([B * nh * nw, N, C])
    qb = self.qkv.bias)") + (v2 ? qkv_bias_v2 : "") + R"(
    qkv = torch.linear(t, w, qb).reshape([B * nh * nw, N, 3, heads, d]).permute([2, 0, 3, 1, 4]))" +
         (v2 ? scores_v2 : scores_v1) + R"(
    if s0 + s1 > 0:
        rows = x.new_ones([PH]).cumsum(0) - 1.0
        cols = x.new_ones([PW]).cumsum(0) - 1.0
        rl = torch.ge(rows, float(PH - ws[0])).float() + torch.ge(rows, float(PH - s0)).float()
        cl = torch.ge(cols, float(PW - ws[1])).float() + torch.ge(cols, float(PW - s1)).float()
        region = (rl.unsqueeze(1) * 3.0 + cl.unsqueeze(0)).reshape([nh, ws[0], nw, ws[1]])
        region = region.permute([0, 2, 1, 3]).reshape([nh * nw, N])
        apart = torch.ne(region.unsqueeze(1) - region.unsqueeze(2), 0.0).float() * -100.0
        attn = (attn.reshape([B, nh * nw, heads, N, N]) + apart.unsqueeze(1).unsqueeze(0)).reshape([B * nh * nw, heads, N, N])
    attn = torch.dropout(torch.softmax(attn, -1), self.attention_dropout, True)
    o = torch.matmul(attn, qkv[2]).transpose(1, 2).reshape([B * nh * nw, N, heads * d])
    o = torch.dropout(torch.linear(o, self.proj.weight, self.proj.bias), self.dropout, True)
    Co = o.size(2)
    o = o.reshape([B, nh, nw, ws[0], ws[1], Co]).permute([0, 1, 3, 2, 4, 5]).reshape([B, PH, PW, Co])
    if s0 + s1 > 0:
        o = torch.roll(o, [s0, s1], [1, 2])
    return o[:, :H, :W, :].contiguous()
)";
}

// Head h of a projection whose `inner` outputs (of q, k and v each, packed) hold the heads
// in order: rows r with (r % inner) / d == h; the output projection's columns c / d == h.
void AddHeadSlices(StructureGroup* g, const std::string& qkv_w, const std::string& qkv_b, const std::string& out_w,
                   int64_t rows_n, int64_t d) {
  const int64_t inner = rows_n / 3;
  std::vector<int64_t> rows(static_cast<size_t>(rows_n)), cols(static_cast<size_t>(inner));
  for (int64_t r = 0; r < rows_n; ++r) rows[r] = (r % inner) / d;
  for (int64_t c = 0; c < inner; ++c) cols[c] = c / d;
  g->slices.push_back({qkv_w, 0, 1, true, rows});
  if (!qkv_b.empty()) g->slices.push_back({qkv_b, 0, 1, false, rows});
  g->slices.push_back({out_w, 1, 1, true, cols});
}

}  // namespace

void AddAttentionHeads(const torch::jit::Module& m, ModelLayout* layout) {
  auto& groups = layout->groups;
  for (const auto& sub : m.named_modules()) {
    const std::string& path = sub.name;
    const Window window = WindowAttentionKind(sub.value);
    if (path.empty() || (window == Window::kNone && !IsMultiheadAttention(sub.value))) continue;
    const bool swin = window != Window::kNone;
    const std::string qkv = path + (swin ? ".qkv.weight" : ".in_proj_weight");
    const std::string qkv_bias = path + (swin ? ".qkv.bias" : ".in_proj_bias");
    const std::string out = path + (swin ? ".proj.weight" : ".out_proj.weight");
    const std::string why = swin ? WindowAttentionUnsupported(sub.value) : AttentionUnsupported(sub.value);
    // v2's bias MLP ends in a row per head: the heads own those rows, not the graph pass's
    // (blocked) group of its outputs.
    if (why.empty() && window == Window::kV2)
      groups.erase(std::remove_if(groups.begin(), groups.end(),
                                  [&](const StructureGroup& o) { return o.name == path + ".cpb_mlp.2"; }),
                   groups.end());
    // The graph pass's group of the q/k/v projection's outputs (blocked at the attention
    // matmul) is what the heads replace.
    const std::string replaced = LayerOf(qkv);
    auto at = std::find_if(groups.begin(), groups.end(),
                           [&](const StructureGroup& o) { return o.name == replaced && o.kind != "head"; });
    if (!why.empty()) {
      if (at != groups.end()) at->blocked = "structured pruning cannot remove heads of attention '" + path + "': " + why;
      continue;
    }
    const int64_t heads = sub.value.attr("num_heads").toInt();
    const int64_t rows = GetTensor(m, qkv).size(0);
    if (heads < 1 || rows % (3 * heads)) continue;
    const int64_t d = rows / (3 * heads);
    StructureGroup g;
    g.name = path;
    g.kind = "head";
    g.layers = {replaced};
    AddHeadSlices(&g, qkv, HasTensor(m, qkv_bias) ? qkv_bias : "", out, rows, d);
    std::vector<int64_t> per_head(static_cast<size_t>(heads));
    std::iota(per_head.begin(), per_head.end(), 0);
    if (window == Window::kV1) g.slices.push_back({path + ".relative_position_bias_table", 1, 1, false, per_head});
    if (window == Window::kV2) {
      g.slices.push_back({path + ".logit_scale", 0, 1, false, per_head});
      g.slices.push_back({path + ".cpb_mlp.2.weight", 0, 1, false, per_head});
    }
    g.structures = heads;
    if (heads < 2) g.blocked = "structured pruning: attention '" + path + "' has a single head";
    layout->attention[path] = d;
    if (at != groups.end()) *at = std::move(g);
    else groups.push_back(std::move(g));
  }
}

namespace {

// Attention for any number of heads, the head count read from num_heads and head_dim from
// the projections: what nn.MultiheadAttention computes without bias_k/bias_v and zero
// attention (scaled dot products, additive or boolean attn_mask of [L, S], key_padding_mask,
// dropout on the weights while training, averaged or per-head weights).
std::string AttentionSource(bool batch_first) {
  return std::string(R"(
def prunelab_forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor]=None,
                     need_weights: bool=True, attn_mask: Optional[Tensor]=None,
                     average_attn_weights: bool=True) -> Tuple[Tensor, Optional[Tensor]]:
    heads = self.num_heads
    w = self.in_proj_weight
    b = self.in_proj_bias
    inner = w.size(0) // 3
    d = inner // heads
    batched = query.dim() == 3
    q_in, k_in, v_in = query, key, value
    if not batched:
        q_in, k_in, v_in = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    elif )") + (batch_first ? "True" : "False") + R"(:
        q_in, k_in, v_in = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    L = q_in.size(0)
    B = q_in.size(1)
    S = k_in.size(0)
    q = torch.linear(q_in, w[0:inner], b[0:inner]).reshape([L, B * heads, d]).transpose(0, 1)
    k = torch.linear(k_in, w[inner:2 * inner], b[inner:2 * inner]).reshape([S, B * heads, d]).transpose(0, 1)
    v = torch.linear(v_in, w[2 * inner:], b[2 * inner:]).reshape([S, B * heads, d]).transpose(0, 1)
    scores = torch.bmm(q * (1.0 / (float(d) ** 0.5)), k.transpose(1, 2))
    if attn_mask is not None:
        am = attn_mask
        if am.is_floating_point():
            scores = scores + am
        else:
            scores = scores.masked_fill(am, float("-inf"))
    if key_padding_mask is not None:
        kpm = key_padding_mask.reshape([B, 1, 1, S])
        s4 = scores.reshape([B, heads, L, S])
        if kpm.is_floating_point():
            s4 = s4 + kpm
        else:
            s4 = s4.masked_fill(kpm, float("-inf"))
        scores = s4.reshape([B * heads, L, S])
    attn = torch.softmax(scores, -1)
    attn = torch.dropout(attn, self.dropout, self.training)
    out = torch.bmm(attn, v).transpose(0, 1).reshape([L, B, heads * d])
    out = torch.linear(out, self.out_proj.weight, self.out_proj.bias)
    if not batched:
        out = out.squeeze(1)
    elif )" + (batch_first ? "True" : "False") + R"(:
        out = out.transpose(0, 1)
    weights: Optional[Tensor] = None
    if need_weights:
        a = attn.reshape([B, heads, L, S])
        if average_attn_weights:
            a = a.mean(1)
        if not batched:
            a = a.squeeze(0)
        weights = a
    return out, weights
)";
}

// forward's body becomes `return self.prunelab_forward(<its arguments>)`.
void ForwardTo(torch::jit::Module& a, const std::string& method) {
  auto& fn = torch::jit::toGraphFunction(a.get_method("forward").function());
  auto graph = fn.graph();
  Node* ret = graph->return_node();
  Node* call = graph->create(c10::prim::CallMethod, graph->inputs(), 1);
  call->s_(c10::attr::name, method);
  call->output()->setType(ret->input(0)->type());
  call->insertBefore(ret);
  ret->replaceInput(0, call->output());
  std::vector<Node*> old;
  for (Node* n : graph->nodes())
    if (n != call) old.push_back(n);
  for (auto it = old.rbegin(); it != old.rend(); ++it) (*it)->destroy();
}

}  // namespace

void RewriteAttention(torch::jit::Module& m, const ModelLayout& layout) {
  if (layout.attention.empty()) return;
  std::set<std::string> rewritten;  // class types whose forward was replaced (instances share them)
  for (const auto& [path, d] : layout.attention) {
    std::string leaf;
    torch::jit::Module a = m;
    for (size_t start = 0, dot = 0; start <= path.size(); start = dot + 1) {
      dot = path.find('.', start);
      if (dot == std::string::npos) dot = path.size();
      a = a.attr(path.substr(start, dot - start)).toModule();
    }
    const bool window = IsWindowAttention(a);
    const torch::Tensor w = window ? GetTensor(a, "qkv.weight") : a.attr("in_proj_weight").toTensor();
    a.setattr("num_heads", w.size(0) / (3 * d));
    if (a.hasattr("head_dim")) a.setattr("head_dim", d);
    const std::string type = a.type()->name()->qualifiedName();
    if (rewritten.count(type)) continue;
    rewritten.insert(type);
    if (!a.find_method("prunelab_forward"))
      a.define(window ? WindowAttentionSource(WindowAttentionKind(a) == Window::kV2)
                      : AttentionSource(TypeFlag(a, "batch_first")));
    ForwardTo(a, "prunelab_forward");
  }
  m = CloneModule(m);  // reloaded from the printed code: no executor keeps the old graphs
}

void RewriteDepthwiseGroups(torch::jit::Module& m, const ModelLayout& layout) {
  if (layout.depthwise.empty()) return;
  // A fresh copy: its class types are its own, so editing its forward touches nothing else.
  torch::jit::Module copy = CloneModule(m);
  auto& fn = torch::jit::toGraphFunction(copy.get_method("forward").function());
  auto graph = fn.graph();
  const bool optimize = torch::jit::getGraphExecutorOptimize();
  torch::jit::setGraphExecutorOptimize(true);
  torch::jit::Inline(*graph);
  torch::jit::setGraphExecutorOptimize(optimize);
  std::function<void(Block*)> fix = [&](Block* b) {
    for (Node* n : b->nodes()) {
      for (Block* sub : n->blocks()) fix(sub);
      std::string kind = n->kind().toQualString();
      if ((kind != "aten::conv1d" && kind != "aten::conv2d" && kind != "aten::conv3d") || n->inputs().size() < 7) continue;
      auto it = layout.depthwise.find(AttributePath(n->input(1)));
      if (it == layout.depthwise.end()) continue;
      int64_t groups = GetTensor(copy, it->first).size(0) / it->second;
      torch::jit::WithInsertPoint guard(n);
      n->replaceInput(6, graph->insertConstant(groups));
    }
  };
  fix(graph->block());
  m = CloneModule(copy);
}

}  // namespace prunelab::worker
