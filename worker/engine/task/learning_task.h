// The task seam: what a sample is, how a batch is made, what the model is fed to be traced
// and probed, the loss, and the quality metric with its breakdown. Every part of the engine
// that feeds a model or scores its output goes through a LearningTask, so image
// classification, language modeling and sequence classification are implementations of this
// one interface, not code paths. (Not to be confused with common/base/types.h's Task, a unit
// of scheduled work.) LibTorch header: engine-internal.
//
// Implementations are immutable after construction and safe to share between threads.
#pragma once

#include <torch/script.h>  // IValue, Module; torch/torch.h only in .cc files

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "worker/engine/data/dataset.h"

namespace prunelab::worker {

// One sample as the model takes it (the batch axis not included).
struct SampleSpec {
  at::ScalarType dtype = at::kFloat;  // kFloat: images, waveforms, features; kLong: token ids
  std::vector<int64_t> shape;         // e.g. {1, 28, 28} or {64} (tokens per sequence)
  int64_t vocabulary = 0;             // token ids lie in [0, vocabulary); 0 for float samples
};

// The task's quality metric: its name as results and reports spell it, its unit, and which
// way is better.
struct QualityMetric {
  std::string name;  // "accuracy"
  std::string unit;  // "fraction"
  bool maximize = true;
};

enum class LossReduction { kMean, kSum };

// One batch: the forward's arguments and what the loss compares the output with.
struct Batch {
  std::vector<c10::IValue> inputs;
  at::Tensor targets;
};

// The task's figures of a model on a dataset. `quality` is Metric()'s value; the breakdown is
// per class (classification) — the slices users read to see who loses first.
struct Evaluation {
  double quality = 0;              // the task's metric (accuracy for classification, perplexity for language modeling)
  double accuracy = 0;             // top-1, fraction (language modeling: of the next token)
  double loss = 0;                 // language modeling: mean negative log-likelihood per token (nats)
  int64_t tokens = 0;              // language modeling: target tokens scored
  std::vector<double> per_class;   // top-1 per label (0 for a label without samples)
  std::vector<int64_t> seen;       // samples per label
  std::vector<int64_t> predicted;  // predictions per class
};

class LearningTask {
 public:
  virtual ~LearningTask() = default;

  // "image_classification": the name results, cards and errors use.
  virtual std::string Name() const = 0;
  virtual SampleSpec Sample() const = 0;
  virtual QualityMetric Metric() const = 0;

  // Samples `index` (int64 [B]) of `data`, gathered; or the contiguous range [start, end).
  virtual Batch Gather(const Dataset& data, const at::Tensor& index) const = 0;
  virtual Batch Range(const Dataset& data, int64_t start, int64_t end) const = 0;

  // `batch` made-up samples of the right dtype and shape, for tracing, shape recording,
  // probes and function-preservation checks. Deterministic for a given generator; the
  // global generator when `generator` is undefined.
  virtual std::vector<c10::IValue> ExampleInputs(int64_t batch, at::Generator generator = {}) const = 0;

  // The training loss, a scalar: the batch mean, or the sum over samples.
  virtual at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets,
                          LossReduction reduction = LossReduction::kMean) const = 0;
  // Knowledge distillation: the teacher's outputs as soft targets at `temperature`, mixed with
  // the hard loss by `alpha` (Hinton et al.; the soft term scaled by T^2).
  virtual at::Tensor DistillationLoss(const at::Tensor& student, const at::Tensor& teacher,
                                      const at::Tensor& targets, double temperature, double alpha) const = 0;

  // The model's figures on all of `data` (eval mode, no gradients).
  virtual Evaluation Evaluate(torch::jit::Module& m, const Dataset& data) const = 0;

  // Whether the model takes this task's samples and returns what the task scores (a score
  // per class); InvalidArgument saying what the model returned otherwise.
  virtual Status CheckOutputs(torch::jit::Module& m, const Dataset& data) const = 0;
};

// Image (or any float tensor) classification: float32 samples of `sample_shape`, the model
// returns [B, classes] scores; cross-entropy; top-1 accuracy per class.
std::unique_ptr<LearningTask> NewImageClassification(std::vector<int64_t> sample_shape);

// Classification of token-id sequences of `length` ids below `vocabulary`: the model takes
// int64 [B, length] and returns [B, classes]; data, batching and metrics are those of
// classification. (No text loader feeds it yet: datasets come from memory.)
std::unique_ptr<LearningTask> NewTokenClassification(int64_t length, int64_t vocabulary);

// Causal language modeling over windows of `sequence_length` token ids below `vocabulary`:
// the model takes int64 [B, sequence_length] and returns next-token logits [B,
// sequence_length, V] with V >= vocabulary; targets are the ids shifted by one
// (data/token_data.h). Loss: cross-entropy per token (mean over every target token, or their
// sum); distillation per token against the teacher's logits. Quality: perplexity on held-out
// text, exp(mean negative log-likelihood per token), lower is better; next-token top-1
// accuracy beside it. No per-class breakdown.
std::unique_ptr<LearningTask> NewCausalLanguageModeling(int64_t sequence_length, int64_t vocabulary);

// The classification task whose samples `data` holds: token classification for int64
// inputs (vocabulary: the largest id + 1), image classification of the samples' shape for
// float ones. For programs that start from data (benchmarks, tests); the executor names its
// task from the trial.
std::unique_ptr<LearningTask> ClassificationFor(const Dataset& data);

// A batch of samples `index` (or rows [start, end)) of data whose targets are its labels'
// rows: the inputs and labels gathered alike (classification, language modeling).
Batch GatherRows(const Dataset& data, const at::Tensor& index);
Batch RangeRows(const Dataset& data, int64_t start, int64_t end);

// Helpers every implementation uses: the hard cross-entropy and Hinton's distillation loss
// over the last axis, and top-1 classification figures of the output's argmax over axis 1.
at::Tensor ClassificationLoss(const at::Tensor& logits, const at::Tensor& labels, LossReduction reduction);
at::Tensor ClassificationDistillationLoss(const at::Tensor& student, const at::Tensor& teacher,
                                          const at::Tensor& labels, double temperature, double alpha);

}  // namespace prunelab::worker
