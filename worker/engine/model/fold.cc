#include "worker/engine/model/fold.h"

#include <torch/script.h>

#include "worker/engine/model/model.h"

namespace prunelab::worker {

StatusOr<std::string> FoldPreprocessing(const std::string& model_bytes, const Preprocessing& p) {
  auto inner = LoadFromBytes(model_bytes);
  if (!inner.ok()) return inner.status();
  inner->eval();
  const bool image = p.input_shape.size() == 3;
  const int64_t c = image ? p.input_shape[0] : 0;
  for (const auto* v : {&p.mean, &p.std})
    if (image && v->size() > 1 && static_cast<int64_t>(v->size()) != c)
      return Status::InvalidArgument(std::string(v == &p.mean ? "mean" : "std") + " has " + std::to_string(v->size()) +
                                     " values for a model of " + std::to_string(c) + " channels");
  for (double s : p.std)
    if (!(s > 0)) return Status::InvalidArgument("std must be positive");
  auto per_channel = [&](const std::vector<double>& v, float none) {
    std::vector<float> f(v.begin(), v.end());
    if (f.empty()) f.push_back(none);
    return torch::tensor(f).view({1, -1, 1, 1});
  };
  torch::jit::Module wrapper("PrunelabRawPixels");
  wrapper.register_module("model", inner.value());
  wrapper.register_buffer("mean", per_channel(p.mean, 0.0f));
  wrapper.register_buffer("std", per_channel(p.std, 1.0f));
  std::string src = R"(
def forward(self, x: Tensor) -> Tensor:
    x = x.float() / 255.0
)";
  if (image) {
    const std::string C = std::to_string(c), H = std::to_string(p.input_shape[1]), W = std::to_string(p.input_shape[2]);
    src += R"(
    if x.size(1) == 4:
        x = x[:, 0:3]
    if )" + C + R"( == 3 and x.size(1) == 1:
        x = x.expand([-1, 3, -1, -1])
    if )" + C + R"( == 1 and x.size(1) == 3:
        x = x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114
    if x.size(2) != )" + H + R"( or x.size(3) != )" + W + R"(:
        if x.size(2) > )" + H + R"( or x.size(3) > )" + W + R"(:
            x = torch._upsample_bilinear2d_aa(x, [)" + H + ", " + W + R"(], False, None, None)
        else:
            x = torch.upsample_bilinear2d(x, [)" + H + ", " + W + R"(], False, None, None)
)";
  }
  src += R"(
    return self.model.forward((x - self.mean) / self.std)
)";
  try {
    wrapper.define(src);
    wrapper.eval();
    return SaveToBytes(wrapper);
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("cannot fold the preprocessing into this model: ") + e.what_without_backtrace());
  }
}

}  // namespace prunelab::worker
