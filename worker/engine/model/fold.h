// Folding a model's preprocessing into it, for deployment: the exported module then takes
// raw pixels. LibTorch header: engine-internal (prunelab-fold is its only user).
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"

namespace prunelab::worker {

struct Preprocessing {
  std::vector<int64_t> input_shape;  // one sample, C x H x W (or any shape: then no resize)
  std::vector<double> mean;          // per channel (or one for all); empty: 0
  std::vector<double> std;           // empty: 1
};

// Wraps model_bytes (TorchScript) in a module whose forward takes pixel values 0-255 of any
// numeric dtype, N x C x H x W with C 1, 3 or 4 and any H x W, and does what the worker did to
// the data before the model saw it: / 255, alpha dropped, gray <-> RGB (luma 0.299, 0.587,
// 0.114), bilinear resize to the model's H x W (antialiased when shrinking), (x - mean) / std;
// then calls the model. Returns the wrapper's TorchScript bytes.
StatusOr<std::string> FoldPreprocessing(const std::string& model_bytes, const Preprocessing& p);

}  // namespace prunelab::worker
