// Classification over any sample: float tensors (images, waveforms, features) or token ids.
// The first implementation of the task seam; its numbers are those the engine computed
// before the seam existed (same batching, same reductions, same order).
#include <torch/torch.h>

#include <algorithm>

#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {

at::Tensor ClassificationLoss(const at::Tensor& logits, const at::Tensor& labels, LossReduction reduction) {
  namespace F = torch::nn::functional;
  if (reduction == LossReduction::kSum)
    return F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  return F::cross_entropy(logits, labels);
}

at::Tensor ClassificationDistillationLoss(const at::Tensor& student, const at::Tensor& teacher,
                                          const at::Tensor& labels, double temperature, double alpha) {
  namespace F = torch::nn::functional;
  auto hard = F::cross_entropy(student, labels);
  auto soft = F::kl_div(F::log_softmax(student / temperature, F::LogSoftmaxFuncOptions(1)),
                        F::softmax(teacher.detach() / temperature, F::SoftmaxFuncOptions(1)),
                        F::KLDivFuncOptions().reduction(torch::kBatchMean));
  return alpha * temperature * temperature * soft + (1.0 - alpha) * hard;
}

Batch GatherRows(const Dataset& data, const at::Tensor& index) {
  return {{data.inputs.index_select(0, index)}, data.labels.index_select(0, index)};
}

Batch RangeRows(const Dataset& data, int64_t start, int64_t end) {
  return {{data.inputs.slice(0, start, end)}, data.labels.slice(0, start, end)};
}

namespace {

// Evaluation runs in chunks of this many samples (memory bound, not a semantic choice).
constexpr int64_t kEvalChunk = 1000;

class Classification final : public LearningTask {
 public:
  Classification(std::string name, SampleSpec sample) : name_(std::move(name)), sample_(std::move(sample)) {}

  std::string Name() const override { return name_; }
  SampleSpec Sample() const override { return sample_; }
  QualityMetric Metric() const override { return {"accuracy", "fraction", true}; }

  Batch Gather(const Dataset& data, const at::Tensor& index) const override { return GatherRows(data, index); }
  Batch Range(const Dataset& data, int64_t start, int64_t end) const override { return RangeRows(data, start, end); }

  std::vector<c10::IValue> ExampleInputs(int64_t batch, at::Generator generator) const override {
    std::vector<int64_t> full{batch};
    full.insert(full.end(), sample_.shape.begin(), sample_.shape.end());
    const c10::optional<at::Generator> gen =
        generator.defined() ? c10::optional<at::Generator>(generator) : c10::nullopt;
    if (sample_.dtype == at::kLong)
      return {torch::randint(0, std::max<int64_t>(1, sample_.vocabulary), full, gen, torch::kLong)};
    return {torch::randn(full, gen, torch::TensorOptions().dtype(sample_.dtype))};
  }

  at::Tensor Loss(const at::Tensor& outputs, const at::Tensor& targets, LossReduction reduction) const override {
    return ClassificationLoss(outputs, targets, reduction);
  }
  at::Tensor DistillationLoss(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& targets,
                              double temperature, double alpha) const override {
    return ClassificationDistillationLoss(student, teacher, targets, temperature, alpha);
  }

  Evaluation Evaluate(torch::jit::Module& m, const Dataset& data) const override {
    torch::NoGradGuard no_grad;
    m.train(false);
    const int64_t n = data.size();
    const int64_t from_labels = n > 0 ? data.labels.max().item<int64_t>() + 1 : 0;
    const int64_t classes =
        data.classes > 0 ? std::max(data.classes, from_labels) : std::max<int64_t>(10, from_labels);
    std::vector<int64_t> correct(classes, 0), seen(classes, 0), predicted(classes, 0);
    for (int64_t start = 0; start < n; start += kEvalChunk) {
      const int64_t end = std::min(n, start + kEvalChunk);
      Batch b = Range(data, start, end);
      auto pred = m.forward(b.inputs).toTensor().argmax(1);
      auto hit = pred.eq(b.targets);
      auto y_acc = b.targets.accessor<int64_t, 1>();
      auto h_acc = hit.accessor<bool, 1>();
      auto p_acc = pred.accessor<int64_t, 1>();
      for (int64_t i = 0; i < end - start; ++i) {
        ++seen[y_acc[i]];
        if (h_acc[i]) ++correct[y_acc[i]];
        if (p_acc[i] >= 0 && p_acc[i] < classes) ++predicted[p_acc[i]];
      }
    }
    Evaluation e;
    e.seen = seen;
    e.predicted = predicted;
    int64_t c = 0, s = 0;
    for (int64_t k = 0; k < classes; ++k) {
      c += correct[k];
      s += seen[k];
      e.per_class.push_back(seen[k] ? static_cast<double>(correct[k]) / seen[k] : 0.0);
    }
    e.accuracy = s ? static_cast<double>(c) / s : 0.0;
    e.quality = e.accuracy;
    return e;
  }

  Status CheckOutputs(torch::jit::Module& m, const Dataset& d) const override {
    if (d.size() == 0) return Status::InvalidArgument("the dataset has no samples");
    torch::NoGradGuard g;
    const bool was = m.is_training();
    m.eval();
    torch::Tensor out;
    try {
      out = m.forward(Range(d, 0, std::min<int64_t>(2, d.size())).inputs).toTensor();
    } catch (const std::exception& e) {
      m.train(was);
      return Status::InvalidArgument(std::string("the model does not run on the dataset's samples of shape ") +
                                     c10::str(d.inputs.sizes().slice(1)) + ": " + e.what());
    }
    m.train(was);
    const int64_t classes = std::max<int64_t>(d.classes, d.labels.max().item<int64_t>() + 1);
    if (out.dim() != 2 || out.size(1) < classes)
      return Status::InvalidArgument("the model outputs " + c10::str(out.sizes()) + " per batch; the dataset has " +
                                     std::to_string(classes) + " classes (labels 0.." + std::to_string(classes - 1) +
                                     "): build the model with " + std::to_string(classes) + " outputs");
    return Status::Ok();
  }

 private:
  const std::string name_;
  const SampleSpec sample_;
};

}  // namespace

std::unique_ptr<LearningTask> NewImageClassification(std::vector<int64_t> sample_shape) {
  return std::make_unique<Classification>("image_classification", SampleSpec{at::kFloat, std::move(sample_shape), 0});
}

std::unique_ptr<LearningTask> NewTokenClassification(int64_t length, int64_t vocabulary) {
  return std::make_unique<Classification>("sequence_classification", SampleSpec{at::kLong, {length}, vocabulary});
}

std::unique_ptr<LearningTask> ClassificationFor(const Dataset& data) {
  std::vector<int64_t> shape = data.inputs.sizes().slice(1).vec();
  if (data.inputs.scalar_type() == at::kLong) {
    const int64_t vocabulary = data.inputs.numel() > 0 ? data.inputs.max().item<int64_t>() + 1 : 1;
    return std::make_unique<Classification>("sequence_classification", SampleSpec{at::kLong, std::move(shape), vocabulary});
  }
  return NewImageClassification(std::move(shape));
}

}  // namespace prunelab::worker
