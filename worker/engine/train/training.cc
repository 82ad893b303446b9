#include "worker/engine/train/training.h"

#include <torch/torch.h>
#include <ATen/autocast_mode.h>

#include <fstream>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace prunelab::worker {

bool CpuHasBf16(std::string* why) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    line += " ";
    if (line.find(" avx512_bf16 ") != std::string::npos || line.find(" amx_bf16 ") != std::string::npos) return true;
    if (why) *why = "this CPU has neither avx512_bf16 nor amx_bf16 (see /proc/cpuinfo)";
    return false;
  }
  if (why) *why = "/proc/cpuinfo lists no CPU flags";
  return false;
}

namespace {
// Scoped bfloat16 autocast on the CPU (thread-local in ATen): ops that gain from it run in
// bf16, the rest in fp32; the weight-cast cache is cleared on exit.
class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool on) : on_(on) {
    if (!on_) return;
    was_ = at::autocast::is_cpu_enabled();
    dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
  ~Bf16Autocast() {
    if (!on_) return;
    at::autocast::set_cpu_enabled(was_);
    at::autocast::set_autocast_cpu_dtype(dtype_);
    at::autocast::clear_cache();
  }

 private:
  bool on_;
  bool was_ = false;
  at::ScalarType dtype_ = at::kBFloat16;
};

void SetMemoryFormat(torch::jit::Module& m, bool channels_last) {
  torch::NoGradGuard g;
  for (auto p : m.parameters())
    if (p.dim() == 4)
      p.set_data(channels_last ? p.contiguous(at::MemoryFormat::ChannelsLast) : p.contiguous());
}
}  // namespace

Status Train(torch::jit::Module& m, const LearningTask& task, const Dataset& data, const TrainOptions& o) {
  if (o.bf16) {
    std::string why;
    if (!CpuHasBf16(&why))
      return Status::InvalidArgument("training.precision bf16: " + why + "; use precision fp32 on this worker");
    SetMemoryFormat(m, true);
  }
  struct Restore {
    torch::jit::Module& m;
    bool on;
    ~Restore() {
      if (on) SetMemoryFormat(m, false);
    }
  } restore{m, o.bf16};
  std::vector<torch::Tensor> params, matrices, vectors;
  for (auto p : m.parameters()) {
    p.set_requires_grad(true);
    params.push_back(p);
    (p.dim() >= 2 ? matrices : vectors).push_back(p);
  }
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (o.adamw) {
    // Decay on weight matrices (and embeddings) only, not on biases and norms: the usual
    // transformer recipe. Gradients clipped to norm 1 below.
    auto options = torch::optim::AdamWOptions(o.learning_rate).betas({0.9, 0.95});
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(matrices, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(options).weight_decay(o.weight_decay)));
    groups.emplace_back(vectors, std::make_unique<torch::optim::AdamWOptions>(
                                     torch::optim::AdamWOptions(options).weight_decay(0)));
    opt = std::make_unique<torch::optim::AdamW>(std::move(groups), options);
  } else {
    opt = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum).weight_decay(o.weight_decay));
  }
  m.train(true);
  const int64_t n = data.size();
  const int64_t bs = std::max<int64_t>(1, o.batch_size);
  const int64_t steps_per_epoch = (n + bs - 1) / bs;
  // The learning-rate schedule spans the whole budget; stop_after_steps ends early on it
  // (rewinding reproduces the first steps of a longer run).
  const int64_t total = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(steps_per_epoch * o.epochs)));
  const int64_t last = o.stop_after_steps >= 0 ? std::min(total, o.stop_after_steps) : total;
  const int64_t report_every = std::max<int64_t>(1, last / 50);
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order(n);
  int64_t step = 0;
  for (uint32_t epoch = 0; step < last; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    auto perm = torch::from_blob(order.data(), {n}, torch::kInt64).clone();
    for (int64_t start = 0; start < n && step < last; start += bs) {
      auto idx = perm.slice(0, start, std::min(n, start + bs));
      Batch batch = task.Gather(data, idx);
      if (o.bf16)
        for (auto& in : batch.inputs)
          if (in.isTensor() && in.toTensor().dim() == 4) in = in.toTensor().contiguous(at::MemoryFormat::ChannelsLast);
      const auto& y = batch.targets;
      torch::Tensor loss;
      {
        Bf16Autocast autocast(o.bf16);
        auto logits = m.forward(batch.inputs).toTensor();
        if (o.teacher) {
          torch::Tensor soft_targets;
          {
            torch::NoGradGuard no_grad;
            soft_targets = o.teacher->forward(batch.inputs).toTensor();
          }
          loss = task.DistillationLoss(logits.to(torch::kFloat32), soft_targets.to(torch::kFloat32), y, o.temperature,
                                       o.alpha);
        } else {
          loss = task.Loss(logits.to(torch::kFloat32), y);
        }
      }
      double lv = loss.item<double>();
      if (!std::isfinite(lv)) {
        m.train(false);
        return Status::Internal("training diverged: loss is " + std::to_string(lv) + " at epoch " +
                                std::to_string(epoch + 1) + ", step " + std::to_string(start / bs + 1) +
                                " (lower the learning rate)");
      }
      // Cosine learning-rate decay to zero over the run: the usual recipe, and it makes
      // the dense baseline converge instead of ending on a noisy high-rate step.
      double lr = 0.5 * o.learning_rate * (1.0 + std::cos(M_PI * static_cast<double>(step) / total));
      for (auto& group : opt->param_groups()) group.options().set_lr(lr);
      opt->zero_grad();
      loss.backward();
      if (o.adamw) torch::nn::utils::clip_grad_norm_(params, 1.0);
      opt->step();
      if (o.masks) ApplyMasks(m, *o.masks);
      ++step;
      if (o.on_progress && (step % report_every == 0 || step == last)) {
        if (!o.on_progress(static_cast<double>(step) / last)) {
          m.train(false);
          return Status::Unavailable("training aborted");
        }
      }
    }
  }
  m.train(false);
  return Status::Ok();
}

}  // namespace prunelab::worker
