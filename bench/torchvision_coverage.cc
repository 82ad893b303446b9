// Coverage of users' real architectures: every classification constructor of torchvision
// (scripted by bench/torchvision_models.py, random init, 10 classes) through the engine at
// structured 30 % and 50 % L1, unstructured 50 % and 2:4. Per model: ok or the failure
// reason, parameters before/after, the function-preservation error (the pruned model
// against the original with the removed structures zeroed), and the measured batch-1 p90
// speedup of the 50 % structured variant against dense, each side in its fastest form
// (plain TorchScript or frozen).
// Usage: torchvision_coverage [--json] [--models a,b] [--no-latency] [--image 32]
//   needs python3-torchvision (cluster/install-deps.sh installs it).
#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench_common.h"
#include "worker/daemon/executor.h"
#include "worker/engine/bench/forms.h"
#include "worker/engine/model/user_model.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/prune/pruning.h"

using namespace prunelab;
using namespace prunelab::worker;
using nlohmann::json;

namespace {


std::string OneLine(std::string s, size_t max = 160) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  auto pos = s.find("Exception raised from");
  if (pos != std::string::npos) s = s.substr(0, pos);
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

// MemAvailable of /proc/meminfo (free memory plus what the kernel can reclaim), in bytes.
double MemAvailableBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

double P90Ms(const torch::jit::Module& m, const std::string& form, const Dataset& pool, int queries) {
  auto sut = MakeSut(form, m, pool);
  if (!sut.ok()) return -1;
  auto timer = NewSteadyTimer();
  ScenarioSettings s;
  s.warmup_queries = 3;
  s.min_queries = queries;
  s.min_duration_s = 0.05;
  auto r = RunScenario(*sut.value(), *timer, s);
  return r.latency.p90_ms;
}

// The fastest form of a model at batch 1: min p90 over plain TorchScript and frozen.
std::pair<double, std::string> Fastest(const torch::jit::Module& m, const Dataset& pool, int queries) {
  double best = -1;
  std::string form;
  for (const char* f : {"dense", "frozen"}) {
    double p = P90Ms(m, f, pool, queries);
    if (p > 0 && (best < 0 || p < best)) best = p, form = f;
  }
  return {best, form};
}

struct StructuredRun {
  bool ok = false;
  std::string reason;
  int64_t params_after = 0;
  double error = -1;
  int groups_pruned = 0;
  double change = -1;  // max |dense - pruned| / max |dense|: what pruning changed
  torch::jit::Module pruned;
};

StructuredRun Structured(const torch::jit::Module& dense, const ModelLayout& layout, double sparsity,
                         const torch::Tensor& input) {
  StructuredRun r;
  try {
    if (!layout.structured_error.empty()) {
      r.reason = layout.structured_error;
      return r;
    }
    auto keep = L1ChannelSelection(dense, layout, sparsity);
    for (const auto& g : layout.groups)
      if (keep.count(g.name) && keep.at(g.name).size(0) < layout.Structures(dense, g)) ++r.groups_pruned;
    if (r.groups_pruned == 0) {
      r.reason = "no group prunable";
      for (const auto& g : layout.groups)
        if (!g.blocked.empty()) {
          r.reason = g.blocked;
          break;
        }
      return r;
    }
    auto zeroed = CloneModule(dense);
    ZeroStructures(zeroed, layout, keep);
    r.pruned = CloneModule(dense);
    RemoveStructures(r.pruned, layout, keep);
    r.params_after = CountParameters(r.pruned);
    Status st = CheckStructuredVariant(zeroed, r.pruned, {input}, 1e-3, &r.error);
    if (!st.ok()) {
      r.reason = st.message();
      return r;
    }
    torch::NoGradGuard g;
    auto d = const_cast<torch::jit::Module&>(dense).forward({input}).toTensor();
    auto p = r.pruned.forward({input}).toTensor();
    r.change = ((d - p).abs().max() / d.abs().max().clamp_min(1e-12)).item<double>();
    r.ok = true;
  } catch (const c10::Error& e) {
    r.reason = e.what_without_backtrace();
  } catch (const std::exception& e) {
    r.reason = e.what();
  }
  return r;
}

std::string MaskRun(const torch::jit::Module& dense, const ModelLayout& layout, int n, int m,
                    const torch::Tensor& input) {
  try {
    auto variant = CloneModule(dense);
    PlanOptions o;
    auto scores = WeightScores(variant, layout, Criterion::kL1, nullptr, 0);
    if (!scores.ok()) return scores.status().message();
    auto masks = PlanMasks(layout, scores.value(), 0.5, o, n, m, {});
    if (!masks.ok()) return masks.status().message();
    ApplyMasks(variant, masks.value());
    torch::NoGradGuard g;
    variant.eval();
    auto y = variant.forward({input}).toTensor();
    if (!y.isfinite().all().item<bool>()) return "non-finite output";
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string models_flag, python = bench::DebianPython();
  int image = 32, queries = 40;
  bool no_latency = false;
  bench::BenchFlags flags("torchvision_coverage", "structured/unstructured/2:4 pruning of every torchvision classifier");
  flags.Int("--image", &image, "input image side (raised where an architecture needs more)")
      .Int("--queries", &queries, "batch-1 queries per latency measurement")
      .Bool("--no-latency", &no_latency, "skip the speed measurement")
      .String("--python", &python, "interpreter with torchvision")
      .String("--models", &models_flag, "comma-separated constructors (default: all of torchvision's classifiers)");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const bool json_out = flags.json();
  ConfigureTorchThreads(1);

  const std::string script = std::string(PRUNELAB_SOURCE_DIR) + "/bench/torchvision_models.py";
  int rc = 0;
  std::string names_out =
      bench::RunCapture(python + " -c 'import torchvision.models as m; print(\",\".join(sorted(m.list_models(module=m))))' 2>&1", &rc);
  if (rc != 0) {
    std::fprintf(stderr,
                 "torchvision_coverage: python3-torchvision is not importable (%s); run cluster/install-deps.sh\n",
                 OneLine(names_out).c_str());
    return 1;
  }
  std::vector<std::string> names = bench::SplitList(models_flag.empty() ? names_out : models_flag);
  auto tmp = std::filesystem::temp_directory_path() / ("prunelab-tv-" + std::to_string(getpid()));
  std::filesystem::create_directories(tmp);

  json rows = json::array();
  int structured_ok = 0, unstructured_ok = 0, nm_ok = 0, skipped = 0;
  if (!json_out)
    std::printf("%-20s %9s | %-6s %9s %9s | %-6s %9s %9s %8s | %-5s %-5s | %s\n", "model", "params", "s30%", "params",
                "error", "s50%", "params", "error", "p90 A/B", "unstr", "2:4", "reason");
  for (const auto& name : names) {
    auto t0 = std::chrono::steady_clock::now();
    json row{{"model", name}};
    std::string gen = bench::RunCapture(python + " " + script + " --out " + tmp.string() + " --models " + name + " --image " +
                              std::to_string(image) + " --manifest " + (tmp / "m.json").string() + " 2>&1",
                          &rc);
    json manifest;
    try {
      std::ifstream f(tmp / "m.json");
      manifest = json::parse(f).at(0);
    } catch (const std::exception&) {
      manifest = json{{"skipped", "generator failed: " + OneLine(gen)}};
    }
    if (manifest.contains("skipped")) {
      row["skipped"] = manifest["skipped"];
      ++skipped;
      if (!json_out) std::printf("%-20s skipped: %s\n", name.c_str(), manifest["skipped"].get<std::string>().c_str());
      rows.push_back(row);
      continue;
    }
    std::string path = manifest["path"];
    std::vector<int64_t> shape = manifest["input_shape"].get<std::vector<int64_t>>();
    int64_t param_count = manifest["params"];
    double avail = MemAvailableBytes();
    if (static_cast<double>(param_count) * 4 * 4 > avail) {
      row["skipped"] = "needs about " + std::to_string(param_count * 16 / (1 << 20)) + " MiB (4 copies of " +
                       std::to_string(param_count * 4 / (1 << 20)) + " MiB of weights); this machine has " +
                       std::to_string(static_cast<int64_t>(avail / (1 << 20))) + " MiB free";
      ++skipped;
      if (!json_out) std::printf("%-20s skipped: %s\n", name.c_str(), row["skipped"].get<std::string>().c_str());
      std::filesystem::remove(path);
      rows.push_back(row);
      continue;
    }
    torch::jit::Module dense;
    try {
      dense = torch::jit::load(path);
    } catch (const c10::Error& e) {
      row["error"] = OneLine(e.what_without_backtrace());
      rows.push_back(row);
      continue;
    }
    std::filesystem::remove(path);
    dense.eval();
    torch::manual_seed(0);
    std::vector<int64_t> full{2};
    full.insert(full.end(), shape.begin(), shape.end());
    auto input = torch::randn(full);
    auto layout = InferLayout(dense, *NewImageClassification(shape));
    int prunable = 0;
    for (const auto& g : layout.groups) prunable += g.blocked.empty();
    row["params"] = CountParameters(dense);
    row["input_shape"] = shape;
    row["groups"] = layout.groups.size();
    row["groups_prunable"] = prunable;
    StructuredRun s30 = Structured(dense, layout, 0.3, input);
    StructuredRun s50 = Structured(dense, layout, 0.5, input);
    bool both = s30.ok && s50.ok;
    structured_ok += both;
    auto put = [&](const char* key, const StructuredRun& r) {
      json j{{"ok", r.ok}, {"groups_pruned", r.groups_pruned}};
      if (r.ok) j["params_after"] = r.params_after, j["error"] = r.error, j["change_vs_dense"] = r.change;
      else j["reason"] = OneLine(r.reason, 400);
      row[key] = j;
    };
    put("structured_30", s30);
    put("structured_50", s50);
    std::string un = MaskRun(dense, layout, 0, 0, input);
    std::string nm = MaskRun(dense, layout, 2, 4, input);
    unstructured_ok += un.empty();
    nm_ok += nm.empty();
    row["unstructured_50"] = un.empty() ? json("ok") : json(OneLine(un));
    row["nm_2_4"] = nm.empty() ? json("ok") : json(OneLine(nm));
    double speedup = -1;
    if (s50.ok && !no_latency) {
      Dataset pool;
      std::vector<int64_t> ps{16};
      ps.insert(ps.end(), shape.begin(), shape.end());
      pool.inputs = torch::randn(ps);
      pool.labels = torch::zeros({16}, torch::kInt64);
      auto [a, af] = Fastest(dense, pool, queries);
      auto [b, bf] = Fastest(s50.pruned, pool, queries);
      if (a > 0 && b > 0) {
        speedup = a / b;
        row["dense_p90_ms"] = a;
        row["dense_form"] = af;
        row["pruned50_p90_ms"] = b;
        row["pruned50_form"] = bf;
        row["speedup_p90"] = speedup;
      }
    }
    row["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rows.push_back(row);
    if (!json_out) {
      std::string reason = !s30.ok ? s30.reason : (!s50.ok ? s50.reason : (!un.empty() ? un : nm));
      char sp[32] = "-";
      if (speedup > 0) std::snprintf(sp, sizeof(sp), "%.2fx", speedup);
      std::printf("%-20s %8.2fM | %-6s %8.2fM %9.1e | %-6s %8.2fM %9.1e %8s | %-5s %-5s | %s\n", name.c_str(),
                  CountParameters(dense) / 1e6, s30.ok ? "ok" : "FAIL", s30.params_after / 1e6, s30.error,
                  s50.ok ? "ok" : "FAIL", s50.params_after / 1e6, s50.error, sp, un.empty() ? "ok" : "FAIL",
                  nm.empty() ? "ok" : "FAIL", OneLine(reason, 120).c_str());
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(tmp);
  const int total = static_cast<int>(names.size());
  if (json_out) {
    json out{{"models", total},         {"skipped", skipped},     {"structured_ok", structured_ok},
             {"unstructured_ok", unstructured_ok}, {"nm_2_4_ok", nm_ok}, {"rows", rows}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("\nstructured (30 %% and 50 %% L1, checked): %d of %d\nunstructured 50 %%: %d of %d\n2:4: %d of %d\n"
                "skipped: %d\n",
                structured_ok, total, unstructured_ok, total, nm_ok, total, skipped);
  }
  return 0;
}
