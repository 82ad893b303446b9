#include <torch/torch.h>

#include "worker/engine/model/zoo.h"

namespace prunelab::worker {
namespace {

const char* kMlpSource = R"JIT(
def run(self, x: Tensor, keep: bool, acts: List[Tensor]) -> Tensor:
    h = torch.relu(torch.linear(torch.flatten(x, 1), self.fc1_w, self.fc1_b))
    if keep:
        acts.append(h)
    h = torch.relu(torch.linear(h, self.fc2_w, self.fc2_b))
    if keep:
        acts.append(h)
    return torch.linear(h, self.fc3_w, self.fc3_b)
)JIT";

const char* kCnnSource = R"JIT(
def run(self, x: Tensor, keep: bool, acts: List[Tensor]) -> Tensor:
    x = torch.conv2d(x, self.conv1_w, self.conv1_b, [1, 1], [1, 1], [1, 1], 1)
    x = torch.relu(torch.batch_norm(x, self.bn1_w, self.bn1_b, self.bn1_mean, self.bn1_var, self.training, 0.1, 1e-5, False))
    if keep:
        acts.append(x)
    x = torch.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False)
    x = torch.conv2d(x, self.conv2_w, self.conv2_b, [1, 1], [1, 1], [1, 1], 1)
    x = torch.relu(torch.batch_norm(x, self.bn2_w, self.bn2_b, self.bn2_mean, self.bn2_var, self.training, 0.1, 1e-5, False))
    if keep:
        acts.append(x)
    x = torch.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False)
    x = torch.relu(torch.linear(torch.flatten(x, 1), self.fc1_w, self.fc1_b))
    if keep:
        acts.append(x)
    return torch.linear(x, self.fc2_w, self.fc2_b)
)JIT";

// ResNet and ViT sources are generated: helper methods called from run() did not survive
// torch::jit::freeze's clone of a loaded module (LibTorch 1.13), so everything is inlined.
std::string Cbn(const std::string& x, const std::string& n, int stride, int pad) {
  std::string s = std::to_string(stride), p = std::to_string(pad);
  return "torch.batch_norm(torch.conv2d(" + x + ", self." + n + "_w, None, [" + s + ", " + s + "], [" + p + ", " + p +
         "], [1, 1], 1), self." + n + "_bn_w, self." + n + "_bn_b, self." + n + "_bn_mean, self." + n +
         "_bn_var, self.training, 0.1, 1e-5, False)";
}

std::string ResnetSource() {
  std::string src = "def run(self, x: Tensor, keep: bool, acts: List[Tensor]) -> Tensor:\n";
  auto line = [&](const std::string& l) { src += "    " + l + "\n"; };
  auto keep = [&](const std::string& v) { src += "    if keep:\n        acts.append(" + v + ")\n"; };
  line("h = torch.relu(" + Cbn("x", "stem", 1, 1) + ")");
  line("y = torch.relu(" + Cbn("h", "b1a", 1, 1) + ")");
  keep("y");
  line("y = " + Cbn("y", "b1b", 1, 1));
  line("h = torch.relu(h + y)");
  keep("h");
  for (const char* b : {"b2", "b3"}) {
    std::string n(b);
    line("y = torch.relu(" + Cbn("h", n + "a", 2, 1) + ")");
    keep("y");
    line("y = " + Cbn("y", n + "b", 1, 1));
    line("s = " + Cbn("h", n + "s", 2, 0));
    line("h = torch.relu(s + y)");
    keep("h");
  }
  line("return torch.linear(torch.mean(h, [2, 3]), self.fc_w, self.fc_b)");
  return src;
}

// One pre-norm transformer layer of the zoo's ViT and decoder (weights `b`q_w, ... at prefix
// `b`), as TorchScript lines indented `indent` levels: multi-head attention (the head count from
// q's rows; scores masked where the bool tensor `mask` is true), then a GELU MLP, each added to
// the residual stream h. probe: the heads' and neurons' activations go to `acts` when `keep`.
// cache >= 0: the layer's keys and values are appended to `out`, after the cached ones
// (cache[2 * layer], cache[2 * layer + 1]) when `past`.
struct LayerSource {
  std::string mask;
  bool probe = false;
  int cache = -1;
  bool past = false;
};
std::string TransformerLayer(const std::string& b, int indent, const LayerSource& o) {
  std::string src;
  const std::string pad(4 * indent, ' ');
  auto line = [&](const std::string& l) { src += pad + l + "\n"; };
  line("a = torch.layer_norm(h, [D], " + b + "ln1_w, " + b + "ln1_b, 1e-5, False)");
  line("H = " + b + "q_w.size(0) // d");
  for (const char* qkv : {"q", "k", "v"})
    line(std::string(qkv) + " = torch.linear(a, " + b + qkv + "_w, " + b + qkv + "_b).reshape([B, N, H, d]).transpose(1, 2)");
  if (o.cache >= 0) {
    if (o.past) {
      line("k = torch.cat([cache[" + std::to_string(2 * o.cache) + "], k], 2)");
      line("v = torch.cat([cache[" + std::to_string(2 * o.cache + 1) + "], v], 2)");
    }
    line("out.append(k)");
    line("out.append(v)");
  }
  line("s = torch.matmul(q, k.transpose(2, 3)) * (1.0 / (float(d) ** 0.5))");
  if (!o.mask.empty()) line("s = s.masked_fill(" + o.mask + ", float('-inf'))");
  line("o = torch.matmul(torch.softmax(s, -1), v)");
  if (o.probe) src += pad + "if keep:\n" + pad + "    acts.append(o)\n";
  line("h = h + torch.linear(o.transpose(1, 2).reshape([B, N, H * d]), " + b + "o_w, " + b + "o_b)");
  line("m = torch.gelu(torch.linear(torch.layer_norm(h, [D], " + b + "ln2_w, " + b + "ln2_b, 1e-5, False), " + b +
       "fc1_w, " + b + "fc1_b))");
  if (o.probe) src += pad + "if keep:\n" + pad + "    acts.append(m.transpose(1, 2))\n";
  line("h = h + torch.linear(m, " + b + "fc2_w, " + b + "fc2_b)");
  return src;
}

std::string VitSource() {
  std::string src = "def run(self, x: Tensor, keep: bool, acts: List[Tensor]) -> Tensor:\n";
  auto line = [&](const std::string& l) { src += "    " + l + "\n"; };
  line("B = x.size(0)");
  line("p = x.reshape([B, 4, 7, 4, 7]).permute([0, 1, 3, 2, 4]).reshape([B, 16, 49])");
  line("h = torch.linear(p, self.patch_w, self.patch_b) + self.pos");
  line("N = h.size(1)");
  line("D = h.size(2)");
  line("d = self.head_dim");
  for (const char* blk : {"b0_", "b1_"}) src += TransformerLayer(std::string("self.") + blk, 1, {"", true});
  line("h = torch.layer_norm(h, [D], self.ln_w, self.ln_b, 1e-5, False)");
  line("return torch.linear(torch.mean(h, 1), self.head_w, self.head_b)");
  return src;
}

// The zoo decoder: GPT-2's layout (learned positions, pre-norm blocks of causal multi-head
// attention and a GELU MLP, tied input and output embeddings), written as users write it.
std::string GptSource(int layers) {
  std::string src = "def run(self, x: Tensor, keep: bool, acts: List[Tensor]) -> Tensor:\n";
  auto line = [&](const std::string& l) { src += "    " + l + "\n"; };
  line("B = x.size(0)");
  line("N = x.size(1)");
  line("h = torch.embedding(self.wte, x) + self.wpe[0:N]");
  line("D = h.size(2)");
  line("d = self.head_dim");
  line("t = torch.arange(N, device=x.device)");
  line("causal = t.unsqueeze(0) > t.unsqueeze(1)");
  for (int i = 0; i < layers; ++i) src += TransformerLayer("self.b" + std::to_string(i) + "_", 1, {"causal", true});
  line("h = torch.layer_norm(h, [D], self.ln_w, self.ln_b, 1e-5, False)");
  line("return torch.linear(h, self.wte)");
  return src;
}

// The zoo decoder's key/value cache (the generation contract, see zoo.h): prefill(ids) ->
// (logits, cache) and decode(ids, cache) -> (logits, cache); the cache holds each layer's keys
// and values [B, heads, tokens, head_dim]. A layer whose weights depth pruning emptied is
// skipped (its slots hold empty tensors), as forward() no longer computes it; head counts come
// from the weights, so removed heads shrink the cache.
std::string GptCachedSource(int layers) {
  std::string src;
  auto line = [&](int indent, const std::string& l) { src += std::string(4 * indent, ' ') + l + "\n"; };
  auto layer = [&](int i, bool prefill) {
    const std::string b = "self.b" + std::to_string(i) + "_";
    line(1, "if " + b + "q_w.numel() > 0:");
    src += TransformerLayer(b, 2, {prefill ? "causal" : "", false, i, !prefill});
    line(1, "else:");
    line(2, prefill ? "out.append(torch.zeros([0]))" : "out.append(cache[" + std::to_string(2 * i) + "])");
    line(2, prefill ? "out.append(torch.zeros([0]))" : "out.append(cache[" + std::to_string(2 * i + 1) + "])");
  };
  line(0, "def prefill(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:");
  line(1, "B = x.size(0)");
  line(1, "N = x.size(1)");
  line(1, "h = torch.embedding(self.wte, x) + self.wpe[0:N]");
  line(1, "D = h.size(2)");
  line(1, "d = self.head_dim");
  line(1, "t = torch.arange(N, device=x.device)");
  line(1, "causal = t.unsqueeze(0) > t.unsqueeze(1)");
  line(1, "out: List[Tensor] = []");
  for (int i = 0; i < layers; ++i) layer(i, true);
  line(1, "h = torch.layer_norm(h, [D], self.ln_w, self.ln_b, 1e-5, False)");
  line(1, "return torch.linear(h, self.wte), out");
  line(0, "");
  line(0, "def decode(self, x: Tensor, cache: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:");
  line(1, "B = x.size(0)");
  line(1, "N = x.size(1)");
  line(1, "P = 0");
  line(1, "for c in cache:");
  line(2, "if c.dim() == 4:");
  line(3, "P = c.size(2)");
  line(1, "h = torch.embedding(self.wte, x) + self.wpe[P:P + N]");
  line(1, "D = h.size(2)");
  line(1, "d = self.head_dim");
  line(1, "out: List[Tensor] = []");
  for (int i = 0; i < layers; ++i) layer(i, false);
  line(1, "h = torch.layer_norm(h, [D], self.ln_w, self.ln_b, 1e-5, False)");
  line(1, "return torch.linear(h, self.wte), out");
  return src;
}

// forward() and probe() share run(): probe returns one activation per structure group.
const char* kEntryPoints = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    acts: List[Tensor] = []
    return self.run(x, False, acts)

def probe(self, x: Tensor) -> List[Tensor]:
    acts: List[Tensor] = []
    self.run(x, True, acts)
    return acts
)JIT";

// Registers parameters and buffers and records the layout as it goes.
class Builder {
 public:
  Builder(const std::string& cls, uint64_t seed) : m_("__torch__.prunelab." + cls) {
    torch::manual_seed(seed);
    m_.register_attribute("training", c10::BoolType::get(), true);
  }
  void Param(const std::string& name, torch::Tensor t) { m_.register_parameter(name, t.set_requires_grad(true), false); }
  // A linear or conv layer `name` with weights `name_w` (and bias `name_b`), prunable.
  void Layer(const std::string& name, std::vector<int64_t> shape, bool bias = true) {
    auto [w, b] = InitLayer(shape);
    Param(name + "_w", w);
    if (bias) Param(name + "_b", b);
    layout_.layers.push_back({name, name + "_w"});
  }
  void BatchNorm(const std::string& p, int64_t c) {
    Param(p + "_w", torch::ones({c}));
    Param(p + "_b", torch::zeros({c}));
    m_.register_buffer(p + "_mean", torch::zeros({c}));
    m_.register_buffer(p + "_var", torch::ones({c}));
  }
  void LayerNorm(const std::string& p, int64_t c) {
    Param(p + "_w", torch::ones({c}));
    Param(p + "_b", torch::zeros({c}));
  }
  void Group(StructureGroup g) { layout_.groups.push_back(std::move(g)); }
  // A prunable layer whose parameters `name_w` (and `name_b`) are registered already.
  void AddLayer(const std::string& name) { layout_.layers.push_back({name, name + "_w"}); }
  BuiltModel Finish(const std::string& source) {
    m_.define(source);
    m_.define(kEntryPoints);
    layout_.has_probe = true;
    return {m_, layout_};
  }
  torch::jit::Module& module() { return m_; }

 private:
  torch::jit::Module m_;
  ModelLayout layout_;
};

// Producer rows of a layer (weight scored, bias), and the batch-norm entries after it.
std::vector<Slice> Producer(const std::string& layer, bool bias, const std::string& bn = "", int64_t block = 1) {
  std::vector<Slice> s{{layer + "_w", 0, block, true}};
  if (bias) s.push_back({layer + "_b", 0, block, false});
  if (!bn.empty())
    for (const char* suffix : {"_w", "_b", "_mean", "_var"}) s.push_back({bn + suffix, 0, block, false});
  return s;
}
Slice Consumer(const std::string& layer, int64_t block = 1) { return {layer + "_w", 1, block, false}; }

StructureGroup MakeGroup(const std::string& name, const std::string& kind, std::vector<std::vector<Slice>> parts,
                         std::vector<std::string> layers) {
  StructureGroup g{name, kind, {}, std::move(layers), ""};
  for (auto& p : parts) g.slices.insert(g.slices.end(), p.begin(), p.end());
  return g;
}

BuiltModel Mlp(uint64_t seed) {
  Builder b("FashionMLP", seed);
  b.Layer("fc1", {256, 784});
  b.Layer("fc2", {128, 256});
  b.Layer("fc3", {10, 128});
  b.Group(MakeGroup("fc1", "neuron", {Producer("fc1", true), {Consumer("fc2")}}, {"fc1"}));
  b.Group(MakeGroup("fc2", "neuron", {Producer("fc2", true), {Consumer("fc3")}}, {"fc2"}));
  return b.Finish(kMlpSource);
}

BuiltModel Cnn(uint64_t seed) {
  Builder b("FashionCNN", seed);
  b.Layer("conv1", {32, 1, 3, 3});
  b.BatchNorm("bn1", 32);
  b.Layer("conv2", {64, 32, 3, 3});
  b.BatchNorm("bn2", 64);
  b.Layer("fc1", {128, 64 * 7 * 7});
  b.Layer("fc2", {10, 128});
  b.Group(MakeGroup("conv1", "channel", {Producer("conv1", true, "bn1"), {Consumer("conv2")}}, {"conv1"}));
  b.Group(MakeGroup("conv2", "channel", {Producer("conv2", true, "bn2"), {Consumer("fc1", 49)}}, {"conv2"}));
  b.Group(MakeGroup("fc1", "neuron", {Producer("fc1", true), {Consumer("fc2")}}, {"fc1"}));
  return b.Finish(kCnnSource);
}

BuiltModel Resnet(uint64_t seed) {
  Builder b("FashionResNet", seed);
  auto conv = [&](const std::string& n, int64_t out, int64_t in, int64_t k) {
    b.Layer(n, {out, in, k, k}, /*bias=*/false);
    b.BatchNorm(n + "_bn", out);
  };
  conv("stem", 16, 1, 3);
  conv("b1a", 16, 16, 3);
  conv("b1b", 16, 16, 3);
  conv("b2a", 32, 16, 3);
  conv("b2b", 32, 32, 3);
  conv("b2s", 32, 16, 1);
  conv("b3a", 64, 32, 3);
  conv("b3b", 64, 64, 3);
  conv("b3s", 64, 32, 1);
  b.Layer("fc", {10, 64});
  auto prod = [](const std::string& n) { return Producer(n, false, n + "_bn"); };
  // Group order follows probe()'s activations.
  b.Group(MakeGroup("b1a", "channel", {prod("b1a"), {Consumer("b1b")}}, {"b1a"}));
  b.Group(MakeGroup("res1", "residual", {prod("stem"), prod("b1b"), {Consumer("b1a"), Consumer("b2a"), Consumer("b2s")}},
                    {"stem", "b1b"}));
  b.Group(MakeGroup("b2a", "channel", {prod("b2a"), {Consumer("b2b")}}, {"b2a"}));
  b.Group(MakeGroup("res2", "residual", {prod("b2b"), prod("b2s"), {Consumer("b3a"), Consumer("b3s")}}, {"b2b", "b2s"}));
  b.Group(MakeGroup("b3a", "channel", {prod("b3a"), {Consumer("b3b")}}, {"b3a"}));
  b.Group(MakeGroup("res3", "residual", {prod("b3b"), prod("b3s"), {Consumer("fc")}}, {"b3b", "b3s"}));
  return b.Finish(ResnetSource());
}

BuiltModel Vit(uint64_t seed) {
  constexpr int64_t kDim = 64, kHeads = 4, kHeadDim = 16, kMlp = 128;
  Builder b("FashionViT", seed);
  b.module().register_attribute("head_dim", c10::IntType::get(), kHeadDim);
  b.Layer("patch", {kDim, 49});
  b.Param("pos", torch::randn({16, kDim}) * 0.02);
  for (int i = 0; i < 2; ++i) {
    std::string p = "b" + std::to_string(i) + "_";
    b.LayerNorm(p + "ln1", kDim);
    for (const char* n : {"q", "k", "v"}) b.Layer(p + n, {kHeads * kHeadDim, kDim});
    b.Layer(p + "o", {kDim, kHeads * kHeadDim});
    b.LayerNorm(p + "ln2", kDim);
    b.Layer(p + "fc1", {kMlp, kDim});
    b.Layer(p + "fc2", {kDim, kMlp});
    b.Group(MakeGroup(p + "heads", "head",
                      {Producer(p + "q", true, "", kHeadDim), Producer(p + "k", true, "", kHeadDim),
                       Producer(p + "v", true, "", kHeadDim), {Slice{p + "o_w", 1, kHeadDim, true}}},
                      {p + "q", p + "k", p + "v"}));
    b.Group(MakeGroup(p + "mlp", "neuron", {Producer(p + "fc1", true), {Consumer(p + "fc2")}}, {p + "fc1"}));
  }
  b.LayerNorm("ln", kDim);
  b.Layer("head", {10, kDim});
  return b.Finish(VitSource());
}

BuiltModel Gpt(uint64_t seed, int64_t vocabulary, int64_t positions) {
  Builder b("ZooGPT", seed);
  b.module().register_attribute("head_dim", c10::IntType::get(), kGptHeadDim);
  // GPT-2's initialization: N(0, 0.02) embeddings and weights, the residual projections
  // scaled down by sqrt(2 * layers), zero biases.
  auto normal = [](std::vector<int64_t> shape, double sd) { return torch::randn(shape) * sd; };
  b.Param("wte", normal({vocabulary, kGptWidth}, 0.02));
  b.Param("wpe", normal({positions, kGptWidth}, 0.01));
  const double proj_sd = 0.02 / std::sqrt(2.0 * kGptLayers);
  auto layer = [&](const std::string& n, int64_t out, int64_t in, double sd) {
    b.Param(n + "_w", normal({out, in}, sd));
    b.Param(n + "_b", torch::zeros({out}));
    b.AddLayer(n);
  };
  for (int i = 0; i < kGptLayers; ++i) {
    std::string p = "b" + std::to_string(i) + "_";
    b.LayerNorm(p + "ln1", kGptWidth);
    for (const char* n : {"q", "k", "v"}) layer(p + n, kGptHeads * kGptHeadDim, kGptWidth, 0.02);
    layer(p + "o", kGptWidth, kGptHeads * kGptHeadDim, proj_sd);
    b.LayerNorm(p + "ln2", kGptWidth);
    layer(p + "fc1", kGptMlp, kGptWidth, 0.02);
    layer(p + "fc2", kGptWidth, kGptMlp, proj_sd);
    b.Group(MakeGroup(p + "heads", "head",
                      {Producer(p + "q", true, "", kGptHeadDim), Producer(p + "k", true, "", kGptHeadDim),
                       Producer(p + "v", true, "", kGptHeadDim), {Slice{p + "o_w", 1, kGptHeadDim, true}}},
                      {p + "q", p + "k", p + "v"}));
    b.Group(MakeGroup(p + "mlp", "neuron", {Producer(p + "fc1", true), {Consumer(p + "fc2")}}, {p + "fc1"}));
  }
  b.LayerNorm("ln", kGptWidth);
  BuiltModel built = b.Finish(GptSource(kGptLayers));
  built.module.define(GptCachedSource(kGptLayers));
  return built;
}

}  // namespace

StatusOr<BuiltModel> BuildZooModel(const std::string& name, uint64_t seed, const SampleSpec& sample) {
  if (name == "mlp") return Mlp(seed);
  if (name == "cnn") return Cnn(seed);
  if (name == "resnet") return Resnet(seed);
  if (name == "vit") return Vit(seed);
  if (name == "gpt") {
    const int64_t positions = sample.shape.empty() ? 64 : sample.shape[0];
    return Gpt(seed, sample.vocabulary > 0 ? sample.vocabulary : 256, positions);
  }
  return Status::InvalidArgument("model '" + name + "' is not in the zoo (have: mlp, cnn, resnet, vit, gpt)");
}

StatusOr<ModelLayout> ZooLayout(const std::string& name) {
  auto m = BuildZooModel(name, 0, SampleSpec{at::kLong, {8}, 16});
  if (!m.ok()) return m.status();
  return m->layout;
}

torch::jit::Module BuildFashionCnn(uint64_t seed) { return Cnn(seed).module; }

const ModelLayout& FashionCnnLayout() {
  static const ModelLayout layout = Cnn(0).layout;
  return layout;
}

}  // namespace prunelab::worker
