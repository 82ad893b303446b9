// Training and evaluation of a TorchScript module on a Dataset. LibTorch header: engine-internal.
#pragma once

#include <functional>
#include <vector>

#include "worker/engine/data/dataset.h"
#include "worker/engine/prune/pruning.h"
#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {

struct TrainOptions {
  double epochs = 1;               // may be fractional: ceil(epochs * steps per epoch) steps
  int64_t stop_after_steps = -1;   // >= 0: stop after this many steps of the same schedule
  uint32_t batch_size = 64;
  double learning_rate = 0.05;
  double momentum = 0.9;
  double weight_decay = 0.0;
  // AdamW (betas 0.9/0.95, decay on matrices only, gradients clipped to norm 1) instead of
  // SGD with momentum; momentum is then unused.
  bool adamw = false;
  uint64_t seed = 42;
  const Masks* masks = nullptr;  // re-applied after every step, so pruned weights stay zero
  // Called about every 2 % of the work with the fraction done; return false to abort.
  std::function<bool(double)> on_progress;
  // Knowledge distillation: the teacher (in eval mode, no gradients) is run on every batch
  // and the loss is the task's DistillationLoss at this temperature and alpha. Null: labels only.
  torch::jit::Module* teacher = nullptr;
  double temperature = 4;
  double alpha = 0.5;
  // bfloat16 autocast with channels-last weights and inputs (4-D ones) while training; the
  // module's parameters stay fp32 (master weights) and are made contiguous again afterwards.
  bool bf16 = false;
};

// Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo); when
// not, *why names what was looked for.
bool CpuHasBf16(std::string* why);

// SGD with momentum (or AdamW) and a cosine learning-rate decay from learning_rate to 0 over all
// epochs, the task's loss (or its distillation loss), seeded shuffling; batches made by the
// task. Fails (never throws) on a non-finite loss or when aborted.
Status Train(torch::jit::Module& m, const LearningTask& task, const Dataset& data, const TrainOptions& options);

}  // namespace prunelab::worker
