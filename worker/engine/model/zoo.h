// The built-in model zoo for 28x28 single-channel inputs (Fashion-MNIST), each a
// TorchScript module built in C++ with its pruning layout. LibTorch header: engine-internal.
#pragma once

#include <string>
#include <vector>

#include "worker/engine/model/model.h"

namespace prunelab::worker {

struct BuiltModel {
  torch::jit::Module module;
  ModelLayout layout;
};

// mlp:    784-256-128-10, ReLU; hidden neurons prunable.
// cnn:    conv(1->32)+BN+pool, conv(32->64)+BN+pool, fc(3136->128), fc(128->10); channels and fc1 neurons.
// resnet: stem 16 + three residual blocks (16, 32/2, 64/2) with 1x1 projection shortcuts, global
//         average pool, fc; residual streams pruned as one group, inner block channels on their own.
// vit:    7x7 patches (16 tokens), width 64, 2 pre-norm blocks of 4 heads x 16 and a 128-neuron MLP,
//         mean-pooled; whole attention heads and MLP neurons prunable.
StatusOr<BuiltModel> BuildZooModel(const std::string& name, uint64_t seed);
// The layout of a zoo model (InvalidArgument for an unknown name).
StatusOr<ModelLayout> ZooLayout(const std::string& name);

// The built-in `cnn` (kept for tests and benches).
torch::jit::Module BuildFashionCnn(uint64_t seed);
const ModelLayout& FashionCnnLayout();

}  // namespace prunelab::worker
