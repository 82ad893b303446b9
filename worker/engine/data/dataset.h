// A dataset in memory, in the form its task's batches are cut from. LibTorch tensors only
// (ATen/core/Tensor.h: ~2 s per includer, not torch/torch.h's ~14 s). Engine-internal.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace prunelab::worker {

// Samples along axis 0. What one sample is (dtype, shape, meaning) is the LearningTask's
// business (worker/engine/task/learning_task.h): float32 [N, C, H, W] normalized images for
// image classification, int64 [N, L] token ids for token tasks.
struct Dataset {
  at::Tensor inputs;    // [N, ...one sample]
  at::Tensor labels;    // int64 [N]: class per sample
  int64_t classes = 0;  // number of classes (0: from the labels, at least 10)
  int64_t size() const { return labels.size(0); }
};

}  // namespace prunelab::worker
