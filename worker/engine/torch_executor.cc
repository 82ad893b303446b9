#include <dlfcn.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/version.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "common/hash.h"
#include "common/records.h"
#include "common/hardware.h"
#include "common/spec.h"
#include "worker/engine/bench_runner.h"
#include "worker/engine/importance.h"
#include "worker/engine/executor.h"
#include "worker/engine/training.h"

namespace prunelab::worker {
namespace {

// Takes the host lock, showing what the task waits for while it waits.
std::shared_ptr<void> Lock(const ExecutionContext& ctx, bool exclusive, const std::string& purpose) {
  if (!ctx.host_lock) return nullptr;
  if (ctx.on_progress) ctx.on_progress("waiting for host lock to " + purpose, 0);
  return ctx.host_lock(exclusive);
}

TrainOptions OptionsFrom(const TrainingConfig& t, uint32_t epochs, double learning_rate, uint64_t seed_offset) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch_size = t.batch_size;
  o.learning_rate = learning_rate;
  o.momentum = t.momentum;
  o.weight_decay = t.weight_decay;
  o.seed = t.seed + seed_offset;
  return o;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class TorchExecutor final : public TrialExecutor {
 public:
  TorchExecutor() {
    // The graph executor's profiling/optimization passes slow training of these small
    // models (measured on 1 thread: 1070 -> 1450 samples/s with them off) and leave
    // batch-1 inference latency unchanged.
    torch::jit::setGraphExecutorOptimize(false);
  }

  ExecutionOutput Execute(const Task& task, const ExecutionContext& ctx) override {
    ExecutionOutput out;
    out.result = ResultFor(task);
    TrialResult& r = out.result;
    r.worker_id = ctx.worker_id;
    r.hardware = ctx.hardware;
    try {
      Status st = Run(task, ctx, &out);
      r.ok = st.ok();
      if (!st.ok()) r.error = st.ToString();
    } catch (const c10::Error& e) {
      r.ok = false;
      r.error = std::string("LibTorch error: ") + e.what_without_backtrace();
    } catch (const std::exception& e) {
      r.ok = false;
      r.error = std::string("error: ") + e.what();
    }
    if (!r.ok) out.artifact.clear();
    return out;
  }

 private:
  StatusOr<const Dataset*> Data(const DatasetConfig& cfg, bool train) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string key = cfg.path + (train ? ":train:" : ":test:") + std::to_string(train ? cfg.train_subset : cfg.test_subset);
    auto it = data_.find(key);
    if (it != data_.end()) return &it->second;
    auto d = LoadFashionMnist(cfg.path, train, train ? cfg.train_subset : cfg.test_subset);
    if (!d.ok()) return d.status();
    return &(data_[key] = std::move(d).value());
  }

  Status Run(const Task& task, const ExecutionContext& ctx, ExecutionOutput* out) {
    TrialResult& r = out->result;
    if (task.model != "cnn") return Status::InvalidArgument("model '" + task.model + "' is not built into this worker (have: cnn)");
    const ModelLayout& layout = FashionCnnLayout();
    auto progress = [&](const std::string& phase) {
      return [&ctx, phase](double f) { return !ctx.on_progress || ctx.on_progress(phase, f); };
    };
    if (ctx.on_progress) ctx.on_progress("loading data", 0);
    auto test = Data(task.dataset, /*train=*/false);
    if (!test.ok()) return test.status();

    torch::jit::Module model;
    if (task.kind == TaskKind::kTrainBaseline) {
      auto train = Data(task.dataset, /*train=*/true);
      if (!train.ok()) return train.status();
      model = BuildFashionCnn(task.training.seed);
      TrainOptions o = OptionsFrom(task.training, task.training.epochs, task.training.learning_rate, 0);
      o.on_progress = progress("training");
      auto lock = Lock(ctx, false, "train");
      auto t0 = std::chrono::steady_clock::now();
      PRUNELAB_RETURN_IF_ERROR(Train(model, *train.value(), o));
      r.train_seconds = SecondsSince(t0);
      out->artifact = SaveToBytes(model);
      r.artifact_hash = ContentHash(out->artifact);
    } else {
      if (!ctx.fetch_artifact) return Status::Internal("no artifact source");
      auto bytes = ctx.fetch_artifact(task.baseline_artifact);
      if (!bytes.ok()) return Status::Unavailable("baseline " + task.baseline_artifact + ": " + bytes.status().ToString());
      auto loaded = LoadFromBytes(bytes.value());
      if (!loaded.ok()) return loaded.status();
      model = std::move(loaded).value();
    }
    const int64_t dense_weights = PrunableWeights(model, layout);
    std::optional<torch::jit::Module> dense;  // A/B reference for pruned variants

    if (task.kind == TaskKind::kPruneTrial) {
      dense = model.deepcopy();
      if (task.trial.schedule != "one_shot") return Status::InvalidArgument("schedule '" + task.trial.schedule + "' not implemented (have: one_shot)");
      auto criterion = ParseCriterion(task.trial.criterion);
      if (!criterion.ok()) return criterion.status();
      Scores grads;
      if (NeedsGradients(criterion.value())) {
        // Calibration: 8 batches of the training data, model untouched otherwise.
        auto train = Data(task.dataset, /*train=*/true);
        if (!train.ok()) return train.status();
        if (ctx.on_progress) ctx.on_progress("scoring (gradients)", 0);
        grads = AccumulateAbsGradients(model, layout, *train.value(), 8, static_cast<int>(task.training.batch_size));
      }
      auto scores = WeightScores(model, layout, criterion.value(), &grads, task.training.seed);
      if (!scores.ok()) return scores.status();
      Masks masks;
      int nm_n = 0, nm_m = 0;
      if (task.trial.granularity == "unstructured") {
        for (const auto& [name, sc] : scores.value()) masks[name] = MaskFromScores(sc, task.trial.sparsity);
        ApplyMasks(model, masks);
      } else if (task.trial.granularity == "channel") {
        std::map<std::string, torch::Tensor> keep;
        for (const auto& g : layout.channel_groups)
          keep[g.name] = ChannelsToKeep(ChannelScores(scores.value().at(g.importance_param)), task.trial.sparsity);
        RemoveChannels(model, layout, keep);
      } else if (ParseNm(task.trial.granularity, &nm_n, &nm_m)) {
        // Layers whose input rows are not a multiple of M (the first conv: 9 inputs) stay dense.
        for (const auto& [name, sc] : scores.value()) {
          auto mask = NmMask(sc, nm_n, nm_m);
          if (mask.ok()) masks[name] = mask.value();
        }
        if (masks.empty()) return Status::InvalidArgument("no layer of this model can hold a " + task.trial.granularity + " pattern");
        ApplyMasks(model, masks);
      } else {
        return Status::InvalidArgument("granularity '" + task.trial.granularity + "' not implemented (have: unstructured, channel, N:M)");
      }
      if (task.trial.finetune_epochs > 0) {
        auto train = Data(task.dataset, /*train=*/true);
        if (!train.ok()) return train.status();
        TrainOptions o = OptionsFrom(task.training, task.trial.finetune_epochs, task.trial.finetune_learning_rate, 1);
        o.masks = masks.empty() ? nullptr : &masks;
        o.on_progress = progress("fine-tuning");
        auto lock = Lock(ctx, false, "fine-tune");
        auto t0 = std::chrono::steady_clock::now();
        PRUNELAB_RETURN_IF_ERROR(Train(model, *train.value(), o));
        r.train_seconds = SecondsSince(t0);
      }
    }
    r.achieved_sparsity = AchievedSparsity(model, layout, dense_weights);

    auto eval_lock = Lock(ctx, false, "evaluate");
    if (ctx.on_progress) ctx.on_progress("evaluating", 0);
    auto t0 = std::chrono::steady_clock::now();
    Evaluation ev = Evaluate(model, *test.value());
    r.eval_seconds = SecondsSince(t0);
    r.accuracy = ev.accuracy;
    r.per_class_accuracy = ev.per_class;
    // Accuracy loss hits some classes first: compare per class with the dense model,
    // evaluated once per baseline artifact and test set on this worker.
    const Evaluation base_ev = dense ? BaselineEvaluation(task, *dense, *test.value()) : ev;
    r.baseline_accuracy = base_ev.accuracy;
    r.worst_class_drop = 0;
    r.worst_class = -1;
    for (size_t k = 0; k < ev.per_class.size() && k < base_ev.per_class.size(); ++k) {
      double drop = base_ev.per_class[k] - ev.per_class[k];
      if (r.worst_class < 0 || drop > r.worst_class_drop) {
        r.worst_class_drop = drop;
        r.worst_class = static_cast<int32_t>(k);
      }
    }
    r.params = static_cast<uint64_t>(CountParameters(model));
    r.model_bytes = SaveToBytes(model).size();
    if (task.kind == TaskKind::kTrainBaseline) return Status::Ok();  // timing happens per target

    eval_lock.reset();
    auto bench_lock = Lock(ctx, true, "benchmark (exclusive)");
    BenchRequest req;
    req.variant = &model;
    req.baseline = dense ? &*dense : nullptr;
    req.has_unstructured_zeros = task.kind == TaskKind::kPruneTrial && task.trial.granularity != "channel";
    req.samples = test.value();
    req.config = task.benchmark;
    req.seed = task.training.seed;
    req.on_phase = [&ctx](const std::string& p) {
      if (ctx.on_progress) ctx.on_progress(p, 0);
    };
    PRUNELAB_RETURN_IF_ERROR(RunBenchmarks(req, &r));
    return Status::Ok();
  }

  Evaluation BaselineEvaluation(const Task& task, torch::jit::Module& dense, const Dataset& test) {
    std::string key = task.baseline_artifact + ":" + task.dataset.path + ":" + std::to_string(task.dataset.test_subset);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = baseline_eval_.find(key);
      if (it != baseline_eval_.end()) return it->second;
    }
    Evaluation e = Evaluate(dense, test);
    std::lock_guard<std::mutex> lock(mu_);
    return baseline_eval_[key] = e;
  }

  std::mutex mu_;
  std::map<std::string, Dataset> data_;
  std::map<std::string, Evaluation> baseline_eval_;
};

}  // namespace

std::unique_ptr<TrialExecutor> NewTorchExecutor() { return std::make_unique<TorchExecutor>(); }

int ConfigureTorchThreads(int threads) {
  if (threads > 0) {
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // already started; intra-op threads are what matters for latency
    }
    at::set_num_threads(threads);
    // OpenBLAS keeps its own thread pool (one per core by default) whose idle threads
    // spin; pin it to the same count or it competes with co-located workers.
    using SetThreads = void (*)(int);
    if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
  }
  return at::get_num_threads();
}

StatusOr<HardwareFingerprint> AddTorchInfo(HardwareFingerprint hw, const std::string& device) {
  hw.torch_version = TORCH_VERSION;
  hw.threads = static_cast<uint32_t>(at::get_num_threads());
  // Touch BLAS so the library actually used is mapped before we look.
  (void)torch::mm(torch::ones({8, 8}), torch::ones({8, 8}));
  hw.blas = LoadedBlasLibrary();
  if (device == "cpu" || device.empty()) {
    hw.device = "cpu";
  } else if (device.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      return Status::InvalidArgument("--device " + device + ": this worker's LibTorch has no usable CUDA "
                                     "(build against a CUDA LibTorch, or use --device cpu)");
    return Status::InvalidArgument("--device " + device + ": GPU execution is not implemented yet in this build; use --device cpu");
  } else {
    return Status::InvalidArgument("--device '" + device + "': allowed values are cpu, cuda:N");
  }
  return hw;
}

}  // namespace prunelab::worker
