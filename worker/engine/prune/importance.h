// Importance criteria: per-weight scores (higher = more important) and the masks and
// channel rankings built from them. LibTorch header: engine-internal.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "worker/engine/data/dataset.h"
#include "worker/engine/prune/pruning.h"
#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {

enum class Criterion { kRandom, kL1, kL2, kGradient, kTaylor, kActivation, kApoz, kWanda, kSparseGpt };
StatusOr<Criterion> ParseCriterion(const std::string& name);
bool NeedsGradients(Criterion c);
// activation and apoz score structures from what they output, not weights.
bool ScoresActivations(Criterion c);

using Scores = std::map<std::string, torch::Tensor>;  // param name -> scores, same shape

// |dL/dw| summed over `batches` calibration batches of `batch_size` (the task's loss, the
// model in eval mode so batch-norm statistics are not touched). Gradients are cleared after.
Scores AccumulateAbsGradients(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                              const Dataset& calibration, int batches, int batch_size);

// Scores for every prunable weight of the layout:
//   random: seeded uniform (a control); l1: |w|; l2: w^2 (same per-weight order as l1, differs
//   once summed per structure); gradient: accumulated |dL/dw|; taylor: |w * dL/dw|
//   (first-order Taylor estimate of the loss change from removing w).
// `grads` is required for gradient and taylor.
StatusOr<Scores> WeightScores(const torch::jit::Module& m, const ModelLayout& layout, Criterion c,
                              const Scores* grads, uint64_t seed);

// Per-structure scores from activations on `batches` calibration batches, through the
// model's probe() (one [B, S, ...] tensor per group, in layout order):
//   activation: mean |a| per structure; apoz: 1 - APoZ (the fraction of non-zero outputs),
//   so structures that are almost always zero after ReLU rank lowest.
StatusOr<std::map<std::string, torch::Tensor>> ActivationScores(torch::jit::Module& m, const ModelLayout& layout,
                                                                const LearningTask& task, const Dataset& calibration,
                                                                int batches,
                                                                int batch_size, bool apoz);

// Calibration for Wanda: the norm over every calibration position (token, pixel) of each
// input feature of every prunable linear / convolution, gathered by a hook inserted into the
// model's inlined forward graph before each use of the layer's weight (both uses of a weight
// read twice). `batches` batches of `batch_size` samples of `calibration`, eval mode.
struct InputNorms {
  std::map<std::string, torch::Tensor> norms;  // weight param -> float [in_features]
  int64_t samples = 0;                          // calibration samples run (sequences, images)
};
StatusOr<InputNorms> CalibrateInputNorms(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                         const Dataset& calibration, int batches, int batch_size);
// `activation` importance of structures through the same graph hooks, for models without a
// probe() (users' models): a structure's score is the energy of what it feeds the layers that
// read it — the squared calibration norms of the input columns its slices cover in every
// consumer (an MLP neuron: its column of the down projection; an attention head: its block
// of the output projection's columns; an embedding channel: that feature in every layer
// reading the residual stream, the tied head included). Minitron ranks heads, neurons and
// embedding channels by activation magnitude the same way. A group none of whose consumers
// the calibration reached is scored by weight magnitude and named in *magnitude_only.
StatusOr<std::map<std::string, torch::Tensor>> HookedActivationScores(torch::jit::Module& m, const ModelLayout& layout,
                                                                      const LearningTask& task,
                                                                      const Dataset& calibration, int batches,
                                                                      int batch_size,
                                                                      std::vector<std::string>* magnitude_only,
                                                                      int64_t* samples);
// Wanda's scores |W_ij| * ||X_j||_2 (Sun et al. 2023); a layer the calibration did not reach,
// or a grouped convolution, is scored by magnitude and named in *magnitude_only.
StatusOr<Scores> WandaScores(const torch::jit::Module& m, const ModelLayout& layout, const InputNorms& in,
                             std::vector<std::string>* magnitude_only);

// SparseGPT's statistics: per prunable linear layer the sum over calibration tokens of
// x x^T [in, in] (float64), gathered by the same graph hooks. Convolutions are not included.
struct InputGrams {
  std::map<std::string, torch::Tensor> grams;  // weight param -> float64 [in, in]
  int64_t samples = 0;
};
StatusOr<InputGrams> CalibrateInputGrams(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                         const Dataset& calibration, int batches, int batch_size);
// SparseGPT (Frantar & Alistarh 2023, Algorithm 1) on one linear weight [out, in] with its
// input Gram matrix: H = 2 X X^T dampened by damp_fraction of its mean diagonal (raised tenfold,
// up to the mean diagonal itself, until the Cholesky factorizations succeed; the value used is
// returned); dead
// inputs (H_cc = 0) get H_cc = 1 and zero weights, as in the paper; columns in blocks of
// `block`; unstructured (nm_m = 0: the `sparsity` share of each block by w^2 / [H^-1]_cc^2) or
// N:M (per row, in every M inputs the M - N lowest); each pruned weight's error is spread over
// the later columns through the Cholesky factor of H^-1. Float64 throughout.
struct SparseGptLayer {
  torch::Tensor weight;      // the updated weight, pruned entries zero (the input's dtype)
  torch::Tensor mask;        // float, 1 = kept
  double damp = 0;           // the dampening used, as a fraction of the mean diagonal
  double relative_error = 0; // ||(W - W') X||^2 / ||W X||^2 on the calibration data
  int64_t dead_inputs = 0;
};
StatusOr<SparseGptLayer> SparseGpt(const torch::Tensor& weight, const torch::Tensor& gram, double sparsity, int nm_n,
                                   int nm_m, int64_t block = 128, double damp_fraction = 0.01);

// Wanda or SparseGPT as the papers run them: sequentially, layer by layer in forward order,
// each layer calibrated (only its own statistic held: memory bounded by one layer) on the
// model with every earlier layer already pruned (SparseGPT: and reconstructed), then pruned in
// place. Exclusions and per-layer overrides of `opts` apply (wanda: opts.per_row); a layer the
// calibration does not reach (an embedding table read by lookup, and for sparsegpt a
// convolution) stays dense and says so, as the papers prune linear layers only; under N:M a layer whose rows
// are not a multiple of M stays dense and says so (an error if none can hold it). `previous` keeps an earlier
// round's pruned weights pruned.
struct CalibratedLayer {
  std::string name;
  bool magnitude = false;       // wanda: scored by |w| (a grouped convolution)
  bool not_reached = false;     // no calibrated input (an embedding table; sparsegpt: a convolution): dense
  bool left_dense = false;      // N:M: its rows are not a multiple of M
  double relative_error = -1;   // sparsegpt: ||(W - W') X||^2 / ||W X||^2
  double damp = 0;              // sparsegpt: the dampening used
  int64_t dead_inputs = 0;
};
struct CalibratedPrune {
  Masks masks;
  std::vector<CalibratedLayer> layers;
  int64_t samples = 0;               // calibration samples per layer
  int64_t peak_statistic_bytes = 0;  // the largest single layer's statistic (norms or Hessian)
};
struct PlanOptions;
StatusOr<CalibratedPrune> PruneSequentially(torch::jit::Module& m, const ModelLayout& layout, const LearningTask& task,
                                            const Dataset& calibration, int batches, int batch_size, bool sparsegpt,
                                            double sparsity, const PlanOptions& opts, int nm_n, int nm_m,
                                            const Masks& previous, int64_t block = 128,
                                            const std::function<void(const std::string&, double)>& progress = {});

// Mask zeroing the round(sparsity * numel) lowest scores (ties: lowest index first).
torch::Tensor MaskFromScores(const torch::Tensor& scores, double sparsity);

// The same within every output row (dim 0): each row keeps its round((1 - sparsity) * row)
// highest scores. Wanda compares weights per output this way.
torch::Tensor RowMaskFromScores(const torch::Tensor& scores, double sparsity);

// N:M semi-structured mask: in every group of M consecutive weights along the input
// dimension (per output row; conv kernels flattened), keep the N highest scores.
// InvalidArgument unless 0 < n < m and the row length is a multiple of m.
StatusOr<torch::Tensor> NmMask(const torch::Tensor& scores, int n, int m);

// Per-output-channel importance: scores summed over everything but dim 0.
torch::Tensor ChannelScores(const torch::Tensor& weight_scores);
// Sorted indices of the max(1, round((1 - sparsity) * C)) highest-scoring channels.
torch::Tensor ChannelsToKeep(const torch::Tensor& channel_scores, double sparsity);

}  // namespace prunelab::worker
