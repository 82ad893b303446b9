// Users' own TorchScript modules: a dependency graph over the inlined forward graph.
//
// Every output channel of a producer (linear, conv) is an element; the pass follows each
// tensor's channel axis through the graph (batch/instance norm, activations, pooling,
// dropout, residual add, channel-wise mul, cat/stack, chunk, channel shuffle, flatten/view,
// permute/transpose, optional submodules, ifs and lists of scripted code) and unites the
// elements that must be removed together. A structure group is a set of coupled channels
// sharing producers. Anything the pass cannot follow (matmul of attention, layer/group norm
// over the channels, a fixed-size split, the model's output) blocks the elements it touches,
// and the group says which op after which layer. Shapes come from one recorded forward pass
// on the task's example inputs, so only the code that runs is followed. Attention heads of
// nn.MultiheadAttention are found from the modules themselves (AddAttentionHeads).
// LibTorch header: engine-internal.
#pragma once

#include <vector>

#include "worker/engine/model/model.h"
#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {

// Shapes are recorded on the task's example inputs (two samples), so token ids, waveforms and
// images are traced as the model will see them.
ModelLayout InferLayout(const torch::jit::Module& m, const LearningTask& task);

// After structures were removed: the forward is inlined into one graph and each depthwise
// convolution's `groups` argument set to its new width, then the module is reloaded so no
// cached executor keeps the old graph. No-op when the layout has no depthwise convolutions.
void RewriteDepthwiseGroups(torch::jit::Module& m, const ModelLayout& layout);

// Whole heads of nn.MultiheadAttention (packed q/k/v projection, biases, no bias_k/bias_v,
// no zero attention): a "head" group per module whose structure h is rows [h*d, (h+1)*d) of
// each of q, k and v in in_proj_weight/in_proj_bias and columns [h*d, (h+1)*d) of
// out_proj.weight (d = head_dim); and of torchvision's Swin window attention (v1): rows of
// qkv, columns of proj and the head's column of the relative position bias table. Replaces
// the group the graph pass found for the q/k/v projection (blocked at the attention matmul).
// Called by InferLayout.
void AddAttentionHeads(const torch::jit::Module& m, ModelLayout* layout);

// After heads were removed: each attention module's num_heads is set to the heads left and
// its class's forward replaced by prunelab_forward, an attention written for any head count
// (PyTorch's checks the projections against embed_dim, the input's width). Same signature and
// results; then the module is reloaded. No-op without attention groups.
void RewriteAttention(torch::jit::Module& m, const ModelLayout& layout);

}  // namespace prunelab::worker
