// Training throughput of the zoo CNN through the TorchScript interpreter, with the graph
// executor's optimization passes on and off, interleaved in one run. The worker turns them
// off (worker/engine/torch_executor.cc); this shows why.
// Usage: train_throughput [--json] [--rounds N] [--samples N]
#include <torch/torch.h>

#include <torch/csrc/jit/runtime/graph_executor.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "bench/bench_common.h"
#include "worker/daemon/executor.h"
#include "worker/engine/model/zoo.h"
#include "worker/engine/train/training.h"

using namespace prunelab;
using namespace prunelab::worker;

int main(int argc, char** argv) {
  int rounds = 3, samples = 5000;
  bench::BenchFlags flags("train_throughput", "training throughput of the engine's forms and precisions");
  flags.Int("--rounds", &rounds, "measurement rounds").Int("--samples", &samples, "training samples per round");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const bool json_out = flags.json();
  int threads = ConfigureTorchThreads(1);
  auto d = LoadFashionMnist("/usr/share/datasets/fashion-mnist", true, static_cast<uint32_t>(samples));
  Dataset data;
  if (d.ok()) {
    data = std::move(d).value();
  } else {  // timing does not depend on pixel values
    torch::manual_seed(1);
    data.inputs = torch::randn({samples, 1, 28, 28});
    data.labels = torch::randint(0, 10, {samples}, torch::kInt64);
  }
  auto measure = [&](bool optimize) {
    torch::jit::setGraphExecutorOptimize(optimize);
    auto m = BuildFashionCnn(1);  // a fresh module: no plan cached from the other mode
    TrainOptions o;
    o.epochs = 1;
    o.batch_size = 64;
    auto t0 = std::chrono::steady_clock::now();
    (void)Train(m, *ClassificationFor(data), data, o);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(data.size()) / s;
  };
  std::vector<double> on, off;
  for (int r = 0; r < rounds; ++r) {
    on.push_back(measure(true));
    off.push_back(measure(false));
  }
  auto med = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double a = med(on), b = med(off);
  if (json_out) {
    nlohmann::json j{{"model", "cnn"}, {"batch_size", 64}, {"threads", threads}, {"samples", data.size()},
                     {"rounds", rounds}, {"optimizer_on_samples_per_s", a}, {"optimizer_off_samples_per_s", b},
                     {"off_over_on", b / a}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("zoo CNN training, batch 64, %d thread(s), %lld samples, median of %d interleaved rounds\n", threads,
                static_cast<long long>(data.size()), rounds);
    std::printf("  graph optimizer on    %8.0f samples/s\n", a);
    std::printf("  graph optimizer off   %8.0f samples/s   (%.2fx)\n", b, b / a);
  }
  return 0;
}
