// Users' own TorchScript modules: prunable layers are every linear/conv weight; structure
// groups are found by following the forward graph from each producer (linear, conv2d)
// through ops that keep channels apart (batch_norm, activations, pooling, dropout, flatten)
// to its consumers. Anything else on the way (add, cat, matmul, ...) disables structured
// pruning with an error naming the op and the layer. LibTorch header: engine-internal.
#pragma once

#include "worker/engine/model/model.h"

namespace prunelab::worker {

ModelLayout InferLayout(const torch::jit::Module& m);

}  // namespace prunelab::worker
