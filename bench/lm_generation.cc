// Generation speed of the zoo decoder (examples/lm-quick.yaml's size: 4 layers of 4 heads x
// 32, width 128, a 512-neuron MLP, vocabulary --vocab) against the same decoder with --sparsity
// of every layer's heads and MLP neurons removed (L1 ranking of a random initialization:
// speed does not depend on which ones): time to first token (the prompt's prefill and the
// first greedy token) and time per output token (one decode step on the key/value cache),
// batch 1, measured interleaved: every round generates one sequence with each model, in
// rotating order. Beside them: the key/value-cache bytes per token, measured on the cache
// tensors after the prefill, and TPOT without the cache (every step recomputes the prefix,
// as for a model that does not expose prefill/decode).
// Usage: lm_generation [--json] [--prompt 64] [--output 32] [--rounds 30] [--threads 1]
//                      [--vocab 512] [--sparsity 50]
#include <torch/torch.h>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "common/base/stats.h"
#include "worker/daemon/executor.h"
#include "worker/engine/model/model.h"
#include "worker/engine/model/zoo.h"
#include "worker/engine/prune/pruning.h"
#include "worker/loadgen/latency_stats.h"

using namespace prunelab;
using namespace prunelab::worker;
using nlohmann::json;

namespace {

double Ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Timings {
  std::vector<double> ttft, tpot, tpot_nocache, round_ttft, round_tpot;
  int64_t cache_bytes_per_token = 0;
};

// One greedy generation of `output` tokens after `prompt`: TTFT, then each decode step.
void Generate(torch::jit::Module& m, const at::Tensor& prompt, int output, Timings* t) {
  torch::NoGradGuard g;
  auto t0 = std::chrono::steady_clock::now();
  auto pre = m.get_method("prefill")({prompt}).toTuple();
  auto next = pre->elements()[0].toTensor().select(1, -1).argmax(-1, true);
  t->ttft.push_back(Ms(t0));
  t->round_ttft.push_back(t->ttft.back());
  auto cache = pre->elements()[1].toTensorVector();
  int64_t bytes = 0;
  for (const auto& c : cache) bytes += c.numel() * c.element_size();
  t->cache_bytes_per_token = bytes / prompt.size(1);
  std::vector<double> steps;
  for (int i = 1; i < output; ++i) {
    auto s0 = std::chrono::steady_clock::now();
    auto step = m.get_method("decode")({next, cache}).toTuple();
    next = step->elements()[0].toTensor().select(1, -1).argmax(-1, true);
    cache = step->elements()[1].toTensorVector();
    steps.push_back(Ms(s0));
  }
  t->tpot.insert(t->tpot.end(), steps.begin(), steps.end());
  t->round_tpot.push_back(Median(steps));
}

// The same generation without the cache: every step runs forward() on the whole prefix.
void GenerateRecomputing(torch::jit::Module& m, const at::Tensor& prompt, int output, Timings* t) {
  torch::NoGradGuard g;
  auto ids = prompt;
  for (int i = 0; i < output; ++i) {
    auto s0 = std::chrono::steady_clock::now();
    auto next = m.forward({ids}).toTensor().select(1, -1).argmax(-1, true);
    if (i > 0) t->tpot_nocache.push_back(Ms(s0));
    ids = torch::cat({ids, next}, 1);
  }
}

json Figures(const Timings& t) {
  auto s = [](const std::vector<double>& v) {
    auto x = Summarize(v);
    return json{{"p50_ms", x.p50_ms}, {"p90_ms", x.p90_ms}, {"p99_ms", x.p99_ms}, {"count", x.count}};
  };
  return {{"ttft", s(t.ttft)}, {"tpot", s(t.tpot)}, {"tpot_recomputing_prefix", s(t.tpot_nocache)},
          {"kv_cache_bytes_per_token", t.cache_bytes_per_token}};
}

}  // namespace

int main(int argc, char** argv) {
  int prompt = 64, output = 32, rounds = 30, threads = 1, vocab = 512, sparsity_pct = 50;
  bool frozen = false, optimize = false;
  bench::BenchFlags flags("lm_generation", "TTFT and TPOT of the zoo decoder, dense against heads and MLP pruned");
  flags.Int("--prompt", &prompt, "prompt tokens")
      .Int("--output", &output, "generated tokens (the first is TTFT's)")
      .Int("--rounds", &rounds, "interleaved generations per model")
      .Int("--threads", &threads, "intra-op threads")
      .Int("--vocab", &vocab, "vocabulary (the lm-quick example's tokenizer: 512)")
      .Int("--sparsity", &sparsity_pct, "percent of every layer's heads and MLP neurons removed")
      .Bool("--frozen", &frozen, "time both models frozen (torch.jit.freeze keeping prefill and decode)")
      .Bool("--optimize", &optimize, "leave LibTorch's graph-executor optimization on (the worker turns it off)");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  if (sparsity_pct >= 100 || output < 2) {
    std::fprintf(stderr, "lm_generation: --sparsity must be below 100 and --output at least 2\n");
    return 2;
  }
  torch::jit::setGraphExecutorOptimize(optimize);  // off: as the worker runs models
  const int used = ConfigureTorchThreads(threads);
  const SampleSpec sample{at::kLong, {prompt + output}, vocab};
  auto built = BuildZooModel("gpt", 42, sample);
  if (!built.ok()) {
    std::fprintf(stderr, "lm_generation: %s\n", built.status().ToString().c_str());
    return 1;
  }
  torch::jit::Module dense = built->module;
  dense.eval();
  torch::jit::Module pruned = CloneModule(dense);
  RemoveStructures(pruned, built->layout, L1ChannelSelection(dense, built->layout, sparsity_pct / 100.0));
  pruned.eval();
  const int64_t params_dense = CountParameters(dense), params_pruned = CountParameters(pruned);
  if (frozen) {
    dense = torch::jit::freeze(dense, std::vector<std::string>{"prefill", "decode"});
    pruned = torch::jit::freeze(pruned, std::vector<std::string>{"prefill", "decode"});
  }
  std::map<std::string, torch::jit::Module*> models{{"dense", &dense}, {"pruned", &pruned}};
  std::map<std::string, Timings> t;
  auto ids = torch::randint(0, vocab, {1, prompt}, torch::kLong);
  for (auto& [name, m] : models) {  // warm-up
    Timings w;
    Generate(*m, ids, output, &w);
    GenerateRecomputing(*m, ids, output, &w);
  }
  if (!flags.json()) std::fprintf(stderr, "lm_generation: %d rounds of %d + %d tokens, %d thread(s)\n", rounds, prompt, output, used);
  std::vector<double> ttft_ratio, tpot_ratio, nocache_ratio;
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::string> order{"dense", "pruned"};
    if (r % 2) std::swap(order[0], order[1]);
    for (const auto& name : order) {
      Generate(*models[name], ids, output, &t[name]);
      GenerateRecomputing(*models[name], ids, output, &t[name]);
    }
    ttft_ratio.push_back(t["dense"].round_ttft.back() / t["pruned"].round_ttft.back());
    tpot_ratio.push_back(t["dense"].round_tpot.back() / t["pruned"].round_tpot.back());
  }
  const double cache_ratio =
      static_cast<double>(t["dense"].cache_bytes_per_token) / std::max<int64_t>(1, t["pruned"].cache_bytes_per_token);
  json out{{"model", "zoo gpt (4 layers, 4 heads x 32, width 128, MLP 512)"},
           {"vocab", vocab},
           {"prompt_tokens", prompt},
           {"output_tokens", output},
           {"rounds", rounds},
           {"threads", used},
           {"batch", 1},
           {"sparsity", sparsity_pct / 100.0},
           {"frozen", frozen},
           {"graph_executor_optimize", optimize},
           {"params", {{"dense", params_dense}, {"pruned", params_pruned}}},
           {"dense", Figures(t["dense"])},
           {"pruned", Figures(t["pruned"])},
           {"ttft_speedup_median", Median(ttft_ratio)},
           {"tpot_speedup_median", Median(tpot_ratio)},
           {"ttft_speedup_range", {*std::min_element(ttft_ratio.begin(), ttft_ratio.end()),
                                   *std::max_element(ttft_ratio.begin(), ttft_ratio.end())}},
           {"tpot_speedup_range", {*std::min_element(tpot_ratio.begin(), tpot_ratio.end()),
                                   *std::max_element(tpot_ratio.begin(), tpot_ratio.end())}},
           {"kv_cache_bytes_ratio", cache_ratio}};
  if (flags.json()) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("zoo decoder, batch 1, %d thread(s), prompt %d tokens, %d generated, %d interleaved rounds\n", used, prompt,
              output, rounds);
  std::printf("%-8s %10s %9s %9s %9s %9s %9s %9s %14s %12s\n", "model", "params", "TTFT p50", "p90", "p99", "TPOT p50",
              "p90", "p99", "TPOT no-cache", "KV B/token");
  for (const char* name : {"dense", "pruned"}) {
    const json& f = out[name];
    std::printf("%-8s %10lld %8.3fms %8.3fms %8.3fms %8.3fms %8.3fms %8.3fms %12.3fms %12lld\n", name,
                static_cast<long long>(out["params"][name].get<int64_t>()), f["ttft"]["p50_ms"].get<double>(),
                f["ttft"]["p90_ms"].get<double>(), f["ttft"]["p99_ms"].get<double>(), f["tpot"]["p50_ms"].get<double>(),
                f["tpot"]["p90_ms"].get<double>(), f["tpot"]["p99_ms"].get<double>(),
                f["tpot_recomputing_prefix"]["p90_ms"].get<double>(), static_cast<long long>(f["kv_cache_bytes_per_token"].get<int64_t>()));
  }
  std::printf("pruned %d %% of heads and MLP neurons: TTFT %.2fx (%.2f-%.2f over rounds), TPOT %.2fx (%.2f-%.2f), "
              "cache bytes per token %.2fx fewer\n",
              sparsity_pct, out["ttft_speedup_median"].get<double>(), out["ttft_speedup_range"][0].get<double>(),
              out["ttft_speedup_range"][1].get<double>(), out["tpot_speedup_median"].get<double>(),
              out["tpot_speedup_range"][0].get<double>(), out["tpot_speedup_range"][1].get<double>(), cache_ratio);
  return 0;
}
