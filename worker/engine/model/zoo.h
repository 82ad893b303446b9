// The built-in model zoo for 28x28 single-channel inputs (Fashion-MNIST), each a
// TorchScript module built in C++ with its pruning layout. LibTorch header: engine-internal.
#pragma once

#include <string>
#include <vector>

#include "worker/engine/model/model.h"
#include "worker/engine/task/learning_task.h"

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
// gpt:    a decoder language model for causal_lm: GPT-2's layout at width 128 (4 layers of
//         4 causal heads x 32 and a 512-neuron GELU MLP, pre-norm, learned positions, tied
//         embeddings; about 0.8 M weights besides the embeddings). Its vocabulary and
//         positions come from `sample` (the task's: ids below sample.vocabulary, windows of
//         sample.shape[0]); whole heads and MLP neurons prunable, blocks b0..b3 removable.
//         Generation contract (a key/value cache): prefill(ids [B, P]) -> (logits [B, P, V],
//         cache) and decode(ids [B, n], cache) -> (logits [B, n, V], cache), the cache a list
//         of each layer's keys and values [B, heads, tokens, head_dim]; both stay consistent
//         with forward() after heads, neurons or whole layers are removed. The decode step's
//         new tokens attend to every cached one and to each other without a mask: give n = 1.
inline constexpr int kGptLayers = 4;
inline constexpr int64_t kGptWidth = 128, kGptHeads = 4, kGptHeadDim = 32, kGptMlp = 512;
StatusOr<BuiltModel> BuildZooModel(const std::string& name, uint64_t seed, const SampleSpec& sample = {});
// The layout of a zoo model (InvalidArgument for an unknown name).
StatusOr<ModelLayout> ZooLayout(const std::string& name);

// The built-in `cnn` (kept for tests and benches).
torch::jit::Module BuildFashionCnn(uint64_t seed);
const ModelLayout& FashionCnnLayout();

}  // namespace prunelab::worker
