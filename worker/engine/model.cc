#include "worker/engine/model.h"

#include <sstream>

namespace prunelab::worker {
namespace {

const char* kCnnSource = R"JIT(
def forward(self, x):
    x = torch.conv2d(x, self.conv1_w, self.conv1_b, [1, 1], [1, 1], [1, 1], 1)
    x = torch.batch_norm(x, self.bn1_w, self.bn1_b, self.bn1_mean, self.bn1_var, self.training, 0.1, 1e-5, False)
    x = torch.max_pool2d(torch.relu(x), [2, 2], [2, 2], [0, 0], [1, 1], False)
    x = torch.conv2d(x, self.conv2_w, self.conv2_b, [1, 1], [1, 1], [1, 1], 1)
    x = torch.batch_norm(x, self.bn2_w, self.bn2_b, self.bn2_mean, self.bn2_var, self.training, 0.1, 1e-5, False)
    x = torch.max_pool2d(torch.relu(x), [2, 2], [2, 2], [0, 0], [1, 1], False)
    x = torch.flatten(x, 1)
    x = torch.relu(torch.linear(x, self.fc1_w, self.fc1_b))
    return torch.linear(x, self.fc2_w, self.fc2_b)
)JIT";

// Kaiming-uniform weights and fan-in-scaled biases, as PyTorch's default layer init.
std::pair<torch::Tensor, torch::Tensor> InitLayer(std::vector<int64_t> shape) {
  auto w = torch::empty(shape);
  torch::nn::init::kaiming_uniform_(w, std::sqrt(5.0));
  int64_t fan_in = 1;
  for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
  double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  auto b = torch::empty({shape[0]}).uniform_(-bound, bound);
  return {w, b};
}

}  // namespace

const ModelLayout& FashionCnnLayout() {
  static const ModelLayout layout{
      {"conv1_w", "conv2_w", "fc1_w", "fc2_w"},
      {
          {"conv1", "conv1_w", {"conv1_w", "conv1_b", "bn1_w", "bn1_b", "bn1_mean", "bn1_var"}, "conv2_w", 1},
          {"conv2", "conv2_w", {"conv2_w", "conv2_b", "bn2_w", "bn2_b", "bn2_mean", "bn2_var"}, "fc1_w", 49},
      }};
  return layout;
}

torch::jit::Module BuildFashionCnn(uint64_t seed) {
  torch::manual_seed(seed);
  torch::jit::Module m("__torch__.prunelab.FashionCNN");
  m.register_attribute("training", c10::BoolType::get(), true);
  auto param = [&](const std::string& name, torch::Tensor t) { m.register_parameter(name, t.set_requires_grad(true), false); };
  auto [c1w, c1b] = InitLayer({32, 1, 3, 3});
  auto [c2w, c2b] = InitLayer({64, 32, 3, 3});
  auto [f1w, f1b] = InitLayer({128, 64 * 7 * 7});
  auto [f2w, f2b] = InitLayer({10, 128});
  param("conv1_w", c1w);
  param("conv1_b", c1b);
  param("bn1_w", torch::ones({32}));
  param("bn1_b", torch::zeros({32}));
  m.register_buffer("bn1_mean", torch::zeros({32}));
  m.register_buffer("bn1_var", torch::ones({32}));
  param("conv2_w", c2w);
  param("conv2_b", c2b);
  param("bn2_w", torch::ones({64}));
  param("bn2_b", torch::zeros({64}));
  m.register_buffer("bn2_mean", torch::zeros({64}));
  m.register_buffer("bn2_var", torch::ones({64}));
  param("fc1_w", f1w);
  param("fc1_b", f1b);
  param("fc2_w", f2w);
  param("fc2_b", f2b);
  m.define(kCnnSource);
  return m;
}

torch::Tensor GetTensor(const torch::jit::Module& m, const std::string& name) { return m.attr(name).toTensor(); }

void SetTensor(torch::jit::Module& m, const std::string& name, const torch::Tensor& value) {
  m.setattr(name, value);
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

torch::jit::Module CloneModule(const torch::jit::Module& m) { return m.deepcopy(); }

}  // namespace prunelab::worker
