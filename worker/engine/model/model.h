// Models as TorchScript modules: one object to train, prune (masks, or parameters replaced
// by smaller tensors) and export, for the built-in zoo and users' own modules alike.
// LibTorch header: engine-internal.
#pragma once

#include <torch/script.h>  // modules and tensors; torch/torch.h (nn, optim, data) only in .cc files

#include <map>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace prunelab::worker {

// A prunable weight tensor (linear or convolution), by layer name.
struct PrunableLayer {
  std::string name;    // "conv1", "b0_q", "features.0"
  std::string weight;  // "conv1_w", "features.0.weight" (dotted paths reach submodules)
};

// Structure s of a group owns entries [s*block, (s+1)*block) along `dim` of `param`; or,
// when `map` is set (user models), map[i] is the structure that owns entry i (-1: another
// group's, or none).
struct Slice {
  std::string param;
  int64_t dim = 0;
  int64_t block = 1;
  bool score = false;         // counts towards the structure's importance (producer weights)
  std::vector<int64_t> map;   // one entry per index along dim
};

// Structures pruned together: removing structure s removes its slice of every tensor.
// A residual group lists every producer writing into the shared stream and every consumer
// reading it; an attention-head group slices q/k/v rows and output-projection columns
// in blocks of head_dim.
struct StructureGroup {
  std::string name;                 // "conv1", "res2", "b0_heads"
  std::string kind;                 // neuron | channel | residual | head
  std::vector<Slice> slices;
  std::vector<std::string> layers;  // producer layers (exclusions by layer name match them)
  std::string blocked;              // non-empty: cannot be pruned, and why (user models)
  int64_t structures = 0;           // map slices: structures in the group (0: from the first slice)
};

struct ModelLayout {
  std::vector<PrunableLayer> layers;   // forward order
  std::vector<StructureGroup> groups;  // forward order
  // Empty when structured pruning is available; otherwise why not (names the op and layer).
  std::string structured_error;
  // Zoo models define `probe(x) -> List[Tensor]`: one [B, S, ...] activation per group.
  bool has_probe = false;
  // User models: depthwise convolutions (weight -> output channels per input channel) whose
  // `groups` argument follows the pruned width; the per-sample input shape the graph was
  // traced with.
  std::map<std::string, int64_t> depthwise;
  std::vector<int64_t> input_shape;
  // User models: nn.MultiheadAttention modules whose heads are structures (module path ->
  // head_dim); their forward is replaced after removal so it takes its head count from
  // `num_heads` (see user_model.h).
  std::map<std::string, int64_t> attention;

  std::vector<std::string> WeightParams() const;
  const StructureGroup* Group(const std::string& name) const;
  int64_t Structures(const torch::jit::Module& m, const StructureGroup& g) const;
};

torch::Tensor GetTensor(const torch::jit::Module& m, const std::string& name);
void SetTensor(torch::jit::Module& m, const std::string& name, const torch::Tensor& value);
bool HasTensor(const torch::jit::Module& m, const std::string& name);

int64_t CountParameters(const torch::jit::Module& m);
std::string SaveToBytes(const torch::jit::Module& m);
StatusOr<torch::jit::Module> LoadFromBytes(const std::string& bytes);
torch::jit::Module CloneModule(const torch::jit::Module& m);

// Kaiming-uniform weights and fan-in-scaled biases, as PyTorch's default layer init.
std::pair<torch::Tensor, torch::Tensor> InitLayer(std::vector<int64_t> shape);

}  // namespace prunelab::worker
