#include "worker/engine/model/quantize.h"

#include <torch/torch.h>

#include <ATen/Context.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>

#include <functional>
#include <set>

#include "worker/engine/model/graph.h"

namespace prunelab::worker {
namespace {

// What LibTorch's passes ask of an observer: forward(x) -> x recording statistics,
// calculate_qparams() -> (scale, zero_point), and dtype, qscheme, ch_axis attributes.
// Min/max over everything seen; per channel along ch_axis when ch_axis >= 0.
const char* kObserverSource = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    if x.numel() == 0:
        return x
    v = x.detach().float()
    if self.ch_axis >= 0:
        y = v.transpose(0, self.ch_axis).flatten(1)
        mn = torch.amin(y, [1])
        mx = torch.amax(y, [1])
    else:
        mn = torch.min(v)
        mx = torch.max(v)
    if self.min_val.numel() == 0:
        self.min_val = mn
        self.max_val = mx
    else:
        self.min_val = torch.minimum(self.min_val, mn)
        self.max_val = torch.maximum(self.max_val, mx)
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    mn = torch.clamp(self.min_val, max=0.0)
    mx = torch.clamp(self.max_val, min=0.0)
    levels = float(self.quant_max - self.quant_min)
    if self.qscheme == 2 or self.qscheme == 3:
        amax = torch.maximum(-mn, mx)
        scale = torch.clamp(amax / (levels / 2.0), min=self.eps)
        zero_point = torch.zeros_like(scale).long()
    else:
        scale = torch.clamp((mx - mn) / levels, min=self.eps)
        zero_point = torch.clamp(self.quant_min - torch.round(mn / scale).long(), self.quant_min, self.quant_max)
    return scale, zero_point
)JIT";

// Dynamic quantization's activation "observer": records nothing; LibTorch's pass reads
// compute_dtype (what the activation is quantized to, per batch at run time) and the
// class name (a PlaceholderObserver).
const char* kPlaceholderSource = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return torch.ones([1]), torch.zeros([1]).long()
)JIT";

torch::jit::Module Placeholder() {
  torch::jit::Module o("__torch__.prunelab.quantization.PlaceholderObserver");
  o.register_attribute("training", c10::BoolType::get(), false);
  o.register_attribute("dtype", c10::IntType::get(), static_cast<int64_t>(at::kFloat));
  o.register_attribute("compute_dtype", c10::IntType::get(), static_cast<int64_t>(at::kQUInt8));
  o.register_attribute("qscheme", c10::IntType::get(), static_cast<int64_t>(at::kPerTensorAffine));
  o.define(kPlaceholderSource);
  return o;
}

torch::jit::Module Observer(const std::string& cls, c10::ScalarType dtype, c10::QScheme qscheme, int64_t ch_axis,
                            int64_t qmin, int64_t qmax) {
  torch::jit::Module o("__torch__.prunelab.quantization." + cls);
  o.register_attribute("training", c10::BoolType::get(), false);
  o.register_attribute("dtype", c10::IntType::get(), static_cast<int64_t>(dtype));
  o.register_attribute("qscheme", c10::IntType::get(), static_cast<int64_t>(qscheme));
  o.register_attribute("ch_axis", c10::IntType::get(), ch_axis);
  o.register_attribute("quant_min", c10::IntType::get(), qmin);
  o.register_attribute("quant_max", c10::IntType::get(), qmax);
  o.register_attribute("eps", c10::FloatType::get(), 1.1920928955078125e-07);
  o.register_buffer("min_val", torch::empty({0}));
  o.register_buffer("max_val", torch::empty({0}));
  o.define(kObserverSource);
  return o;
}

bool Is(Node* n, const char* kind) { return std::string(n->kind().toQualString()) == kind; }

// conv2d -> batch_norm (eval) becomes one conv2d with scaled weights and a shifted bias:
// w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta.
int64_t FoldBatchNorms(torch::jit::Module& m, const std::shared_ptr<Graph>& g) {
  const std::vector<Node*> all = AllNodes(g->block());
  int64_t folded = 0;
  Value* self = g->inputs()[0];
  torch::NoGradGuard no_grad;
  for (Node* bn : all) {
    if (!Is(bn, "aten::batch_norm") || bn->inputs().size() < 8) continue;
    Node* conv = bn->input(0)->node();
    if (!Is(conv, "aten::conv2d") || conv->owningBlock() != bn->owningBlock()) continue;
    bool only_bn = true;  // besides the batch norm, only reads of its shape (BatchNorm2d's input check)
    for (const auto& use : conv->output()->uses())
      only_bn &= use.user == bn || Is(use.user, "aten::dim") || Is(use.user, "aten::size");
    if (!only_bn) continue;
    auto eps = torch::jit::toIValue(bn->input(7));
    auto training = torch::jit::toIValue(bn->input(5));
    if (!eps || !eps->isDouble() || !training || !training->isBool() || training->toBool()) continue;
    const std::string w = AttributePath(conv->input(1));
    const std::string mean = AttributePath(bn->input(3)), var = AttributePath(bn->input(4));
    if (w.empty() || mean.empty() || var.empty() || !HasTensor(m, w) || !HasTensor(m, mean) || !HasTensor(m, var)) continue;
    auto optional = [&](Value* v, std::string* path) {  // a tensor attribute, or None
      if (v->type()->kind() == c10::TypeKind::NoneType) {
        path->clear();
        return true;
      }
      *path = AttributePath(v);
      if (path->empty()) return false;
      if (HasTensor(m, *path)) return true;
      if (v->type()->kind() != c10::TypeKind::OptionalType) return false;
      path->clear();  // an Optional[Tensor] attribute holding None (Conv2d(bias=False))
      return true;
    };
    std::string b, gamma, beta;
    if (!optional(conv->input(2), &b) || !optional(bn->input(1), &gamma) || !optional(bn->input(2), &beta)) continue;
    torch::Tensor wt = GetTensor(m, w), rm = GetTensor(m, mean), rv = GetTensor(m, var);
    const int64_t c = wt.size(0);
    torch::Tensor bt = b.empty() ? torch::zeros({c}) : GetTensor(m, b);
    torch::Tensor gt = gamma.empty() ? torch::ones({c}) : GetTensor(m, gamma);
    torch::Tensor et = beta.empty() ? torch::zeros({c}) : GetTensor(m, beta);
    torch::Tensor k = gt / torch::sqrt(rv + eps->toDouble());
    std::vector<int64_t> shape(wt.dim(), 1);
    shape[0] = c;
    const std::string name = "prunelab_folded_" + std::to_string(folded);
    m.register_parameter(name + "_w", (wt * k.reshape(shape)).detach().contiguous(), false);
    m.register_parameter(name + "_b", ((bt - rm) * k + et).detach().contiguous(), false);
    torch::jit::WithInsertPoint guard(conv);
    conv->replaceInput(1, g->insertGetAttr(self, name + "_w"));
    conv->replaceInput(2, g->insertGetAttr(self, name + "_b"));
    bn->output()->replaceAllUsesWith(conv->output());
    bn->destroy();
    ++folded;
  }
  torch::jit::EliminateDeadCode(g);
  return folded;
}

// Tensors the forward no longer reads become empty, so the saved module holds the packed
// int8 weights and not also the float ones.
void DropUnreadTensors(torch::jit::Module& m) {
  auto g = m.get_method("forward").graph();
  const std::vector<Node*> all = AllNodes(g->block());
  std::set<std::string> read;
  for (Node* n : all)
    if (n->kind() == c10::prim::GetAttr) read.insert(AttributePath(n->output()));
  for (const auto& p : m.named_parameters(/*recurse=*/true))
    if (!read.count(p.name)) SetTensor(m, p.name, torch::empty({0}));
  for (const auto& p : m.named_buffers(/*recurse=*/true))
    if (!read.count(p.name)) SetTensor(m, p.name, torch::empty({0}));
}

}  // namespace

StatusOr<std::string> SelectQuantizedEngine() {
  const auto& engines = at::globalContext().supportedQEngines();
  auto has = [&](at::QEngine e) { return std::find(engines.begin(), engines.end(), e) != engines.end(); };
  if (has(at::QEngine::ONEDNN)) {
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    return std::string("onednn");
  }
  if (has(at::QEngine::QNNPACK)) {
    at::globalContext().setQEngine(at::QEngine::QNNPACK);
    return std::string("qnnpack");
  }
  if (has(at::QEngine::FBGEMM)) {
    at::globalContext().setQEngine(at::QEngine::FBGEMM);
    return std::string("fbgemm");
  }
  return Status::InvalidArgument("quantize: this worker's LibTorch has no quantized engine (onednn, qnnpack or fbgemm)");
}

StatusOr<torch::jit::Module> QuantizeInt8(const torch::jit::Module& m, const std::string& mode, const LearningTask& task,
                                          const Dataset& calibration, int batches, int batch_size, QuantizeReport* report) {
  if (mode != "int8" && mode != "int8_dynamic")
    return Status::InvalidArgument("quantize: '" + mode + "' (allowed: none, int8, int8_dynamic)");
  const bool dynamic = mode == "int8_dynamic";
  auto engine = SelectQuantizedEngine();
  if (!engine.ok()) return engine.status();
  QuantizeReport r;
  r.mode = mode;
  r.engine = engine.value();
  try {
    torch::jit::Module q = CloneModule(m);
    q.eval();
    auto g = torch::jit::toGraphFunction(q.get_method("forward").function()).graph();
    InlineGraph(*g);
    torch::jit::ConstantPropagation(g);
    FoldModuleConfiguration(q, g, /*fold_training=*/true);
    if (!dynamic) r.folded_batch_norms = FoldBatchNorms(q, g);
    q = CloneModule(q);  // the edited forward, reloaded: the passes see one clean graph
    q.eval();
    torch::jit::QConfigDict config;
    if (dynamic) {
      config[""] = std::make_tuple(Placeholder(), Observer("MinMaxObserver", at::kQInt8, at::kPerTensorSymmetric, -1, -128, 127));
      r.weights = "qint8, symmetric per tensor (min/max), linear layers";
      r.activations = "quint8, scale and zero point chosen per batch at run time";
    } else {
      config[""] = std::make_tuple(Observer("MinMaxObserver", at::kQUInt8, at::kPerTensorAffine, -1, 0, 255),
                                   Observer("PerChannelMinMaxObserver", at::kQInt8, at::kPerChannelSymmetric, 0, -128, 127));
      r.weights = "qint8, symmetric per output channel (min/max)";
      r.activations = "quint8, affine per tensor (min/max over the calibration batches)";
    }
    const auto type = dynamic ? torch::jit::QuantType::DYNAMIC : torch::jit::QuantType::STATIC;
    torch::jit::Module observed = torch::jit::InsertObservers(q, "forward", config, /*inplace=*/true, type);
    torch::NoGradGuard no_grad;
    const int64_t n = calibration.size();
    for (int b = 0; b < (dynamic ? 0 : std::max(1, batches)); ++b) {
      int64_t start = (static_cast<int64_t>(b) * batch_size) % std::max<int64_t>(1, n);
      int64_t end = std::min(n, start + batch_size);
      if (end <= start) break;
      observed.forward(task.Range(calibration, start, end).inputs);
      r.calibration_samples += end - start;
    }
    if (!dynamic && r.calibration_samples == 0) return Status::InvalidArgument("quantize: the calibration set is empty");
    torch::jit::Module converted = torch::jit::InsertQuantDeQuant(observed, "forward", /*inplace=*/true, false, type);
    torch::jit::Module finalized = torch::jit::Finalize(converted, type);
    DropUnreadTensors(finalized);
    torch::jit::Module out = CloneModule(finalized);
    out.eval();
    for (Node* node : AllNodes(out.get_method("forward").graph()->block())) {
      std::string k = node->kind().toQualString();
      if (k.rfind("quantized::conv", 0) == 0 || k.rfind("quantized::linear", 0) == 0) ++r.quantized_ops;
      if (k == "aten::conv2d" || k == "aten::conv1d" || k == "aten::conv3d" || k == "aten::linear") ++r.float_ops;
    }
    if (r.quantized_ops == 0)
      return Status::InvalidArgument("quantize " + mode + ": no convolution or linear layer was quantized (" +
                                     std::to_string(r.float_ops) + " left in float)" +
                                     (dynamic ? "; int8_dynamic quantizes linear layers only: use int8 for convolutions" : ""));
    // The quantized module runs and keeps the output's shape.
    auto x = task.Range(calibration, 0, std::min<int64_t>(n, 2)).inputs;
    auto want = CloneModule(m);
    want.eval();
    auto expect = want.forward(x).toTensor();
    auto got = out.forward(x).toTensor();
    if (got.sizes() != expect.sizes())
      return Status::InvalidArgument("quantize: the quantized model outputs " + c10::str(got.sizes()) + " instead of " +
                                     c10::str(expect.sizes()));
    if (!torch::isfinite(got).all().item<bool>())
      return Status::InvalidArgument("quantize: the quantized model outputs non-finite values");
    if (report) *report = r;
    return out;
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("quantize " + mode + ": LibTorch's quantization passes failed on this model: " +
                                   e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::InvalidArgument("quantize " + mode + ": " + std::string(e.what()));
  }
}

}  // namespace prunelab::worker
