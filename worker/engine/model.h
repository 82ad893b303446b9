// Models as TorchScript modules built in C++: one object to train, prune structurally
// (parameters replaced by smaller tensors) and export. LibTorch header: engine-internal.
#pragma once

#include <torch/script.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace prunelab::worker {

// A set of channels pruned together: dim 0 of every producer tensor, and blocks of
// `consumer_block` columns along dim 1 of the consumer weight.
struct ChannelGroup {
  std::string name;
  std::string importance_param;               // weight ranked per output channel
  std::vector<std::string> producer_params;   // conv weight/bias and batch-norm tensors
  std::string consumer_param;                 // next layer's weight
  int64_t consumer_block = 1;                 // consumer columns per channel (spatial size after flatten)
};

struct ModelLayout {
  std::vector<std::string> weight_params;     // prunable weight tensors (unstructured masks)
  std::vector<ChannelGroup> channel_groups;   // structured pruning
};

// The built-in `cnn`: conv(1->32)+BN+ReLU+pool, conv(32->64)+BN+ReLU+pool, fc(3136->128)+ReLU, fc(128->10).
torch::jit::Module BuildFashionCnn(uint64_t seed);
const ModelLayout& FashionCnnLayout();

torch::Tensor GetTensor(const torch::jit::Module& m, const std::string& name);
void SetTensor(torch::jit::Module& m, const std::string& name, const torch::Tensor& value);

int64_t CountParameters(const torch::jit::Module& m);
std::string SaveToBytes(const torch::jit::Module& m);
StatusOr<torch::jit::Module> LoadFromBytes(const std::string& bytes);
torch::jit::Module CloneModule(const torch::jit::Module& m);

}  // namespace prunelab::worker
