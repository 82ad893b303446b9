// Causal language modeling: the second implementation of the task seam. Token windows in,
// next-token logits out, perplexity as the quality metric.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {
namespace {

// Logits of this many floats at most are held at once while evaluating (memory, not meaning).
constexpr int64_t kEvalFloats = int64_t{1} << 23;

class CausalLanguageModeling final : public LearningTask {
 public:
  CausalLanguageModeling(int64_t sequence_length, int64_t vocabulary)
      : sample_{at::kLong, {sequence_length}, vocabulary} {}

  std::string Name() const override { return "causal_language_modeling"; }
  SampleSpec Sample() const override { return sample_; }
  QualityMetric Metric() const override { return {"perplexity", "", false}; }

  Batch Gather(const Dataset& data, const at::Tensor& index) const override { return GatherRows(data, index); }
  Batch Range(const Dataset& data, int64_t start, int64_t end) const override { return RangeRows(data, start, end); }

  std::vector<c10::IValue> ExampleInputs(int64_t batch, at::Generator generator) const override {
    const c10::optional<at::Generator> gen =
        generator.defined() ? c10::optional<at::Generator>(generator) : c10::nullopt;
    return {torch::randint(0, std::max<int64_t>(1, sample_.vocabulary), {batch, sample_.shape[0]}, gen, torch::kLong)};
  }

  at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets, LossReduction reduction) const override {
    return ClassificationLoss(Flat(outputs), targets.reshape({-1}), reduction);
  }
  at::Tensor DistillationLoss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& targets,
                              double temperature, double alpha) const override {
    // Per token: every position's distribution is a sample of the distillation.
    return ClassificationDistillationLoss(Flat(student), Flat(teacher), targets.reshape({-1}), temperature, alpha);
  }

  Evaluation Evaluate(torch::jit::Module& m, const Dataset& data) const override {
    torch::NoGradGuard no_grad;
    m.train(false);
    const int64_t n = data.size();
    const int64_t per_window = std::max<int64_t>(1, sample_.shape[0] * std::max<int64_t>(1, sample_.vocabulary));
    const int64_t chunk = std::max<int64_t>(1, kEvalFloats / per_window);
    double nll = 0;
    int64_t tokens = 0, hits = 0;
    for (int64_t start = 0; start < n; start += chunk) {
      Batch b = Range(data, start, std::min(n, start + chunk));
      auto logits = Flat(m.forward(b.inputs).toTensor()).to(torch::kFloat32);
      auto y = b.targets.reshape({-1});
      nll += ClassificationLoss(logits, y, LossReduction::kSum).item<double>();
      hits += logits.argmax(1).eq(y).sum().item<int64_t>();
      tokens += y.numel();
    }
    Evaluation e;
    e.tokens = tokens;
    e.loss = tokens ? nll / tokens : 0;
    e.accuracy = tokens ? static_cast<double>(hits) / tokens : 0;
    e.quality = std::exp(e.loss);
    return e;
  }

  Status CheckOutputs(torch::jit::Module& m, const Dataset& d) const override {
    if (d.size() == 0) return Status::InvalidArgument("the dataset has no token windows");
    torch::NoGradGuard g;
    const bool was = m.is_training();
    m.eval();
    c10::IValue out;
    try {
      out = m.forward(Range(d, 0, std::min<int64_t>(2, d.size())).inputs);
    } catch (const std::exception& e) {
      m.train(was);
      return Status::InvalidArgument("the model does not run on token ids int64 " +
                                     c10::str(d.inputs.sizes().slice(0, std::min<size_t>(2, d.inputs.dim()))) + ": " +
                                     e.what());
    }
    m.train(was);
    if (!out.isTensor())
      return Status::InvalidArgument("a language model's forward must return the logits tensor [batch, tokens, "
                                     "vocabulary]; this one returns " + out.tagKind() +
                                     " (expose a key/value cache through separate methods)");
    auto t = out.toTensor();
    const int64_t rows = std::min<int64_t>(2, d.size());
    if (t.dim() != 3 || t.size(0) != rows || t.size(1) != sample_.shape[0] || t.size(2) < sample_.vocabulary)
      return Status::InvalidArgument("a language model must return next-token logits [" + std::to_string(rows) + ", " +
                                     std::to_string(sample_.shape[0]) + ", >= " + std::to_string(sample_.vocabulary) +
                                     "] for token ids [" + std::to_string(rows) + ", " +
                                     std::to_string(sample_.shape[0]) + "]; this one returned " + c10::str(t.sizes()));
    return Status::Ok();
  }

 private:
  // [B, T, V] -> [B*T, V]: every position is one prediction.
  static at::Tensor Flat(const at::Tensor& logits) { return logits.reshape({-1, logits.size(-1)}); }

  const SampleSpec sample_;
};

}  // namespace

std::unique_ptr<LearningTask> NewCausalLanguageModeling(int64_t sequence_length, int64_t vocabulary) {
  return std::make_unique<CausalLanguageModeling>(sequence_length, vocabulary);
}

}  // namespace prunelab::worker
