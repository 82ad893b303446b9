// Fashion-MNIST from IDX files (gzip or raw), as Debian's dataset-fashion-mnist installs
// them under /usr/share/datasets/fashion-mnist. LibTorch header: engine-internal.
#pragma once

#include <ATen/core/Tensor.h>  // tensors only: ~2 s per includer instead of ~14 s for torch/torch.h

#include <string>

#include "common/base/status.h"
#include "common/base/types.h"
#include "worker/engine/data/dataset.h"

namespace prunelab::worker {

// kFashionMnistMean / kFashionMnistStd: common/base/types.h (the coordinator needs them too).

// subset = 0 loads everything; otherwise the first `subset` samples.
StatusOr<Dataset> LoadFashionMnist(const std::string& dir, bool train, uint32_t subset);

// Parses an IDX image/label pair already in memory (used by tests with synthetic files).
StatusOr<Dataset> ParseIdx(const std::string& images_bytes, const std::string& labels_bytes, uint32_t subset);

}  // namespace prunelab::worker
