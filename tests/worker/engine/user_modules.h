// Small TorchScript modules written the way users' scripted code looks (children called through
// prim::CallMethod, as torch.jit.script makes them), for the engine's tests.
#pragma once

#include <torch/script.h>

#include "worker/engine/model/model.h"

namespace prunelab::testing {

// A `Linear` submodule: weight [out, in] and bias, PyTorch's default initialization.
inline torch::jit::Module UserLinear(int64_t out, int64_t in) {
  torch::jit::Module m("__torch__.user.Linear");
  auto [w, b] = worker::InitLayer({out, in});
  m.register_parameter("weight", w, false);
  m.register_parameter("bias", b, false);
  m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  return m;
}

}  // namespace prunelab::testing
