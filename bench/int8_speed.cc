// int8 post-training quantization against fp32, and combined with pruning: the zoo cnn and
// torchvision's resnet18 (scripted by bench/torchvision_models.py for 28x28 input) trained
// on Fashion-MNIST, pruned structurally (L1) at 50 % and fine-tuned, each quantized with
// calibration batches of training images. Test accuracy of all four variants (fp32, int8,
// pruned, pruned + int8) and offline throughput (batch 64, samples/s) measured A B A B in
// one run, both sides in the same execution form.
// Goal (issue): int8 >= 1.5x offline throughput at <= 0.5 pt accuracy loss.
// Usage: int8_speed [--json] [--models cnn,resnet18] [--train 20000] [--test 5000] [--epochs 2]
//                   [--rounds 3] [--form frozen|dense] [--threads N] [--mode int8|int8_dynamic]
// (zoo models by name: mlp, cnn, resnet, vit; anything else is a torchvision constructor)
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "bench/bench_common.h"
#include "worker/daemon/executor.h"
#include "worker/engine/bench/forms.h"
#include "worker/engine/model/quantize.h"
#include "worker/engine/model/user_model.h"
#include "worker/engine/model/zoo.h"
#include "worker/engine/prune/pruning.h"
#include "worker/engine/train/training.h"

using namespace prunelab;
using namespace prunelab::worker;
using nlohmann::json;

using prunelab::Median;

int main(int argc, char** argv) {
  int train_n = 20000, test_n = 5000, epochs = 2, rounds = 3, threads = 0;
  std::string models_flag = "cnn,resnet18", form = "frozen", mode = "int8";
  std::string python = bench::DebianPython();
  bench::BenchFlags flags("int8_speed", "int8 quantization against fp32, alone and after 50 % structured pruning");
  flags.String("--models", &models_flag, "cnn (zoo) and/or torchvision constructors")
      .Int("--train", &train_n, "training images (baseline, fine-tuning, calibration)")
      .Int("--test", &test_n, "test images for accuracy")
      .Int("--epochs", &epochs, "baseline training epochs")
      .Int("--rounds", &rounds, "interleaved A/B rounds per throughput measurement")
      .String("--form", &form, "execution form of every side: frozen or dense")
      .Int("--threads", &threads, "intra-op threads (default: all cores)")
      .String("--mode", &mode, "int8 (static, calibrated) or int8_dynamic (linear layers)")
      .String("--python", &python, "interpreter with torchvision");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const bool json_out = flags.json();
  const int used = ConfigureTorchThreads(threads > 0 ? threads : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  auto engine = SelectQuantizedEngine();
  if (!engine.ok()) {
    std::fprintf(stderr, "int8_speed: %s\n", engine.status().ToString().c_str());
    return 1;
  }
  auto train = LoadFashionMnist("/usr/share/datasets/fashion-mnist", true, train_n);
  auto test = LoadFashionMnist("/usr/share/datasets/fashion-mnist", false, test_n);
  if (!train.ok() || !test.ok()) {
    std::fprintf(stderr, "int8_speed: Fashion-MNIST missing (cluster/install-deps.sh installs dataset-fashion-mnist)\n");
    return 1;
  }
  auto tmp = std::filesystem::temp_directory_path() / ("prunelab-int8-" + std::to_string(getpid()));
  std::filesystem::create_directories(tmp);
  auto timer = NewSteadyTimer();
  json rows = json::array();
  if (!json_out)
    std::printf("%s on %s, %d threads, form %s, train %d x %d epochs, test %d, %d A/B rounds\n", mode.c_str(), engine.value().c_str(),
                used, form.c_str(), train_n, epochs, test_n, rounds);
  for (const auto& name : bench::SplitList(models_flag)) {
    torch::jit::Module dense;
    ModelLayout layout;
    if (name == "mlp" || name == "cnn" || name == "resnet" || name == "vit") {
      auto b = BuildZooModel(name, 42);
      dense = b->module;
      layout = b->layout;
    } else {
      std::string cmd = python + " " + PRUNELAB_SOURCE_DIR + "/bench/torchvision_models.py --out " + tmp.string() +
                        " --models " + name + " --image 28 > " + (tmp / "log").string() + " 2>&1";
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "int8_speed: scripting %s failed (see %s)\n", name.c_str(), (tmp / "log").c_str());
        return 1;
      }
      dense = torch::jit::load((tmp / (name + ".pt")).string());
      layout = InferLayout(dense, *NewImageClassification({1, 28, 28}));
    }
    auto t0 = std::chrono::steady_clock::now();
    TrainOptions o;
    o.epochs = epochs;
    if (!Train(dense, *ClassificationFor(train.value()), train.value(), o).ok()) return 1;
    dense.eval();
    auto pruned = CloneModule(dense);
    RemoveStructures(pruned, layout, L1ChannelSelection(dense, layout, 0.5));
    TrainOptions f;
    f.epochs = 0.5;
    f.learning_rate = 0.01;
    if (!Train(pruned, *ClassificationFor(train.value()), train.value(), f).ok()) return 1;
    pruned.eval();
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    QuantizeReport rq, rpq;
    auto q = QuantizeInt8(dense, mode, *ClassificationFor(train.value()), train.value(), 8, 64, &rq);
    auto pq = QuantizeInt8(pruned, mode, *ClassificationFor(train.value()), train.value(), 8, 64, &rpq);
    if (!q.ok() || !pq.ok()) {
      std::fprintf(stderr, "int8_speed: %s: %s\n", name.c_str(), (!q.ok() ? q : pq).status().ToString().c_str());
      return 1;
    }
    struct Variant {
      const char* label;
      torch::jit::Module* m;
      double accuracy = 0;
      uint64_t bytes = 0;
    };
    std::vector<Variant> v{{"fp32", &dense}, {"int8", &q.value()}, {"pruned50", &pruned}, {"pruned50+int8", &pq.value()}};
    for (auto& x : v) {
      x.accuracy = ClassificationFor(test.value())->Evaluate(*x.m, test.value()).accuracy;
      x.bytes = SaveToBytes(*x.m).size();
    }
    Dataset pool{test->inputs.slice(0, 0, 256), test->labels.slice(0, 0, 256)};
    // Offline batch 64 of each pair A B A B: (fp32, int8) and (pruned, pruned + int8).
    auto pair_ratio = [&](torch::jit::Module& a, torch::jit::Module& b, double* sa, double* sb) {
      auto A = MakeSut(form, a, pool), B = MakeSut(form, b, pool);
      if (!A.ok() || !B.ok()) return -1.0;
      std::vector<double> ra, rb, r;
      for (int i = 0; i < rounds; ++i) {
        ScenarioSettings s;
        s.scenario = Scenario::kOffline;
        s.samples_per_query = 64;
        s.seed = i;
        s.warmup_queries = 1;
        s.min_queries = 256;
        s.min_duration_s = 1.0;
        auto x = RunScenario(*A.value(), *timer, s);
        auto y = RunScenario(*B.value(), *timer, s);
        ra.push_back(x.samples_per_s);
        rb.push_back(y.samples_per_s);
        r.push_back(y.samples_per_s / x.samples_per_s);
      }
      *sa = Median(ra);
      *sb = Median(rb);
      return Median(r);
    };
    double f32_sps = 0, int8_sps = 0, p_sps = 0, pq_sps = 0;
    const double int8_ratio = pair_ratio(dense, q.value(), &f32_sps, &int8_sps);
    const double pq_ratio = pair_ratio(pruned, pq.value(), &p_sps, &pq_sps);
    if (int8_ratio < 0 || pq_ratio < 0) {
      std::fprintf(stderr, "int8_speed: form %s could not be built\n", form.c_str());
      return 1;
    }
    json row{{"model", name},
             {"mode", mode},
             {"engine", engine.value()},
             {"quantized_layers", rq.quantized_ops},
             {"batch_norms_folded", rq.folded_batch_norms},
             {"train_and_finetune_s", train_s},
             {"accuracy_fp32", v[0].accuracy},
             {"accuracy_int8", v[1].accuracy},
             {"accuracy_pruned", v[2].accuracy},
             {"accuracy_pruned_int8", v[3].accuracy},
             {"bytes_fp32", v[0].bytes},
             {"bytes_int8", v[1].bytes},
             {"bytes_pruned", v[2].bytes},
             {"bytes_pruned_int8", v[3].bytes},
             {"offline_b64_sps_fp32", f32_sps},
             {"offline_b64_sps_int8", int8_sps},
             {"int8_vs_fp32_speedup", int8_ratio},
             {"offline_b64_sps_pruned", p_sps},
             {"offline_b64_sps_pruned_int8", pq_sps},
             {"pruned_int8_vs_pruned_speedup", pq_ratio},
             {"pruned_int8_vs_fp32", pq_sps / std::max(1e-9, f32_sps)}};
    rows.push_back(row);
    if (!json_out) {
      std::printf("%s (%lld layers quantized, %lld batch norms folded)\n", name.c_str(), (long long)rq.quantized_ops,
                  (long long)rq.folded_batch_norms);
      std::printf("  %-14s %9s %10s %12s\n", "variant", "accuracy", "size", "offline b64");
      const double sps[] = {f32_sps, int8_sps, p_sps, pq_sps};
      for (size_t i = 0; i < v.size(); ++i)
        std::printf("  %-14s %8.2f%% %8.1f KiB %9.1f/s\n", v[i].label, v[i].accuracy * 100, v[i].bytes / 1024.0, sps[i]);
      std::printf("  int8 vs fp32: %.2fx offline at %+.2f pt; pruned+int8 vs pruned: %.2fx at %+.2f pt; pruned+int8 vs fp32: %.2fx\n",
                  int8_ratio, (v[1].accuracy - v[0].accuracy) * 100, pq_ratio, (v[3].accuracy - v[2].accuracy) * 100,
                  pq_sps / std::max(1e-9, f32_sps));
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(tmp);
  if (json_out)
    std::printf("%s\n", json{{"mode", mode}, {"engine", engine.value()}, {"threads", used}, {"form", form}, {"rows", rows}}.dump().c_str());
  return 0;
}
