// Users' own data besides IDX: NumPy arrays and image folders, resized to the model's input
// shape and normalized per channel. LibTorch header: engine-internal.
//
//   npy:    DIR/{train,test}_images.npy (uint8 or float32; N x C x H x W, N x H x W x C, or
//           N x H x W) and DIR/{train,test}_labels.npy (integers, one per image).
//   folder: DIR/train/CLASS/*.{png,jpg,jpeg} and DIR/test/CLASS/... (or DIR/val/...); classes
//           are the sorted sub-folder names of train/, labels their index.
// Pixels are scaled to [0, 1] (uint8 / 255; float32 as given), converted to the model's
// channel count (grey <-> RGB; alpha dropped), resized (bilinear) to input_shape's H x W, and
// normalized with dataset.mean / dataset.std (default 0 and 1).
#pragma once

#include <string>
#include <vector>

#include "common/base/npy.h"
#include "common/base/types.h"
#include "worker/engine/data/fashion_mnist.h"

namespace prunelab::worker {

// Loads the train or test split of an npy or folder dataset; `input_shape` is one sample's
// [C, H, W] as the model takes it (empty: keep the data's own). subset 0 = all; a folder
// subset takes classes in turn so it stays balanced. Errors name the file and the problem.
StatusOr<Dataset> LoadUserDataset(const DatasetConfig& cfg, bool train, uint32_t subset,
                                  const std::vector<int64_t>& input_shape);

// The sorted class sub-folders of a folder dataset's train/ (its class names).
StatusOr<std::vector<std::string>> FolderClasses(const std::string& dir);

}  // namespace prunelab::worker
