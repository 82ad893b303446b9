// Names of the built-in zoo models' prunable layers and structure groups, without LibTorch,
// so specs are validated (exclusions, overrides, sensitivity layers) before anything runs.
// tests/engine_test.cc checks these against the engine's real layouts.
#pragma once

#include <string>
#include <vector>

namespace prunelab {

const std::vector<std::string>& ZooModelNames();
// Empty for a name that is not a zoo model.
std::vector<std::string> ZooLayerNames(const std::string& model);
std::vector<std::string> ZooGroupNames(const std::string& model);
// Residual blocks granularity depth removes whole (worker/engine/model/depth.h names them).
std::vector<std::string> ZooBlockNames(const std::string& model);

}  // namespace prunelab
