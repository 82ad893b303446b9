// Shared setup for the bench programs: the zoo CNN, a sample pool, and --json handling.
#pragma once

#include <torch/torch.h>

#include <string>

#include "bench/bench_flags.h"
#include "worker/engine/data/fashion_mnist.h"

namespace prunelab::bench {

// Real Fashion-MNIST test images when installed, else seeded noise of the same shape
// (timings do not depend on pixel values).
inline worker::Dataset SamplePool(int64_t n) {
  auto d = worker::LoadFashionMnist("/usr/share/datasets/fashion-mnist", false, static_cast<uint32_t>(n));
  if (d.ok()) return std::move(d).value();
  torch::manual_seed(1);
  worker::Dataset s;
  s.images = torch::randn({n, 1, 28, 28});
  s.labels = torch::zeros({n}, torch::kInt64);
  return s;
}

}  // namespace prunelab::bench
