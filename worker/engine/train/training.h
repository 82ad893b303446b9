// Training and evaluation of a TorchScript module on a Dataset. LibTorch header: engine-internal.
#pragma once

#include <functional>
#include <vector>

#include "worker/engine/data/fashion_mnist.h"
#include "worker/engine/prune/pruning.h"

namespace prunelab::worker {

struct TrainOptions {
  double epochs = 1;               // may be fractional: ceil(epochs * steps per epoch) steps
  int64_t stop_after_steps = -1;   // >= 0: stop after this many steps of the same schedule
  uint32_t batch_size = 64;
  double learning_rate = 0.05;
  double momentum = 0.9;
  double weight_decay = 0.0;
  uint64_t seed = 42;
  const Masks* masks = nullptr;  // re-applied after every step, so pruned weights stay zero
  // Called about every 2 % of the work with the fraction done; return false to abort.
  std::function<bool(double)> on_progress;
};

// SGD with momentum and a cosine learning-rate decay from learning_rate to 0 over all
// epochs, cross-entropy, seeded shuffling. Fails (never throws) on a
// non-finite loss or when aborted.
Status Train(torch::jit::Module& m, const Dataset& data, const TrainOptions& options);

struct Evaluation {
  double accuracy = 0;               // top-1, fraction
  std::vector<double> per_class;     // top-1 per label
};
Evaluation Evaluate(torch::jit::Module& m, const Dataset& data);

}  // namespace prunelab::worker
