// Names of the built-in zoo models' prunable layers and structure groups, without LibTorch,
// so specs are validated (exclusions, overrides, sensitivity layers) before anything runs.
// tests/engine_test.cc checks these against the engine's real layouts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace prunelab {

const std::vector<std::string>& ZooModelNames();
// One sample as the zoo's models take it: a Fashion-MNIST image, 1 x 28 x 28.
const std::vector<int64_t>& ZooSampleShape();
// A model's per-sample input shape: `input_shape` (model.input_shape of a user model), or the
// zoo's when it is empty.
inline std::vector<int64_t> SampleShapeOr(const std::vector<int64_t>& input_shape) {
  return input_shape.empty() ? ZooSampleShape() : input_shape;
}
// Empty for a name that is not a zoo model.
std::vector<std::string> ZooLayerNames(const std::string& model);
std::vector<std::string> ZooGroupNames(const std::string& model);
// Residual blocks granularity depth removes whole (worker/engine/model/depth.h names them).
std::vector<std::string> ZooBlockNames(const std::string& model);

}  // namespace prunelab
