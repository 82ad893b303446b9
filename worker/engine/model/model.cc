#include "worker/engine/model/model.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

namespace prunelab::worker {

std::vector<std::string> ModelLayout::WeightParams() const {
  std::vector<std::string> out;
  for (const auto& l : layers) out.push_back(l.weight);
  return out;
}

const StructureGroup* ModelLayout::Group(const std::string& name) const {
  for (const auto& g : groups)
    if (g.name == name) return &g;
  return nullptr;
}

int64_t ModelLayout::Structures(const torch::jit::Module& m, const StructureGroup& g) const {
  if (g.structures > 0) return g.structures;
  const Slice& s = g.slices.front();
  return GetTensor(m, s.param).size(s.dim) / s.block;
}

namespace {
// The module that owns a dotted attribute path ("features.0.weight" -> features.0, "weight").
torch::jit::Module Owner(const torch::jit::Module& m, const std::string& name, std::string* leaf) {
  torch::jit::Module cur = m;
  size_t start = 0;
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', start)) {
    cur = cur.attr(name.substr(start, dot - start)).toModule();
    start = dot + 1;
  }
  *leaf = name.substr(start);
  return cur;
}
}  // namespace

torch::Tensor GetTensor(const torch::jit::Module& m, const std::string& name) {
  std::string leaf;
  return Owner(m, name, &leaf).attr(leaf).toTensor();
}

void SetTensor(torch::jit::Module& m, const std::string& name, const torch::Tensor& value) {
  std::string leaf;
  Owner(m, name, &leaf).setattr(leaf, value);
}

bool HasTensor(const torch::jit::Module& m, const std::string& name) {
  try {
    std::string leaf;
    auto owner = Owner(m, name, &leaf);
    return owner.hasattr(leaf) && owner.attr(leaf).isTensor();
  } catch (const c10::Error&) {
    return false;
  }
}

int64_t CountParameters(const torch::jit::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string SaveToBytes(const torch::jit::Module& m) {
  std::ostringstream os;
  m.save(os);
  return os.str();
}

StatusOr<torch::jit::Module> LoadFromBytes(const std::string& bytes) {
  try {
    std::istringstream is(bytes);
    return torch::jit::load(is);
  } catch (const c10::Error& e) {
    return Status::Corruption(std::string("cannot load TorchScript module: ") + e.what_without_backtrace());
  }
}

torch::jit::Module CloneModule(const torch::jit::Module& m) {
  // Through serialization: Module::deepcopy of a loaded module whose submodules share
  // mangled class types lost their methods ("Couldn't find method 'forward'") in LibTorch
  // 1.13. The reloaded parameters are leaves an optimizer can own.
  auto copy = LoadFromBytes(SaveToBytes(m));
  if (!copy.ok()) throw std::runtime_error(copy.status().ToString());
  copy->train(m.is_training());
  return std::move(copy).value();
}

std::pair<torch::Tensor, torch::Tensor> InitLayer(std::vector<int64_t> shape) {
  auto w = torch::empty(shape);
  torch::nn::init::kaiming_uniform_(w, std::sqrt(5.0));
  int64_t fan_in = 1;
  for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  auto b = torch::empty({shape[0]}).uniform_(-bound, bound);
  return {w, b};
}

}  // namespace prunelab::worker
