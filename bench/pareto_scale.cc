// Time to compute the Pareto front of random results: 10^4, 10^5 and 10^6 points with 2, 3
// and 5 objectives, next to the O(n^2) brute force where it finishes in reasonable time
// (measured up to 10^5 points; beyond, its time is extrapolated from that and marked so).
// Then the time to write a report of 10,000 results. Targets: 10^6 results, 3 objectives,
// under 1 s; a 10,000-result report under 2 s.
// Usage: pareto_scale [--json] [--max-n N]
#include <chrono>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <random>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "coordinator/decide/front.h"
#include "coordinator/decide/report.h"

using namespace prunelab::coordinator;

namespace {

double Seconds(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Accuracy-like and latency-like values, correlated as in a sweep: more pruning -> faster
// and less accurate, with noise; the rest independent.
PointSet Points(size_t n, size_t dims, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 0.02);
  PointSet p;
  p.dims = dims;
  p.values.reserve(n * dims);
  for (size_t i = 0; i < n; ++i) {
    double s = u(rng);
    p.values.push_back(-(0.9 - 0.3 * s * s + noise(rng)));  // accuracy, maximized
    p.values.push_back(1.0 - 0.8 * s + noise(rng));         // latency
    for (size_t k = 2; k < dims; ++k) p.values.push_back(u(rng));
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int max_n = 1000000;
  prunelab::bench::BenchFlags flags("pareto_scale", "Pareto fronts and reports of random results at scale");
  flags.Int("--max-n", &max_n, "largest number of results");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const bool json_out = flags.json();
  std::mt19937 rng(42);
  nlohmann::json out{{"runs", nlohmann::json::array()}};
  if (!json_out) std::printf("Pareto front of random results (seconds; brute force is O(n^2))\n");
  for (size_t dims : {2, 3, 5}) {
    double brute_per_pair = 0;
    for (size_t n : {10000, 100000, 1000000}) {
      if (static_cast<int>(n) > max_n) continue;
      PointSet p = Points(n, dims, rng);
      std::vector<size_t> front;
      double t = Seconds([&] { front = NondominatedFront(p); });
      nlohmann::json run{{"points", n}, {"objectives", dims}, {"seconds", t}, {"front_size", front.size()}};
      std::string brute_text;
      if (n <= 100000) {
        std::vector<size_t> ref;
        double b = Seconds([&] { ref = BruteForceFront(p); });
        brute_per_pair = b / (static_cast<double>(n) * n);
        run["brute_force_seconds"] = b;
        run["speedup_vs_brute_force"] = b / t;
        run["same_front"] = ref == front;
        char buf[96];
        std::snprintf(buf, sizeof(buf), "brute force %.3f s (%.0fx), same front: %s", b, b / t, ref == front ? "yes" : "NO");
        brute_text = buf;
      } else {
        double est = brute_per_pair * static_cast<double>(n) * n;
        run["brute_force_seconds_estimated"] = est;
        char buf[96];
        std::snprintf(buf, sizeof(buf), "brute force not run (about %.0f s extrapolated)", est);
        brute_text = buf;
      }
      out["runs"].push_back(run);
      if (!json_out)
        std::printf("  %7zu points, %zu objectives: %.4f s, front of %zu; %s\n", n, dims, t, front.size(), brute_text.c_str());
      if (n == 1000000 && dims == 3) out["target_1e6_3_objectives_under_1s"] = t < 1.0;
    }
  }
  // A report of 10,000 results (two targets): every file written, cards included.
  {
    std::vector<prunelab::TrialResult> rows;
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 10000; ++i) {
      prunelab::TrialResult r;
      r.task_id = "t" + std::to_string(i / 2) + (i % 2 ? "@arm" : "@x86");
      r.target = i % 2 ? "arm" : "x86";
      r.ok = true;
      r.baseline = i < 2;
      r.kind = r.baseline ? prunelab::TaskKind::kEvaluateBaseline : prunelab::TaskKind::kPruneTrial;
      r.criterion = "l1";
      r.granularity = "structured";
      double s = u(rng);
      r.sparsity = s;
      r.achieved_sparsity = s;
      r.accuracy = 0.9 - 0.1 * s * s + 0.01 * u(rng);
      r.latency_p90_ms = 1.0 - 0.7 * s + 0.05 * u(rng);
      r.latency_p99_ms = r.latency_p90_ms * 1.2;
      r.throughput_sps = 1000 / r.latency_p90_ms;
      r.model_bytes = static_cast<uint64_t>(1e6 * (1 - s) + 1000);
      r.per_class_accuracy.assign(10, r.accuracy);
      rows.push_back(r);
    }
    auto dir = std::filesystem::temp_directory_path() / ("prunelab-report-bench-" + std::to_string(getpid()));
    prunelab::coordinator::ReportInput in{"sw-bench", "bench", &rows, {}};
    size_t files = 0;
    double t = Seconds([&] {
      auto w = prunelab::coordinator::WriteReport(dir.string(), in);
      files = w.ok() ? w->size() : 0;
    });
    std::filesystem::remove_all(dir);
    out["report_10000_results_seconds"] = t;
    out["report_files"] = files;
    out["target_report_under_2s"] = t < 2.0;
    if (!json_out) std::printf("  report of 10000 results (2 targets): %.3f s, %zu files\n", t, files);
  }
  if (json_out) std::printf("%s\n", out.dump().c_str());
  return 0;
}
