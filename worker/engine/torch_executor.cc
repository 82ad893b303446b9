#include <torch/torch.h>

#include <dlfcn.h>
#include <sys/wait.h>
#include <malloc.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/version.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>

#include "common/base/drift.h"
#include "common/base/hash.h"
#include "common/base/log.h"
#include "common/base/text.h"
#include "common/codec/records.h"
#include "common/base/hardware.h"
#include "common/spec/spec.h"
#include "common/spec/zoo_names.h"
#include "worker/engine/bench/bench_runner.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/torch_executor.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/train/training.h"
#include "worker/engine/data/token_data.h"
#include "worker/engine/data/user_data.h"
#include "worker/engine/model/depth.h"
#include "worker/engine/model/quantize.h"
#include "worker/engine/model/user_model.h"
#include "worker/engine/model/zoo.h"
#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {
namespace {

// The longest a worker tokenizes one corpus (prunelab-tokenize) before the trial fails.
constexpr int kTokenizeLimitS = 3600;

// Takes the host lock, showing what the task waits for while it waits.
std::shared_ptr<void> Lock(const ExecutionContext& ctx, bool exclusive, const std::string& purpose) {
  if (!ctx.host_lock) return nullptr;
  if (ctx.on_progress) ctx.on_progress("waiting for host lock to " + purpose, 0);
  return ctx.host_lock(exclusive);
}

TrainOptions OptionsFrom(const TrainingConfig& t, double epochs, double learning_rate, uint64_t seed_offset) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch_size = t.batch_size;
  o.learning_rate = learning_rate;
  o.momentum = t.momentum;
  o.weight_decay = t.weight_decay;
  o.seed = t.seed + seed_offset;
  o.bf16 = t.precision == "bf16";
  o.adamw = t.optimizer == "adamw";
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
    // Quantized variants (sweep.quantize) run on oneDNN here, QNNPACK on ARM.
    auto engine = SelectQuantizedEngine();
    if (engine.ok()) quantized_engine_ = engine.value();
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
      // TorchScript's compile errors start with a newline: the message's first line would be empty.
      std::string what = e.what();
      what.erase(0, what.find_first_not_of(" \n"));
      r.error = "error: " + what;
    }
    if (!r.ok) out.artifact.clear();
    return out;
  }

 private:
  // Raw text tokenized once per corpus, tokenizer and vocabulary on this worker, by
  // prunelab-tokenize (beside this binary: SentencePiece cannot share a process with
  // LibTorch) into CACHE/tokens/HASH: train.bin, val.bin, tokenizer.model, corpus.json.
  static std::string TextKey(const DatasetConfig& d) {
    return "text:" + d.path + ":" + std::to_string(d.vocab_size) + ":" + d.tokenizer;
  }
  struct Tokenized {
    std::string dir;
    int64_t vocabulary = 0;
    std::string tokenizer_hash;
  };
  StatusOr<Tokenized> TokenizeText(const DatasetConfig& cfg, const std::string& cache_dir,
                                   const std::function<bool(const std::string&, double)>& on_progress) {
    const std::string key = TextKey(cfg);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = tokenized_.find(key);
      if (it != tokenized_.end()) return it->second;
    }
    std::lock_guard<std::mutex> once(tokenize_mu_);
    const std::string root = (cache_dir.empty() ? std::string("/tmp/prunelab-cache") : cache_dir);
    const std::string out = root + "/tokens/" + ContentHash(key).substr(0, 16);
    std::error_code ec;
    const std::string bin =
        (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "prunelab-tokenize").string();
    if (!std::filesystem::exists(out + "/corpus.json")) {
      if (!std::filesystem::exists(bin))
        return Status::Internal("prunelab-tokenize not found at " + bin + " (build it: cluster/build.sh)");
      if (on_progress) on_progress("tokenizing " + cfg.path, 0);
      // Bounded: coreutils' timeout ends it (exit 124) after kTokenizeLimitS.
      std::string cmd = "timeout --kill-after=10 " + std::to_string(kTokenizeLimitS) + " " + ShellQuoted(bin) + " --corpus " + ShellQuoted(cfg.path) + " --out " + ShellQuoted(out) + " --cache-dir " +
                        ShellQuoted(root + "/tokenizers");
      cmd += cfg.tokenizer.empty() ? " --vocab " + std::to_string(cfg.vocab_size) : " --tokenizer " + ShellQuoted(cfg.tokenizer);
      cmd += " > " + ShellQuoted(out + ".log") + " 2>&1";
      std::filesystem::create_directories(root + "/tokens", ec);
      const int rc = std::system(cmd.c_str());
      if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 124)
        return Status::Unavailable("tokenizing " + cfg.path + " took longer than its limit of " +
                                   std::to_string(kTokenizeLimitS) + " s (kTokenizeLimitS); give pre-tokenized files "
                                   "(dataset name tokens) for a corpus this large");
      if (rc != 0) {
        std::ifstream log(out + ".log");
        std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
        while (!text.empty() && text.back() == '\n') text.pop_back();
        const auto nl = text.rfind('\n');
        return Status::InvalidArgument("dataset " + cfg.path + " could not be tokenized: " +
                                       (nl == std::string::npos ? text : text.substr(nl + 1)));
      }
    }
    std::ifstream in(out + "/corpus.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto j = ParseJson(text);
    if (!j.ok() || !j->is_object() || !j->contains("vocabulary"))
      return Status::Internal(out + "/corpus.json is unreadable; delete " + out + " to tokenize again");
    Tokenized t{out, j->value("vocabulary", int64_t{0}), j->value("tokenizer_hash", std::string())};
    log::Info("tokenized " + cfg.path + " into " + out + ": " + std::to_string(j->value("train_tokens", int64_t{0})) +
              " training and " + std::to_string(j->value("val_tokens", int64_t{0})) + " held-out tokens, vocabulary " +
              std::to_string(t.vocabulary) + ", tokenizer " + t.tokenizer_hash.substr(0, 12));
    std::lock_guard<std::mutex> lock(mu_);
    return tokenized_[key] = t;
  }

  // Token windows of a language-modeling dataset: the split's token files (tokens), or the
  // text tokenized on this worker (text).
  StatusOr<Dataset> LoadTokens(const DatasetConfig& cfg, bool train, const ExecutionContext* ctx) {
    std::string dir = cfg.path;
    int64_t vocabulary = cfg.vocab_size;
    if (cfg.name == "text") {
      auto t = TokenizeText(cfg, ctx ? ctx->cache_dir : "", ctx ? ctx->on_progress : nullptr);
      if (!t.ok()) return t.status();
      dir = t->dir;
      vocabulary = t->vocabulary;
    }
    return LoadTokenSplit(dir, train ? "train" : "val", cfg.sequence_length, vocabulary,
                          train ? cfg.train_subset : cfg.test_subset);
  }

  StatusOr<const Dataset*> Data(const DatasetConfig& cfg, bool train, const std::vector<int64_t>& input_shape,
                                const ExecutionContext* ctx = nullptr) {
    if (cfg.task == "causal_lm") {
      const std::string key = "lm:" + cfg.name + ":" + cfg.path + ":" + cfg.tokenizer + ":" +
                              std::to_string(cfg.vocab_size) + ":" + std::to_string(cfg.sequence_length) +
                              (train ? ":train:" : ":test:") + std::to_string(train ? cfg.train_subset : cfg.test_subset);
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = data_.find(key);
        if (it != data_.end()) return &it->second;
      }
      auto d = LoadTokens(cfg, train, ctx);
      if (!d.ok()) return d.status();
      std::lock_guard<std::mutex> lock(mu_);
      return &(data_[key] = std::move(d).value());
    }
    std::lock_guard<std::mutex> lock(mu_);
    const bool user = cfg.name == "npy" || cfg.name == "folder";
    std::string key = cfg.name + ":" + cfg.path + (train ? ":train:" : ":test:") +
                      std::to_string(train ? cfg.train_subset : cfg.test_subset);
    if (user) {
      for (int64_t s : input_shape) key += ":" + std::to_string(s);
      for (double v : cfg.mean) key += ":m" + std::to_string(v);
      for (double v : cfg.std) key += ":s" + std::to_string(v);
    }
    auto it = data_.find(key);
    if (it != data_.end()) return &it->second;
    const uint32_t subset = train ? cfg.train_subset : cfg.test_subset;
    auto d = user ? LoadUserDataset(cfg, train, subset, input_shape.size() == 3 ? input_shape : std::vector<int64_t>{})
                  : LoadFashionMnist(cfg.path, train, subset);
    if (!d.ok()) return d.status();
    return &(data_[key] = std::move(d).value());
  }

  // The dense model of a task: the zoo model built from its seed, or the user's module.
  struct Loaded {
    torch::jit::Module module;
    ModelLayout layout;
  };

  StatusOr<Loaded> UserModel(const Task& task, const ExecutionContext& ctx) {
    if (!ctx.fetch_artifact) return Status::Internal("no artifact source");
    auto bytes = ctx.fetch_artifact(task.model_artifact);
    if (!bytes.ok()) return Status::Unavailable("user model " + task.model_artifact + ": " + bytes.status().ToString());
    auto m = LoadFromBytes(bytes.value());
    if (!m.ok()) return m.status();
    return Loaded{m.value(), InferLayout(m.value(), *LearningTaskOf(task))};
  }

  // What a structured plan does, for the progress line: groups pruned, groups left dense and why.
  static std::string StructuredSummary(const ModelLayout& layout, const Keep& keep) {
    int dense_left = 0;
    std::string first;
    for (const auto& g : layout.groups)
      if (!keep.count(g.name)) {
        ++dense_left;
        if (first.empty() && !g.blocked.empty()) first = g.blocked;
      }
    std::string out = "structured: pruning " + std::to_string(keep.size()) + " of " + std::to_string(layout.groups.size()) +
                      " structure groups";
    if (dense_left) out += "; " + std::to_string(dense_left) + " left dense" + (first.empty() ? "" : " (first: " + first + ")");
    return out;
  }

  // The dataset's class names in label order: the spec's, a folder's sub-folders, or
  // Fashion-MNIST's own; empty when unknown.
  static std::vector<std::string> ClassNames(const DatasetConfig& d) {
    if (!d.class_names.empty()) return d.class_names;
    if (d.name == "folder") {
      auto c = FolderClasses(d.path);
      if (c.ok()) return c.value();
    }
    if (d.name == "fashion-mnist")
      return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    return {};
  }

  // What the model's input is, for the model card.
  static std::string Preprocessing(const Task& t) {
    const auto& d = t.dataset;
    if (d.task == "causal_lm")
      return (d.name == "text" ? (d.tokenizer.empty() ? "UTF-8 text tokenized by a SentencePiece unigram model of " +
                                                            std::to_string(d.vocab_size) + " pieces trained on the training split"
                                                      : "UTF-8 text tokenized by " + d.tokenizer)
                               : "token ids as stored (below " + std::to_string(d.vocab_size) + ")") +
             ", windows of " + std::to_string(d.sequence_length) + " ids (int64); next-token targets";
    if (d.name != "npy" && d.name != "folder")
      return "pixel / 255, then (x - 0.2860) / 0.3530 (Fashion-MNIST mean and std)";
    auto list = [](const std::vector<double>& v, double none) {
      if (v.empty()) return std::to_string(none).substr(0, 3);
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]).substr(0, 6);
      return s + "]";
    };
    std::string shape;
    for (int64_t s : SampleShape(t)) shape += (shape.empty() ? "" : "x") + std::to_string(s);
    return std::string(d.name == "npy" ? "uint8 pixels / 255 (float32 as given)" : "decoded PNG/JPEG pixels / 255") +
           ", converted to the model's channels and resized bilinearly to " + shape + ", then (x - " + list(d.mean, 0) +
           ") / " + list(d.std, 1) + " per channel";
  }

  // One sample's shape as the model takes it: model.input_shape, else the dataset's.
  static std::vector<int64_t> SampleShape(const Task& task) {
    return SampleShapeOr(task.input_shape);
  }

  // What the model learns: every batch, example input, loss and metric comes from it: causal
  // language modeling over the dataset's windows and vocabulary (the tokenizer's, when the
  // user gave one), or image classification over model.input_shape.
  std::unique_ptr<LearningTask> LearningTaskOf(const Task& task) {
    const DatasetConfig& d = task.dataset;
    if (d.task != "causal_lm") return NewImageClassification(SampleShape(task));
    int64_t vocabulary = d.vocab_size;
    if (d.name == "text") {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = tokenized_.find(TextKey(d));
      if (it != tokenized_.end()) vocabulary = it->second.vocabulary;
    }
    return NewCausalLanguageModeling(d.sequence_length, vocabulary);
  }

  // A language model's row names the tokenizer its ids come from (the card ships it by hash).
  void RecordTokenizer(const Task& task, TrialResult* r) {
    const DatasetConfig& d = task.dataset;
    if (d.task != "causal_lm" || d.name != "text") return;
    Tokenized t;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = tokenized_.find(TextKey(d));
      if (it == tokenized_.end()) return;
      t = it->second;
    }
    auto cfg = ParseJson(r->trial_json.empty() ? "{}" : r->trial_json);
    nlohmann::json c = cfg.ok() && cfg->is_object() ? cfg.value() : nlohmann::json::object();
    c["tokenizer"] = {{"kind", "SentencePiece unigram"},
                      {"hash", t.tokenizer_hash},
                      {"vocabulary", t.vocabulary},
                      {"source", d.tokenizer.empty() ? "trained on the training split by prunelab-tokenize" : d.tokenizer}};
    r->trial_json = c.dump();
  }

  // Test images shaped as the model expects (model.input_shape; zoo: [1, 28, 28]).
  StatusOr<Dataset> Shaped(const Dataset& d, const std::vector<int64_t>& shape) {
    if (shape.empty()) return d;
    std::vector<int64_t> full{d.inputs.size(0)};
    int64_t per = 1;
    for (int64_t s : shape) {
      full.push_back(s);
      per *= s;
    }
    int64_t have = d.inputs.numel() / std::max<int64_t>(1, d.inputs.size(0));
    if (per != have)
      return Status::InvalidArgument("model.input_shape has " + std::to_string(per) + " values per sample; the dataset gives " +
                                     std::to_string(have));
    Dataset out{d.inputs.reshape(full), d.labels};
    out.classes = d.classes;
    return out;
  }

  StatusOr<const Dataset*> ShapedData(const Task& task, bool train, const ExecutionContext* ctx = nullptr) {
    auto d = Data(task.dataset, train, SampleShape(task), ctx);
    if (!d.ok() || task.input_shape.empty()) return d;
    std::lock_guard<std::mutex> lock(mu_);
    std::string key = task.dataset.path + (train ? ":train:" : ":test:") + std::to_string(train ? task.dataset.train_subset : task.dataset.test_subset);
    for (int64_t s : task.input_shape) key += ":" + std::to_string(s);
    auto it = shaped_.find(key);
    if (it != shaped_.end()) return &it->second;
    auto s = Shaped(*d.value(), task.input_shape);
    if (!s.ok()) return s.status();
    return &(shaped_[key] = std::move(s).value());
  }

  // The dense model of a training task: built from the zoo (or the user's file) and trained;
  // its serialized bytes become the task's artifact.
  StatusOr<Loaded> TrainBaseline(const Task& task, const ExecutionContext& ctx, ExecutionOutput* out) {
    auto train = ShapedData(task, /*train=*/true, &ctx);
    if (!train.ok()) return train.status();
    Loaded m;
    if (!task.model_artifact.empty()) {
      auto u = UserModel(task, ctx);
      if (!u.ok()) return u.status();
      m = std::move(u).value();
    } else {
      auto built = BuildZooModel(task.model, task.training.seed, LearningTaskOf(task)->Sample());
      if (!built.ok()) return built.status();
      m = Loaded{built->module, built->layout};
    }
    auto learning = LearningTaskOf(task);
    PRUNELAB_RETURN_IF_ERROR(learning->CheckOutputs(m.module, *train.value()));
    if (task.training.epochs > 0) {
      TrainOptions o = OptionsFrom(task.training, task.training.epochs, task.training.learning_rate, 0);
      o.on_progress = [&ctx](double f) { return !ctx.on_progress || ctx.on_progress("training", f); };
      auto lock = Lock(ctx, false, "train");
      auto t0 = std::chrono::steady_clock::now();
      PRUNELAB_RETURN_IF_ERROR(Train(m.module, *learning, *train.value(), o));
      out->result.train_seconds = SecondsSince(t0);
    }
    out->artifact = SaveToBytes(m.module);
    out->result.artifact_hash = ContentHash(out->artifact);
    return m;
  }

  // The dense model every later task starts from: the training task's artifact.
  StatusOr<Loaded> FetchBaseline(const Task& task, const ExecutionContext& ctx) {
    if (!ctx.fetch_artifact) return Status::Internal("no artifact source");
    auto bytes = ctx.fetch_artifact(task.baseline_artifact);
    if (!bytes.ok()) return Status::Unavailable("baseline " + task.baseline_artifact + ": " + bytes.status().ToString());
    auto loaded = LoadFromBytes(bytes.value());
    if (!loaded.ok()) return loaded.status();
    Loaded m{std::move(loaded).value(), {}};
    if (!task.model_artifact.empty()) {
      m.layout = InferLayout(m.module, *LearningTaskOf(task));
    } else {
      auto l = ZooLayout(task.model);
      if (!l.ok()) return l.status();
      m.layout = std::move(l).value();
    }
    return m;
  }

  // What a result row says about a model against the dense one: accuracy (overall, per
  // class, worst-class drop), achieved sparsity, per-layer weights, sizes.
  struct Describer {
    const ExecutionContext& ctx;
    const LearningTask& learning;
    const torch::jit::Module& dense;
    const ModelLayout& layout;
    const Dataset& test;
    const Evaluation& base_ev;
    int64_t dense_weights;
    bool evaluate;  // false: the model is the dense one, reuse base_ev
    void operator()(torch::jit::Module& m, TrialResult* row) const {
      Accuracy(m, row);
      row->achieved_sparsity = AchievedSparsity(m, layout, dense_weights);
      row->layers = LayerStats(m, dense, layout);
      row->params = static_cast<uint64_t>(CountParameters(m));
      row->model_bytes = SaveToBytes(m).size();
    }
    // Accuracy overall, per class and the worst-class drop (any model, a quantized one too).
    void Accuracy(torch::jit::Module& m, TrialResult* row) const {
      auto lock = Lock(ctx, false, "evaluate");
      auto t0 = std::chrono::steady_clock::now();
      Evaluation ev = evaluate ? learning.Evaluate(m, test) : base_ev;
      row->eval_seconds += SecondsSince(t0);
      row->accuracy = ev.accuracy;
      row->per_class_accuracy = ev.per_class;
      row->baseline_accuracy = base_ev.accuracy;
      if (!learning.Metric().maximize) {  // language modeling: perplexity, lower is better
        row->metric = learning.Metric().name;
        row->perplexity = ev.quality;
        row->baseline_perplexity = base_ev.quality;
      }
      row->worst_class_drop = 0;
      row->worst_class = -1;
      for (size_t k = 0; k < ev.per_class.size() && k < base_ev.per_class.size(); ++k) {
        double drop = base_ev.per_class[k] - ev.per_class[k];
        if (row->worst_class < 0 || drop > row->worst_class_drop) {
          row->worst_class_drop = drop;
          row->worst_class = static_cast<int32_t>(k);
        }
      }
    }
  };

  // train | evaluate the baseline | prune + fine-tune + evaluate | benchmark a variant.
  Status Run(const Task& task, const ExecutionContext& ctx, ExecutionOutput* out) {
    TrialResult& r = out->result;
    r.class_names = ClassNames(task.dataset);
    r.preprocessing = Preprocessing(task);
    if (ctx.on_progress) ctx.on_progress("loading data", 0);
    auto test = ShapedData(task, /*train=*/false, &ctx);
    if (!test.ok()) return test.status();
    if (task.kind == TaskKind::kBenchmarkVariant) return BenchmarkVariant(task, ctx, *test.value(), &r);
    if (task.kind == TaskKind::kEvaluateRelease) return EvaluateRelease(task, ctx, *test.value(), &r);
    if (task.kind == TaskKind::kConfirmTarget) return ConfirmTarget(task, ctx, *test.value(), &r);

    auto loaded = task.kind == TaskKind::kTrainBaseline ? TrainBaseline(task, ctx, out) : FetchBaseline(task, ctx);
    if (!loaded.ok()) return loaded.status();
    torch::jit::Module& model = loaded->module;
    const ModelLayout& layout = loaded->layout;
    const int64_t dense_weights = PrunableWeights(model, layout);
    torch::jit::Module dense = CloneModule(model);
    r.params_before = static_cast<uint64_t>(CountParameters(model));
    r.model_bytes_before = SaveToBytes(model).size();
    const bool prune = task.kind == TaskKind::kPruneTrial;
    const bool sensitivity = prune && task.trial.schedule == "sensitivity";
    const bool structured = IsStructured(task.trial.granularity);

    auto learning = LearningTaskOf(task);
    Evaluation base_ev;
    {
      auto lock = Lock(ctx, false, "evaluate");
      if (ctx.on_progress) ctx.on_progress("evaluating", 0);
      base_ev = task.kind == TaskKind::kTrainBaseline ? learning->Evaluate(dense, *test.value())
                                                      : BaselineEvaluation(task, *learning, dense, *test.value());
    }
    const Describer describe{ctx, *learning, dense, layout, *test.value(), base_ev, dense_weights, prune};
    if (prune && task.trial.granularity != "dense")
      PRUNELAB_RETURN_IF_ERROR(Prune(task, ctx, layout, dense, structured, &model, out, describe));
    if (ctx.on_progress) ctx.on_progress("evaluating", 0);
    describe(model, &r);
    RecordTokenizer(task, &r);
    if (prune && task.trial.quantize != "none") PRUNELAB_RETURN_IF_ERROR(Quantize(task, ctx, describe, &model, &r));
    if (prune && !sensitivity) {
      out->artifact = SaveToBytes(model);
      r.artifact_hash = ContentHash(out->artifact);
    }
    // Timing happens per target: the baseline's on base@T, a variant's on its benchmark task.
    if (task.kind != TaskKind::kEvaluateBaseline) return Status::Ok();
    return Time(task, ctx, model, nullptr, *test.value(), &r);
  }

  // Post-training quantization of the pruned (or dense) float model: sparsity, layers and
  // parameter count stay those of the float model it came from; accuracy, per-class
  // accuracy and size are the quantized model's. What was done goes into the card.
  template <typename Describe>
  Status Quantize(const Task& task, const ExecutionContext& ctx, const Describe& describe, torch::jit::Module* model,
                  TrialResult* r) {
    if (quantized_engine_.empty()) return SelectQuantizedEngine().status();
    auto calibration = ShapedData(task, /*train=*/true, &ctx);
    if (!calibration.ok()) return calibration.status();
    if (ctx.on_progress) ctx.on_progress("quantizing (" + task.trial.quantize + ", " + quantized_engine_ + ")", 0);
    QuantizeReport report;
    auto q = QuantizeInt8(*model, task.trial.quantize, *LearningTaskOf(task), *calibration.value(), static_cast<int>(task.trial.calibration_batches),
                          static_cast<int>(task.training.batch_size), &report);
    if (!q.ok()) return q.status();
    *model = std::move(q).value();
    if (ctx.on_progress) ctx.on_progress("evaluating the quantized model", 0);
    describe.Accuracy(*model, r);
    r->model_bytes = SaveToBytes(*model).size();
    auto cfg = ParseJson(r->trial_json.empty() ? "{}" : r->trial_json);
    nlohmann::json c = cfg.ok() ? cfg.value() : nlohmann::json::object();
    c["quantization"] = {{"mode", report.mode},
                         {"engine", report.engine},
                         {"weights", report.weights},
                         {"activations", report.activations},
                         {"quantized_layers", report.quantized_ops},
                         {"float_layers", report.float_ops},
                         {"batch_norms_folded", report.folded_batch_norms},
                         {"calibration", report.calibration_samples > 0
                                             ? std::to_string(report.calibration_samples) +
                                                   " training samples (the first " +
                                                   std::to_string(task.trial.calibration_batches) + " batches of " +
                                                   std::to_string(task.training.batch_size) + ")"
                                             : std::string("none (dynamic)")}};
    r->trial_json = c.dump();
    return Status::Ok();
  }

  // The task's settings, progress and cancellation for a timing on this worker.
  static void FillTiming(const Task& task, const ExecutionContext& ctx, const Dataset& samples, TimingRequest* req) {
    req->samples = &samples;
    req->config = task.benchmark;
    req->seed = task.training.seed;
    req->cancelled = ctx.cancelled;
    req->interference = ctx.interference;
    req->on_phase = [&ctx](const std::string& p) {
      if (ctx.on_progress) ctx.on_progress(p, 0);
    };
  }

  Status Time(const Task& task, const ExecutionContext& ctx, torch::jit::Module& model, torch::jit::Module* dense,
              const Dataset& samples, TrialResult* r) {
    auto bench_lock = Lock(ctx, true, "benchmark (exclusive)");
    TimingThreads threads(task.benchmark.threads, r);
    const bool structured = IsStructured(task.trial.granularity);
    BenchRequest req;
    req.variant = &model;
    req.baseline = dense;
    // The CSR execution form is implemented for the zoo cnn only.
    req.has_unstructured_zeros = dense && !structured && task.model == "cnn" && task.model_artifact.empty() &&
                                 task.trial.quantize == "none" && task.trial.granularity != "dense";
    FillTiming(task, ctx, samples, &req);
    return RunBenchmarks(req, r);
  }

  // A pruned variant (made by its prune task, maybe on another machine) against the dense
  // baseline on this worker's hardware.
  Status BenchmarkVariant(const Task& task, const ExecutionContext& ctx, const Dataset& samples, TrialResult* r) {
    if (!ctx.fetch_artifact) return Status::Internal("no artifact source");
    if (ctx.on_progress) ctx.on_progress("fetching the variant", 0);
    auto load = [&](const std::string& hash, const char* what) -> StatusOr<torch::jit::Module> {
      auto bytes = ctx.fetch_artifact(hash);
      if (!bytes.ok()) return Status::Unavailable(std::string(what) + " " + hash + ": " + bytes.status().ToString());
      return LoadFromBytes(bytes.value());
    };
    auto dense = load(task.baseline_artifact, "baseline");
    if (!dense.ok()) return dense.status();
    auto variant = load(task.variant_artifact, "variant");
    if (!variant.ok()) return variant.status();
    r->params = static_cast<uint64_t>(CountParameters(variant.value()));
    r->artifact_hash = task.variant_artifact;
    return Time(task, ctx, variant.value(), &dense.value(), samples, r);
  }

  // The target's confirmation round: its candidates (the baseline first) timed again,
  // interleaved round-robin here; the decision takes the recommendation from it.
  Status ConfirmTarget(const Task& task, const ExecutionContext& ctx, const Dataset& samples, TrialResult* r) {
    if (!ctx.fetch_artifact) return Status::Internal("no artifact source");
    if (task.candidates.size() < 2) return Status::InvalidArgument("confirmation round: fewer than two models to compare");
    std::map<std::string, torch::jit::Module> modules;  // by content hash: a model named twice loads once
    for (const auto& c : task.candidates) {
      if (modules.count(c.artifact)) continue;
      if (ctx.on_progress) ctx.on_progress("fetching " + c.task_id, 0);
      auto bytes = ctx.fetch_artifact(c.artifact);
      if (!bytes.ok()) return Status::Unavailable(c.task_id + " " + c.artifact + ": " + bytes.status().ToString());
      auto m = LoadFromBytes(bytes.value());
      if (!m.ok()) return Status::InvalidArgument(c.task_id + ": " + m.status().message());
      modules.emplace(c.artifact, std::move(m).value());
    }
    ConfirmRequest req;
    for (const auto& c : task.candidates) req.models.push_back({c.task_id, &modules.at(c.artifact), c.form});
    FillTiming(task, ctx, samples, &req);
    auto bench_lock = Lock(ctx, true, "confirmation round (exclusive)");
    TimingThreads threads(task.benchmark.threads, r);
    ConfirmationRound round;
    round.threads = r->hardware.threads;
    PRUNELAB_RETURN_IF_ERROR(RunConfirmation(req, &round));
    r->benchmark_json = nlohmann::json{{"confirmation", ToJson(round)}}.dump();
    return Status::Ok();
  }

  // A released variant on new data (evaluateRelease): accuracy per class, predicted-class
  // counts, input-feature histograms over the bins fixed at release (the reference run makes
  // them: deciles of its own data), single-stream p95 and offline throughput on this target;
  // the dense teacher too when asked. Per-class accuracy is -1 for a class without samples.
  Status EvaluateRelease(const Task& task, const ExecutionContext& ctx, const Dataset& data, TrialResult* r) {
    if (!ctx.fetch_artifact) return Status::Internal("no artifact source");
    if (data.size() == 0) return Status::InvalidArgument("the evaluation data has no samples");
    auto load = [&](const std::string& hash, const char* what) -> StatusOr<torch::jit::Module> {
      if (ctx.on_progress) ctx.on_progress(std::string("fetching the ") + what, 0);
      auto bytes = ctx.fetch_artifact(hash);
      if (!bytes.ok()) return Status::Unavailable(std::string(what) + " " + hash + ": " + bytes.status().ToString());
      return LoadFromBytes(bytes.value());
    };
    if (task.dataset.task == "causal_lm")
      return Status::InvalidArgument("continuous evaluation of a released language model is not built yet (releases of "
                                   "image classifiers only)");
    auto variant = load(task.variant_artifact, "released variant");
    if (!variant.ok()) return variant.status();
    auto learning = LearningTaskOf(task);
    PRUNELAB_RETURN_IF_ERROR(learning->CheckOutputs(variant.value(), data));
    const EvaluationConfig& ec = task.evaluation;
    nlohmann::json out{{"release", ec.release}, {"reference", ec.reference}, {"samples", data.size()}, {"labels", true}};

    // Input features per sample and channel, as the model sees them: mean (brightness) and
    // standard deviation (contrast).
    std::map<std::string, std::vector<double>> features;
    {
      auto flat = data.inputs.reshape({data.size(), data.inputs.size(1), -1}).to(torch::kFloat64);
      auto mean = flat.mean(2).contiguous(), sd = flat.std(2).contiguous();
      for (int64_t c = 0; c < mean.size(1); ++c) {
        auto m = mean.select(1, c).contiguous(), s = sd.select(1, c).contiguous();
        features["brightness_c" + std::to_string(c)] = std::vector<double>(m.data_ptr<double>(), m.data_ptr<double>() + m.numel());
        features["contrast_c" + std::to_string(c)] = std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
      }
    }
    nlohmann::json bins = nlohmann::json::object();
    if (!ec.reference) {
      auto b = ParseJson(ec.bins_json.empty() ? "{}" : ec.bins_json);
      if (!b.ok() || !b->is_object()) return Status::InvalidArgument("evaluation: the release's bins are unreadable");
      bins = b.value();
    }
    nlohmann::json fj = nlohmann::json::object();
    for (const auto& [name, values] : features) {
      std::vector<double> edges;
      if (ec.reference) {
        edges = QuantileEdges(values, 10);
      } else if (bins.contains(name) && bins[name].is_array()) {
        for (const auto& e : bins[name])
          if (e.is_number()) edges.push_back(e.get<double>());
      } else {
        continue;  // the release has no bins for it (another channel count): not compared
      }
      fj[name] = {{"edges", edges}, {"counts", BinCounts(values, edges)}};
    }
    out["features"] = fj;

    std::vector<int64_t> seen;
    auto score = [&](torch::jit::Module& m, TrialResult* row, std::vector<int64_t>* predicted) {
      auto lock = Lock(ctx, false, "evaluate");
      auto t0 = std::chrono::steady_clock::now();
      Evaluation ev = learning->Evaluate(m, data);
      row->eval_seconds += SecondsSince(t0);
      row->accuracy = ev.accuracy;
      row->per_class_accuracy.clear();
      for (size_t k = 0; k < ev.per_class.size(); ++k)
        row->per_class_accuracy.push_back(k < ev.seen.size() && ev.seen[k] > 0 ? ev.per_class[k] : -1.0);
      *predicted = ev.predicted;
      seen = ev.seen;
      row->model_bytes = SaveToBytes(m).size();
      row->params = static_cast<uint64_t>(CountParameters(m));
    };
    if (ctx.on_progress) ctx.on_progress("evaluating the release on " + std::to_string(data.size()) + " samples", 0);
    std::vector<int64_t> predicted;
    score(variant.value(), r, &predicted);
    out["predicted"] = predicted;
    out["seen"] = seen;
    r->artifact_hash = task.variant_artifact;
    PRUNELAB_RETURN_IF_ERROR(Time(task, ctx, variant.value(), nullptr, data, r));
    if (ec.compare_dense) {
      auto dense = load(task.baseline_artifact, "dense teacher");
      if (!dense.ok()) return dense.status();
      TrialResult d;
      std::vector<int64_t> dense_predicted;
      if (ctx.on_progress) ctx.on_progress("evaluating the dense teacher", 0);
      score(dense.value(), &d, &dense_predicted);
      PRUNELAB_RETURN_IF_ERROR(Time(task, ctx, dense.value(), nullptr, data, &d));
      r->baseline_accuracy = d.accuracy;
      r->model_bytes_before = d.model_bytes;
      out["dense"] = {{"accuracy", d.accuracy}, {"per_class_accuracy", d.per_class_accuracy}, {"predicted", dense_predicted},
                      {"latency_p95_ms", d.latency_p95_ms}, {"throughput_sps", d.throughput_sps},
                      {"model_bytes", d.model_bytes}, {"bench_valid", d.bench_valid}};
    }
    r->trial_json = nlohmann::json{{"evaluation", out}}.dump();
    return Status::Ok();
  }

  // Early weights for lottery-ticket rewinding: the zoo model's initialization (fraction 0)
  // or the first `fraction` of the baseline's training, replayed with the same seed.
  StatusOr<torch::jit::Module> RewindWeights(const Task& task, const ExecutionContext& ctx) {
    if (!task.model_artifact.empty() && task.trial.rewind > 0)
      return Status::InvalidArgument("schedule.rewind > 0 replays the baseline's training and needs a zoo model");
    torch::jit::Module m;
    if (!task.model_artifact.empty()) {
      auto u = UserModel(task, ctx);
      if (!u.ok()) return u.status();
      return u->module;  // the user's weights before baseline training
    }
    auto built = BuildZooModel(task.model, task.training.seed, LearningTaskOf(task)->Sample());
    if (!built.ok()) return built.status();
    m = built->module;
    if (task.trial.rewind > 0) {
      auto train = ShapedData(task, true, &ctx);
      if (!train.ok()) return train.status();
      TrainOptions o = OptionsFrom(task.training, task.training.epochs, task.training.learning_rate, 0);
      int64_t steps_per_epoch = (train.value()->size() + o.batch_size - 1) / o.batch_size;
      o.stop_after_steps = std::llround(task.trial.rewind * steps_per_epoch * task.training.epochs);
      if (ctx.on_progress) ctx.on_progress("replaying early training for rewind", 0);
      PRUNELAB_RETURN_IF_ERROR(Train(m, *LearningTaskOf(task), *train.value(), o));
    }
    return m;
  }

  // Wanda or SparseGPT, sequentially layer by layer (worker/engine/prune/importance.h
  // PruneSequentially); what was done (calibration, per-layer dampening and reconstruction
  // error, layers left to magnitude, the largest statistic held) goes into the row and the card.
  Status CalibratedRound(const Task& task, const ExecutionContext& ctx, const ModelLayout& layout,
                         const LearningTask& learning, const Dataset& calibration, double sparsity,
                         const PlanOptions& opts, int nm_n, int nm_m, bool sparsegpt, torch::jit::Module* model,
                         Masks* masks, TrialResult* r) {
    const TrialConfig& tc = task.trial;
    const std::string name = sparsegpt ? "sparsegpt" : "wanda";
    auto t0 = std::chrono::steady_clock::now();
    auto done = PruneSequentially(*model, layout, learning, calibration, static_cast<int>(tc.calibration_batches),
                                  static_cast<int>(task.training.batch_size), sparsegpt, sparsity, opts, nm_n, nm_m,
                                  *masks, 128, [&](const std::string& layer, double f) {
                                    if (ctx.on_progress) ctx.on_progress(name + ": calibrating and pruning " + layer, f);
                                  });
    if (!done.ok()) return done.status();
    for (auto& [w, mask] : done->masks) (*masks)[w] = mask;
    nlohmann::json layers = nlohmann::json::array();
    std::vector<std::string> magnitude_only, left_dense, not_reached;
    for (const auto& l : done->layers) {
      if (l.magnitude) magnitude_only.push_back(l.name);
      if (l.left_dense) left_dense.push_back(l.name);
      if (l.not_reached) not_reached.push_back(l.name);
      if (sparsegpt && !l.magnitude && !l.left_dense && !l.not_reached)
        layers.push_back({{"layer", l.name}, {"relative_error", l.relative_error}, {"damp", l.damp},
                          {"dead_inputs", l.dead_inputs}});
    }
    auto cfg = ParseJson(r->trial_json.empty() ? "{}" : r->trial_json);
    nlohmann::json c = cfg.ok() && cfg->is_object() ? cfg.value() : nlohmann::json::object();
    c[name] = {{"calibration_samples", done->samples},
               {"order", "sequential: each layer calibrated on the model with the layers before it already pruned"},
               {"layers_calibrated", done->layers.size() - left_dense.size() - not_reached.size()},
               {"not_reached_left_dense", not_reached},
               {"scored_by_magnitude", magnitude_only},
               {"left_dense", left_dense},
               {"peak_statistic_bytes", done->peak_statistic_bytes},
               {"seconds", SecondsSince(t0)}};
    if (sparsegpt) {
      c[name]["block"] = 128;
      c[name]["layers"] = layers;
    } else {
      c[name]["compared"] = opts.per_row ? "within each output row" : "within each group of M";
    }
    r->trial_json = c.dump();
    return Status::Ok();
  }

  // Depth pruning: the dense model's blocks, those the spec keeps, and what each round removed.
  struct DepthPlan {
    std::vector<DepthBlock> blocks;
    std::set<std::string> keep;     // pruning.exclude, resolved
    std::vector<std::string> removed;
    nlohmann::json importance = nlohmann::json::array();  // per round: block -> importance
  };

  StatusOr<DepthPlan> PlanDepth(const Task& task, const torch::jit::Module& dense) {
    DepthPlan p;
    auto blocks = FindDepthBlocks(dense, *LearningTaskOf(task));
    if (!blocks.ok()) return blocks.status();
    p.blocks = std::move(blocks).value();
    if (p.blocks.empty())
      return Status::InvalidArgument("granularity depth: the model has no residual block (y = x + f(x), or a projection "
                                     "shortcut, with matching shapes) to remove");
    std::string names;
    for (const auto& b : p.blocks) names += (names.empty() ? "" : ", ") + b.name;
    for (const auto& e : task.trial.exclude) {
      std::string n = e == "first" ? p.blocks.front().name : e == "last" ? p.blocks.back().name : e;
      bool known = false;
      for (const auto& b : p.blocks) known |= b.name == n;
      if (!known) return Status::InvalidArgument("pruning.exclude: '" + e + "' is not a block of this model (blocks: " + names + ")");
      p.keep.insert(n);
    }
    if (!task.trial.overrides.empty())
      return Status::InvalidArgument("pruning.overrides: do not apply to granularity depth (blocks are removed whole)");
    const int64_t n = static_cast<int64_t>(p.blocks.size());
    const int64_t want = std::llround(task.trial.sparsity * n);
    if (want == 0)
      return Status::InvalidArgument("sweep.sparsity " + std::to_string(task.trial.sparsity).substr(0, 5) + " of " +
                                     std::to_string(n) + " blocks removes none (blocks: " + names + "); use at least " +
                                     std::to_string(0.5 / n + 1e-3).substr(0, 5));
    if (want > n - static_cast<int64_t>(p.keep.size()))
      return Status::InvalidArgument("sweep.sparsity " + std::to_string(task.trial.sparsity).substr(0, 5) + " asks for " +
                                     std::to_string(want) + " of " + std::to_string(n) + " blocks, but pruning.exclude keeps " +
                                     std::to_string(p.keep.size()));
    return p;
  }

  // One round: the blocks left are ranked on calibration batches and the least important
  // removed until round(target * blocks of the dense model) are gone; recorded in the
  // result's configuration (removed blocks, importance per round).
  Status DepthRound(const Task& task, const ExecutionContext& ctx, const Dataset& calibration, double target,
                    DepthPlan* plan, torch::jit::Module* model, TrialResult* r) {
    const TrialConfig& tc = task.trial;
    const int64_t want = std::llround(target * static_cast<int64_t>(plan->blocks.size()));
    const int64_t more = want - static_cast<int64_t>(plan->removed.size());
    if (more <= 0) return Status::Ok();
    auto learning = LearningTaskOf(task);
    auto left = FindDepthBlocks(*model, *learning);
    if (!left.ok()) return left.status();
    std::vector<DepthBlock> candidates;
    for (const auto& b : left.value())
      if (!plan->keep.count(b.name)) candidates.push_back(b);
    if (ctx.on_progress)
      ctx.on_progress("depth: ranking " + std::to_string(candidates.size()) + " blocks by " + tc.criterion, 0);
    auto importance = DepthImportance(*model, *learning, candidates, tc.criterion, calibration,
                                      static_cast<int>(tc.calibration_batches), static_cast<int>(task.training.batch_size),
                                      task.training.seed + plan->removed.size());
    if (!importance.ok()) return importance.status();
    std::vector<size_t> order(candidates.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return importance.value()[a] < importance.value()[b]; });
    nlohmann::json round = nlohmann::json::object();
    for (size_t i = 0; i < candidates.size(); ++i) round[candidates[i].name] = importance.value()[i];
    plan->importance.push_back(round);
    std::set<std::string> remove;
    for (size_t i = 0; i < order.size() && static_cast<int64_t>(remove.size()) < more; ++i) remove.insert(candidates[order[i]].name);
    if (static_cast<int64_t>(remove.size()) < more)
      return Status::InvalidArgument("depth: " + std::to_string(more) + " more blocks to remove, " +
                                     std::to_string(remove.size()) + " found");
    std::string list;
    for (size_t i : order)
      if (remove.count(candidates[i].name)) {
        plan->removed.push_back(candidates[i].name);
        list += (list.empty() ? "" : ", ") + candidates[i].name;
      }
    if (ctx.on_progress) ctx.on_progress("depth: removing " + list, 0);
    auto pruned = RemoveDepthBlocks(*model, *learning, remove);
    if (!pruned.ok()) return pruned.status();
    *model = std::move(pruned).value();
    auto cfg = ParseJson(r->trial_json.empty() ? "{}" : r->trial_json);
    nlohmann::json c = cfg.ok() ? cfg.value() : nlohmann::json::object();
    nlohmann::json all = nlohmann::json::array();
    for (const auto& b : plan->blocks)
      all.push_back({{"name", b.name}, {"shortcut", b.shortcut}, {"weights", b.weights}});
    c["depth"] = {{"blocks", all}, {"removed", plan->removed}, {"importance", plan->importance},
                  {"importance_measure", tc.criterion == "loss"      ? "cross-entropy with the block skipped minus without (calibration batches)"
                                         : tc.criterion == "angular" ? "angular distance between block input and output (calibration batches)"
                                                                     : "seeded uniform (control)"}};
    r->trial_json = c.dump();
    return Status::Ok();
  }

  // Prunes `model` in place: one round (one-shot, sensitivity) or R rounds along the
  // schedule's curve, fine-tuning after each; rounds before the last become intermediate rows.
  template <typename Describe>
  Status Prune(const Task& task, const ExecutionContext& ctx, const ModelLayout& layout, const torch::jit::Module& dense,
               bool structured, torch::jit::Module* model, ExecutionOutput* out, Describe&& describe) {
    const TrialConfig& tc = task.trial;
    const bool depth = tc.granularity == "depth";
    if (depth && tc.criterion != "loss" && tc.criterion != "angular" && tc.criterion != "random")
      return Status::InvalidArgument("granularity depth ranks whole blocks: criterion loss, angular or random (not '" +
                                     tc.criterion + "')");
    if (depth && tc.rewind >= 0) return Status::InvalidArgument("schedule.rewind does not apply to granularity depth");
    auto criterion = depth ? StatusOr<Criterion>(Criterion::kRandom) : ParseCriterion(tc.criterion);
    if (!criterion.ok()) return criterion.status();
    auto opts = depth ? StatusOr<PlanOptions>(PlanOptions{}) : MakePlanOptions(tc, layout, structured);
    if (!opts.ok()) return opts.status();
    int nm_n = 0, nm_m = 0;
    if (!structured && !depth && tc.granularity != "unstructured" && !ParseNm(tc.granularity, &nm_n, &nm_m))
      return Status::InvalidArgument("granularity '" + tc.granularity + "' not implemented (have: unstructured, structured, N:M, depth)");
    if (ScoresActivations(criterion.value()) && !structured)
      return Status::InvalidArgument("criterion '" + tc.criterion + "' scores structures; use granularity structured");
    const bool wanda = criterion.value() == Criterion::kWanda;
    if (wanda && structured)
      return Status::InvalidArgument("criterion 'wanda' scores single weights; use granularity unstructured or N:M "
                                     "(for heads and neurons: activation, l2 or taylor)");
    if (wanda) opts.value().per_row = true;  // Wanda compares the weights of each output
    const bool sparsegpt = criterion.value() == Criterion::kSparseGpt;
    if (sparsegpt && (structured || depth))
      return Status::InvalidArgument("criterion 'sparsegpt' prunes and reconstructs single weights; use granularity "
                                     "unstructured or N:M");
    if (sparsegpt && (tc.schedule == "iterative" || opts.value().scope != "layer" || tc.rewind >= 0))
      return Status::InvalidArgument("criterion 'sparsegpt' is one-shot and per layer: schedule one_shot, pruning.scope "
                                     "layer, no rewind");
    if (structured && !layout.structured_error.empty()) return Status::InvalidArgument(layout.structured_error);
    std::optional<DepthPlan> depth_plan;
    if (depth) {
      auto p = PlanDepth(task, dense);
      if (!p.ok()) return p.status();
      depth_plan = std::move(p).value();
    }

    const bool iterative = tc.schedule == "iterative";
    const uint32_t rounds = iterative ? std::max<uint32_t>(1, tc.rounds) : 1;
    const double finetune_per_round = tc.schedule == "sensitivity" ? 0.0 : tc.finetune_epochs / rounds;
    std::optional<torch::jit::Module> rewind;
    if (tc.rewind >= 0 && tc.schedule != "sensitivity") {
      auto w = RewindWeights(task, ctx);
      if (!w.ok()) return w.status();
      rewind = std::move(w).value();
    }
    std::map<std::string, int64_t> original;
    for (const auto& g : layout.groups) original[g.name] = layout.Structures(dense, g);
    ModelLayout current = layout;  // the layout of *model as it is now
    auto learning = LearningTaskOf(task);
    const Dataset* calibration = nullptr;
    if (NeedsGradients(criterion.value()) || ScoresActivations(criterion.value()) || finetune_per_round > 0 || depth ||
        criterion.value() == Criterion::kWanda || criterion.value() == Criterion::kSparseGpt) {
      auto train = ShapedData(task, true, &ctx);
      if (!train.ok()) return train.status();
      calibration = train.value();
    }
    // Distillation: the dense model, frozen in eval mode, teaches every round's fine-tuning.
    std::optional<torch::jit::Module> teacher;
    if (tc.distill_temperature > 0 && finetune_per_round > 0) {
      teacher = CloneModule(dense);
      teacher->eval();
    }
    Masks masks;
    for (uint32_t round = 1; round <= rounds; ++round) {
      const double target = ScheduledSparsity(tc.sparsity, round, rounds, tc.curve);
      if (ctx.on_progress) ctx.on_progress("scoring (round " + std::to_string(round) + "/" + std::to_string(rounds) + ")", 0);
      if (depth) {
        PRUNELAB_RETURN_IF_ERROR(DepthRound(task, ctx, *calibration, target, &*depth_plan, model, &out->result));
      } else {
      Scores grads;
      if (NeedsGradients(criterion.value()))
        grads = AccumulateAbsGradients(*model, layout, *learning, *calibration, static_cast<int>(tc.calibration_batches),
                                       static_cast<int>(task.training.batch_size));
      if (sparsegpt || wanda) {
        PRUNELAB_RETURN_IF_ERROR(CalibratedRound(task, ctx, current, *learning, *calibration, target, opts.value(),
                                                 nm_n, nm_m, sparsegpt, model, &masks, &out->result));
        if (rewind) {
          *model = CloneModule(*rewind);
          ApplyMasks(*model, masks);
        }
      } else {
      auto scores = WeightScores(*model, current, criterion.value(), &grads, task.training.seed + round);
      if (!scores.ok()) return scores.status();
      if (structured) {
        std::map<std::string, torch::Tensor> group_scores;
        const bool probe = layout.has_probe && model->find_method("probe");
        if (criterion.value() == Criterion::kActivation && !probe) {
          // A user's model has no probe(): its activations are read by hooks in its graph.
          std::vector<std::string> magnitude_only;
          int64_t samples = 0;
          auto a = HookedActivationScores(*model, current, *learning, *calibration,
                                          static_cast<int>(tc.calibration_batches),
                                          static_cast<int>(task.training.batch_size), &magnitude_only, &samples);
          if (!a.ok()) return a.status();
          group_scores = std::move(a).value();
          auto cfg = ParseJson(out->result.trial_json.empty() ? "{}" : out->result.trial_json);
          nlohmann::json c = cfg.ok() && cfg->is_object() ? cfg.value() : nlohmann::json::object();
          c["activation"] = {{"scored_by", "calibration norms of each structure's inputs to the layers that read it "
                                           "(graph hooks)"},
                             {"calibration_samples", samples},
                             {"scored_by_magnitude", magnitude_only}};
          out->result.trial_json = c.dump();
        } else if (ScoresActivations(criterion.value())) {
          auto a = ActivationScores(*model, layout, *learning, *calibration, static_cast<int>(tc.calibration_batches),
                                    static_cast<int>(task.training.batch_size), criterion.value() == Criterion::kApoz);
          if (!a.ok()) return a.status();
          group_scores = std::move(a).value();
        } else {
          for (const auto& g : current.groups)
            if (g.blocked.empty()) group_scores[g.name] = GroupScores(*model, g, scores.value());
        }
        auto keep = PlanStructures(current, group_scores, original, target, opts.value());
        if (!keep.ok()) return keep.status();
        if (round == 1 && ctx.on_progress) ctx.on_progress(StructuredSummary(current, keep.value()), 0);
        // Every structured variant is checked before fine-tuning: it runs, its output shape is
        // unchanged, and it computes what the original does with the removed structures zeroed.
        torch::jit::Module zeroed = CloneModule(*model);
        ZeroStructures(zeroed, current, keep.value());
        RemoveStructures(*model, current, keep.value());
        // Its own generator: the check must not move the global one fine-tuning draws from.
        auto gen = at::make_generator<at::CPUGeneratorImpl>(task.training.seed);
        double err = 0;
        PRUNELAB_RETURN_IF_ERROR(
            CheckStructuredVariant(zeroed, *model, learning->ExampleInputs(2, gen), 1e-3, &err));
        if (rewind) {
          RemoveStructures(*rewind, current, keep.value());
          *model = CloneModule(*rewind);
        }
        // User layouts index channels of the model as it was: follow the pruned graph again.
        if (!task.model_artifact.empty() && round < rounds) current = InferLayout(*model, *learning);
      } else {
        auto planned = PlanMasks(layout, scores.value(), target, opts.value(), nm_n, nm_m, masks);
        if (!planned.ok()) return planned.status();
        masks = std::move(planned).value();
        if (rewind) *model = CloneModule(*rewind);
        ApplyMasks(*model, masks);
      }
      }
      }
      if (finetune_per_round > 0) {
        TrainOptions o = OptionsFrom(task.training, finetune_per_round, tc.finetune_learning_rate, round);
        o.masks = masks.empty() ? nullptr : &masks;
        if (teacher) {
          o.teacher = &*teacher;
          o.temperature = tc.distill_temperature;
          o.alpha = tc.distill_alpha;
        }
        o.on_progress = [&ctx, round, rounds](double f) {
          return !ctx.on_progress ||
                 ctx.on_progress("fine-tuning (round " + std::to_string(round) + "/" + std::to_string(rounds) + ")", f);
        };
        auto lock = Lock(ctx, false, "fine-tune");
        auto t0 = std::chrono::steady_clock::now();
        PRUNELAB_RETURN_IF_ERROR(Train(*model, *learning, *calibration, o));
        out->result.train_seconds += SecondsSince(t0);
      }
      if (round < rounds) {
        TrialResult row = out->result;
        row.intermediates.clear();
        row.round = round;
        row.sparsity = target;
        if (ctx.on_progress) ctx.on_progress("evaluating round " + std::to_string(round), 0);
        describe(*model, &row);
        row.ok = true;
        out->result.intermediates.push_back(std::move(row));
      }
    }
    out->result.round = iterative ? rounds : 0;
    return Status::Ok();
  }

  Evaluation BaselineEvaluation(const Task& task, const LearningTask& learning, torch::jit::Module& dense,
                                const Dataset& test) {
    std::string key = task.baseline_artifact + ":" + task.dataset.path + ":" + std::to_string(task.dataset.test_subset);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = baseline_eval_.find(key);
      if (it != baseline_eval_.end()) return it->second;
    }
    Evaluation e = learning.Evaluate(dense, test);
    std::lock_guard<std::mutex> lock(mu_);
    return baseline_eval_[key] = e;
  }

  std::string quantized_engine_;  // empty: this LibTorch has no quantized engine
  std::mutex mu_;
  std::mutex tokenize_mu_;  // one tokenization at a time (held without mu_)
  std::map<std::string, Tokenized> tokenized_;
  std::map<std::string, Dataset> data_;
  std::map<std::string, Evaluation> baseline_eval_;
  std::map<std::string, Dataset> shaped_;
};

}  // namespace

std::unique_ptr<TrialExecutor> NewTorchExecutor() { return std::make_unique<TorchExecutor>(); }

void TuneAllocator() {
  // LibTorch frees and re-allocates the same large activation and im2col buffers every
  // step; with glibc's default (dynamic mmap threshold, 128 KiB trim) many of them go back
  // to the kernel and fault in again, which showed up as a third of the training time as
  // system time. Keeping them in the heap removes that.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void SetComputeThreads(int threads) {
  at::set_num_threads(threads);
  // OpenBLAS keeps its own thread pool (one per core by default) whose idle threads
  // spin; pin it to the same count or it competes with co-located workers.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

TimingThreads::TimingThreads(uint32_t threads, TrialResult* r) : before_(at::get_num_threads()) {
  if (threads > 0 && static_cast<int>(threads) != before_) SetComputeThreads(static_cast<int>(threads));
  else before_ = 0;  // nothing to restore
  r->hardware.threads = static_cast<uint32_t>(at::get_num_threads());
}

TimingThreads::~TimingThreads() {
  if (before_ > 0) SetComputeThreads(before_);
}

int ConfigureTorchThreads(int threads) {
  TuneAllocator();
  if (threads > 0) {
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // already started; intra-op threads are what matters for latency
    }
    SetComputeThreads(threads);
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
