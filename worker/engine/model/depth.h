// Depth pruning: whole residual blocks (a ResNet block, a transformer layer) removed from a
// TorchScript module, zoo or user's alike.
//
// A residual branch is an add `y = s + f` in the inlined forward (module attributes such as
// `use_res_connect` or `downsample is None` folded first) whose operands depend on the input
// and have the output's shape, where the shortcut s is the block's input itself (identity) or
// a branch with fewer weight tensors than f (a projection, e.g. ResNet's strided 1x1 conv),
// and everything f computes alone is used by f alone. Removing it leaves y = s. Branches
// written in the same module (torchvision's EncoderBlock: attention and MLP) form one block,
// named by that module's path; in a zoo model's flat code, by the shared prefix of the
// weights ("b1"). Blocks nested inside another block's branch are the blocks; the outer add
// is not one. LibTorch header: engine-internal.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "worker/engine/data/dataset.h"
#include "worker/engine/model/model.h"
#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {

struct DepthBlock {
  std::string name;                 // "layer1.0", "encoder.layers.encoder_layer_3", "b1"
  std::string shortcut;             // identity | projection
  int64_t branches = 0;             // residual adds it owns (a transformer layer: 2)
  int64_t weights = 0;              // elements of the weight tensors (dim >= 2) its branches read
  std::vector<std::string> params;  // every tensor its branches read
};

// The blocks in forward order. The module runs once on the task's example inputs to learn
// the shapes.
StatusOr<std::vector<DepthBlock>> FindDepthBlocks(const torch::jit::Module& m, const LearningTask& task);

// Importance of each block (higher: keep), on `batches` batches of `calibration` with the
// module in eval mode:
//   loss:    the task's loss with the block skipped minus the loss of the whole
//            model (one forward pass per block per batch; what removing it costs, directly);
//   angular: the angular distance arccos(cos(x, y)) / pi between the block's input and its
//            output, per sample, averaged (one pass; Gromov et al. 2024, "The Unreasonable
//            Ineffectiveness of the Deeper Layers"; ShortGPT's block influence is 1 - cos);
//   random:  seeded uniform (a control).
StatusOr<std::vector<double>> DepthImportance(const torch::jit::Module& m, const LearningTask& task,
                                              const std::vector<DepthBlock>& blocks, const std::string& criterion,
                                              const Dataset& calibration, int batches, int batch_size, uint64_t seed);

// A copy of `m` without the named blocks: its forward (inlined) no longer computes their
// branches, and every tensor only they read is emptied (zero elements), so parameters and
// saved size shrink. The copy runs on the task's example inputs and its output has the
// original's shape, or an error says what broke.
StatusOr<torch::jit::Module> RemoveDepthBlocks(const torch::jit::Module& m, const LearningTask& task,
                                               const std::set<std::string>& names);

}  // namespace prunelab::worker
