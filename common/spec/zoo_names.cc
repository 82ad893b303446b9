#include "common/spec/zoo_names.h"

namespace prunelab {

const std::vector<int64_t>& ZooSampleShape() {
  static const std::vector<int64_t> shape{1, 28, 28};
  return shape;
}

const std::vector<std::string>& ZooModelNames() {
  static const std::vector<std::string> v{"mlp", "cnn", "resnet", "vit", "gpt"};
  return v;
}

std::vector<std::string> ZooLayerNames(const std::string& model) {
  if (model == "mlp") return {"fc1", "fc2", "fc3"};
  if (model == "cnn") return {"conv1", "conv2", "fc1", "fc2"};
  if (model == "resnet") return {"stem", "b1a", "b1b", "b2a", "b2b", "b2s", "b3a", "b3b", "b3s", "fc"};
  if (model == "gpt") {
    std::vector<std::string> v;
    for (const char* b : {"b0_", "b1_", "b2_", "b3_"})
      for (const char* l : {"q", "k", "v", "o", "fc1", "fc2"}) v.push_back(std::string(b) + l);
    return v;
  }
  if (model == "vit") {
    std::vector<std::string> v{"patch"};
    for (const char* b : {"b0_", "b1_"})
      for (const char* l : {"q", "k", "v", "o", "fc1", "fc2"}) v.push_back(std::string(b) + l);
    v.push_back("head");
    return v;
  }
  return {};
}

std::vector<std::string> ZooGroupNames(const std::string& model) {
  if (model == "mlp") return {"fc1", "fc2"};
  if (model == "cnn") return {"conv1", "conv2", "fc1"};
  if (model == "resnet") return {"b1a", "res1", "b2a", "res2", "b3a", "res3"};
  if (model == "vit") return {"b0_heads", "b0_mlp", "b1_heads", "b1_mlp"};
  if (model == "gpt")
    return {"b0_heads", "b0_mlp", "b1_heads", "b1_mlp", "b2_heads", "b2_mlp", "b3_heads", "b3_mlp"};
  return {};
}

std::vector<std::string> ZooBlockNames(const std::string& model) {
  if (model == "resnet") return {"b1", "b2", "b3"};
  if (model == "vit") return {"b0", "b1"};
  if (model == "gpt") return {"b0", "b1", "b2", "b3"};
  return {};
}

}  // namespace prunelab
