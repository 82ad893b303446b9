// One pruning trial (cnn, L1 unstructured 50 %, one epoch of recovery fine-tuning on the
// 60k training images, evaluation on the full 10k test set) through prunelab's engine in C++,
// then the same work in Python with torch.nn.utils.prune (bench/python_prune_trial.py) on the
// same machine, same threads, from the same baseline weights. Prints both wall times and
// their ratio (target: C++ <= 0.8x Python). Then both again with bfloat16 fine-tuning
// (training.precision bf16: autocast + channels-last), where the CPU has it: the C++ bf16
// trial against Python fp32 (what a user runs today; goal >= 2x faster at <= 0.3 pt accuracy
// difference) and against Python bf16.
// Usage: prune_trial_vs_python [--json] [--threads N] [--baseline-epochs N]
#include <torch/torch.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "bench/bench_common.h"
#include "worker/daemon/executor.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/train/training.h"
#include "worker/engine/model/zoo.h"

using namespace prunelab;
using namespace prunelab::worker;

namespace {
const char* kData = "/usr/share/datasets/fashion-mnist";


// CPU seconds (user, system) used so far by this process or by its finished children.
std::pair<double, double> Cpu(int who) {
  rusage u{};
  getrusage(who, &u);
  auto sec = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return {sec(u.ru_utime), sec(u.ru_stime)};
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 1, baseline_epochs = 1;
  bench::BenchFlags flags("prune_trial_vs_python", "one prune trial in the engine vs the same trial in PyTorch");
  flags.Int("--threads", &threads, "LibTorch threads").Int("--baseline-epochs", &baseline_epochs, "baseline training epochs");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const bool json_out = flags.json();
  ConfigureTorchThreads(threads);
  torch::jit::setGraphExecutorOptimize(false);  // as the worker runs it
  auto train = LoadFashionMnist(kData, true, 0);
  auto test = LoadFashionMnist(kData, false, 0);
  if (!train.ok() || !test.ok()) {
    std::fprintf(stderr, "Fashion-MNIST not found under %s: run cluster/install-deps.sh\n", kData);
    return 1;
  }
  // Baseline (not timed): the zoo CNN trained as a sweep would train it.
  auto built = BuildZooModel("cnn", 42).value();
  TrainOptions bo;
  bo.epochs = baseline_epochs;
  bo.learning_rate = 0.05;
  bo.seed = 42;
  if (!json_out) std::fprintf(stderr, "training the dense baseline (%d epoch(s), not timed)...\n", baseline_epochs);
  if (!Train(built.module, *ClassificationFor(train.value()), train.value(), bo).ok()) return 1;
  auto dir = std::filesystem::temp_directory_path() / ("prunelab-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string baseline_path = (dir / "baseline.pt").string();
  built.module.save(baseline_path);
  double base_acc = ClassificationFor(test.value())->Evaluate(built.module, test.value()).accuracy;

  // C++: the engine's trial path (score, plan, mask, fine-tune with masks, evaluate).
  struct Run {
    double seconds = 0, accuracy = 0, sparsity = 0;
  };
  auto cpp_trial = [&](bool bf16) -> std::optional<Run> {
    auto model = torch::jit::load(baseline_path);
    auto t0 = std::chrono::steady_clock::now();
    auto scores = WeightScores(model, built.layout, Criterion::kL1, nullptr, 0).value();
    auto masks = PlanMasks(built.layout, scores, 0.5, PlanOptions{}, 0, 0, {}).value();
    int64_t dense = PrunableWeights(model, built.layout);
    ApplyMasks(model, masks);
    TrainOptions fo;
    fo.epochs = 1;
    fo.learning_rate = 0.01;
    fo.seed = 43;
    fo.masks = &masks;
    fo.bf16 = bf16;
    if (!Train(model, *ClassificationFor(train.value()), train.value(), fo).ok()) return std::nullopt;
    Run r;
    r.accuracy = ClassificationFor(test.value())->Evaluate(model, test.value()).accuracy;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.sparsity = AchievedSparsity(model, built.layout, dense);
    return r;
  };
  if (!json_out) std::fprintf(stderr, "C++ trial...\n");
  auto cpu0 = Cpu(RUSAGE_SELF);
  auto cpp = cpp_trial(false);
  if (!cpp) return 1;
  const double cpp_s = cpp->seconds, cpp_acc = cpp->accuracy, cpp_sparsity = cpp->sparsity;
  auto cpu1 = Cpu(RUSAGE_SELF);

  // Python: the same work with torch.nn.utils.prune.
  nlohmann::json out{{"trial", "cnn l1 unstructured 50%, 1 epoch fine-tune (60k), evaluate 10k"},
                     {"threads", threads}, {"baseline_accuracy", base_acc},
                     {"cpp_seconds", cpp_s}, {"cpp_accuracy", cpp_acc}, {"cpp_sparsity", cpp_sparsity},
                     {"cpp_user_s", cpu1.first - cpu0.first}, {"cpp_sys_s", cpu1.second - cpu0.second}};
  std::string script = std::string(PRUNELAB_SOURCE_DIR) + "/bench/python_prune_trial.py";
  int code = 0;
  if (!json_out) std::fprintf(stderr, "Python trial (torch.nn.utils.prune)...\n");
  // Same resources: torch.set_num_threads does not reach OpenBLAS's own pool, so the
  // environment pins it (prunelab's worker pins it with openblas_set_num_threads).
  std::string env = "OPENBLAS_NUM_THREADS=" + std::to_string(threads) + " OMP_NUM_THREADS=" + std::to_string(threads) + " ";
  auto python_trial = [&](const std::string& precision, int* rc) {
    std::string py = bench::RunCapture(env + "/usr/bin/python3 " + script + " " + baseline_path + " " + kData + " " +
                                           std::to_string(threads) + " 1 0.01 " + precision + " 2>&1",
                                       rc);
    return nlohmann::json::parse(py.substr(py.find('{') == std::string::npos ? 0 : py.find('{')), nullptr, false);
  };
  auto pj = python_trial("fp32", &code);
  const std::string py = pj.is_discarded() ? std::string("no JSON from the Python trial") : pj.dump();
  if (code != 0 || pj.is_discarded()) {
    out["python"] = "unavailable (install python3-torch: cluster/install-deps.sh): " + py.substr(0, 300);
  } else {
    out["python_seconds"] = pj["seconds"];
    out["python_accuracy"] = pj["accuracy"];
    out["python_sparsity"] = pj["sparsity"];
    out["python_torch"] = pj["torch"];
    out["ratio_cpp_over_python"] = cpp_s / pj["seconds"].get<double>();
    auto child = Cpu(RUSAGE_CHILDREN);  // the whole Python process, data loading included
    out["python_process_user_s"] = child.first;
    out["python_process_sys_s"] = child.second;
  }
  // bfloat16 fine-tuning, both sides.
  std::string why;
  if (!CpuHasBf16(&why)) {
    out["bf16"] = "unavailable: " + why;
  } else {
    if (!json_out) std::fprintf(stderr, "C++ trial, bf16...\n");
    auto cb = cpp_trial(true);
    if (cb) {
      out["cpp_bf16_seconds"] = cb->seconds;
      out["cpp_bf16_accuracy"] = cb->accuracy;
    }
    if (!json_out) std::fprintf(stderr, "Python trial, bf16...\n");
    int bcode = 0;
    auto pb = python_trial("bf16", &bcode);
    if (bcode == 0 && !pb.is_discarded()) {
      out["python_bf16_seconds"] = pb["seconds"];
      out["python_bf16_accuracy"] = pb["accuracy"];
    }
    if (cb && out.contains("python_seconds")) {
      out["speedup_cpp_bf16_over_python_fp32"] = out["python_seconds"].get<double>() / cb->seconds;
      out["accuracy_pt_cpp_bf16_minus_python_fp32"] = 100 * (cb->accuracy - out["python_accuracy"].get<double>());
      out["bf16_goal_met"] = out["speedup_cpp_bf16_over_python_fp32"].get<double>() >= 2.0 &&
                             std::abs(out["accuracy_pt_cpp_bf16_minus_python_fp32"].get<double>()) <= 0.3;
    }
    if (cb && out.contains("python_bf16_seconds"))
      out["speedup_cpp_bf16_over_python_bf16"] = out["python_bf16_seconds"].get<double>() / cb->seconds;
  }
  std::filesystem::remove_all(dir);
  if (json_out) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("One pruning trial: %s, %d thread(s); dense baseline %.2f %%\n", out["trial"].get<std::string>().c_str(),
              threads, 100 * base_acc);
  std::printf("  C++ (prunelab engine)          %7.2f s   accuracy %.2f %%   sparsity %.1f %%   (cpu: user %.1f s, sys %.1f s)\n",
              cpp_s, 100 * cpp_acc, 100 * cpp_sparsity, out["cpp_user_s"].get<double>(), out["cpp_sys_s"].get<double>());
  if (out.contains("python_seconds")) {
    std::printf("  Python (torch.nn.utils.prune)  %7.2f s   accuracy %.2f %%   sparsity %.1f %%\n",
                out["python_seconds"].get<double>(), 100 * out["python_accuracy"].get<double>(),
                100 * out["python_sparsity"].get<double>());
    std::printf("  (Python process in all, data loading included: user %.1f s, sys %.1f s)\n",
                out["python_process_user_s"].get<double>(), out["python_process_sys_s"].get<double>());
    std::printf("  ratio C++ / Python: %.2fx (target <= 0.80x)\n", out["ratio_cpp_over_python"].get<double>());
  } else {
    std::printf("  Python: %s\n", out["python"].get<std::string>().c_str());
  }
  if (out.contains("cpp_bf16_seconds")) {
    std::printf("bf16 fine-tuning (autocast bfloat16 + channels-last):\n");
    std::printf("  C++ bf16                       %7.2f s   accuracy %.2f %%\n", out["cpp_bf16_seconds"].get<double>(),
                100 * out["cpp_bf16_accuracy"].get<double>());
    if (out.contains("python_bf16_seconds"))
      std::printf("  Python bf16                    %7.2f s   accuracy %.2f %%   (C++ bf16 %.2fx faster)\n",
                  out["python_bf16_seconds"].get<double>(), 100 * out["python_bf16_accuracy"].get<double>(),
                  out["speedup_cpp_bf16_over_python_bf16"].get<double>());
    if (out.contains("speedup_cpp_bf16_over_python_fp32"))
      std::printf("  C++ bf16 vs Python fp32: %.2fx faster, accuracy %+.2f pt (goal >= 2x at <= 0.3 pt: %s)\n",
                  out["speedup_cpp_bf16_over_python_fp32"].get<double>(),
                  out["accuracy_pt_cpp_bf16_minus_python_fp32"].get<double>(),
                  out["bf16_goal_met"].get<bool>() ? "met" : "NOT met");
  } else if (out.contains("bf16")) {
    std::printf("bf16: %s\n", out["bf16"].get<std::string>().c_str());
  }
  return 0;
}
