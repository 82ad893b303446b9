// The bench programs run and print one JSON object with their figures (no timing asserted).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/codec/records.h"

namespace prunelab {
namespace {

std::string RunStdout(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

TEST(BenchSmokeTest, HarnessOverheadPrintsOneJsonObject) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/harness_overhead --json --rounds 1"));
  ASSERT_TRUE(j.ok());
  for (const char* k : {"bare_p50_ms", "harness_p50_ms", "overhead_pct", "bookkeeping_us_per_query", "target_met"})
    EXPECT_TRUE(j->contains(k)) << k;
  EXPECT_GT((*j)["bare_p50_ms"].get<double>(), 0);
}

TEST(BenchSmokeTest, FormsSpeedupPrintsOneJsonObject) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/forms_speedup --json --rounds 1"));
  ASSERT_TRUE(j.ok());
  ASSERT_EQ((*j)["cases"].size(), 5u);
  for (const auto& c : (*j)["cases"]) EXPECT_GT(c["speedup_p50"].get<double>(), 0);
  EXPECT_TRUE(j->contains("unstructured90_chosen_form"));
}

TEST(BenchSmokeTest, TrainThroughputPrintsOneJsonObject) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/train_throughput --json --rounds 1 --samples 256"));
  ASSERT_TRUE(j.ok());
  EXPECT_GT((*j)["optimizer_on_samples_per_s"].get<double>(), 0);
  EXPECT_GT((*j)["optimizer_off_samples_per_s"].get<double>(), 0);
}

TEST(BenchSmokeTest, DispatchScalePrintsOneJsonObjectWithEveryTaskDone) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/dispatch_scale --json --tasks 60 --no-dask"));
  ASSERT_TRUE(j.ok());
  ASSERT_EQ((*j)["runs"].size(), 4u);  // 10, 100, 200, 1000 workers
  for (const auto& r : (*j)["runs"]) {
    for (const char* mode : {"saturated", "half_load"}) {
      // 60 trials = 60 prune tasks + 60 benchmark tasks, + the baseline evaluation
      EXPECT_EQ(r[mode]["tasks"].get<uint64_t>(), 121u) << mode << ": " << r.dump();
      EXPECT_GT(r[mode]["tasks_per_s"].get<double>(), 0);
      EXPECT_GT(r[mode]["coordinator_dispatch_p99_ms"].get<double>(), 0);
    }
    if (r["workers"] == 200) EXPECT_GT(r["group_over_sync_per_change"].get<double>(), 0);
  }
}

// Above the spec's 1,000-item list limit the bench must still build a valid sweep (it built
// one list of 4,000 sparsities for --tasks 20000 and aborted once the limit existed).
TEST(BenchSmokeTest, DispatchScaleBuildsValidSweepsAboveTheListLimit) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/dispatch_scale --json --tasks 5001 --no-dask"));
  ASSERT_TRUE(j.ok()) << "no JSON: the bench failed";
  ASSERT_FALSE((*j)["runs"].empty());
  // 5 criteria x 2 schedules x 501 sparsities = 5010 trials, each a prune and a benchmark task.
  EXPECT_EQ((*j)["runs"][0]["saturated"]["tasks"].get<uint64_t>(), 2u * 5010 + 1);
}

TEST(BenchSmokeTest, ParetoScalePrintsFrontTimesAndAReportTime) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/pareto_scale --json --max-n 10000"));
  ASSERT_TRUE(j.ok());
  ASSERT_EQ((*j)["runs"].size(), 3u);  // 10^4 points x 2, 3, 5 objectives
  for (const auto& r : (*j)["runs"]) {
    EXPECT_TRUE(r["same_front"].get<bool>()) << r.dump();
    EXPECT_GT(r["front_size"].get<int>(), 0);
  }
  EXPECT_GT((*j)["report_files"].get<int>(), 4);
}

bool HaveTorchvision() { return std::system("/usr/bin/python3 -c 'import torchvision' > /dev/null 2>&1") == 0; }

TEST(BenchSmokeTest, TorchvisionCoveragePrintsOneRowPerModel) {
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) +
                               "/torchvision_coverage --json --models squeezenet1_1,resnet18 --queries 5"));
  ASSERT_TRUE(j.ok()) << "no JSON: the bench failed";
  EXPECT_EQ((*j)["models"].get<int>(), 2);
  ASSERT_EQ((*j)["rows"].size(), 2u);
  for (const auto& r : (*j)["rows"]) {
    EXPECT_TRUE(r["structured_50"]["ok"].get<bool>()) << r.dump();
    EXPECT_GT(r["speedup_p90"].get<double>(), 0) << r.dump();
  }
  EXPECT_EQ((*j)["structured_ok"].get<int>(), 2);
}

TEST(BenchSmokeTest, RealModelSpeedPrintsBothScenarios) {
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/real_model_speed --json --models resnet18 --image 32 --rounds 1"));
  ASSERT_TRUE(j.ok()) << "no JSON: the bench failed";
  ASSERT_EQ((*j)["rows"].size(), 2u);  // 30 % and 50 %
  for (const auto& r : (*j)["rows"]) {
    EXPECT_GT(r["single_stream_speedup"].get<double>(), 0);
    EXPECT_GT(r["offline_b64_speedup"].get<double>(), 0);
    EXPECT_LT(r["params_pruned"].get<int64_t>(), r["params_dense"].get<int64_t>());
  }
}

TEST(BenchSmokeTest, RealModelSpeedRemovesWholeBlocksWithGranularityDepth) {
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) +
                               "/real_model_speed --json --models resnet18 --image 32 --rounds 1 --granularity depth"));
  ASSERT_TRUE(j.ok()) << "no JSON: the bench failed";
  ASSERT_EQ((*j)["rows"].size(), 2u);  // 25 % and 50 % of the blocks
  EXPECT_EQ((*j)["rows"][0]["blocks"].get<int>(), 8);
  EXPECT_EQ((*j)["rows"][0]["blocks_removed"].size(), 2u);
  EXPECT_EQ((*j)["rows"][1]["blocks_removed"].size(), 4u);
  for (const auto& r : (*j)["rows"]) {
    EXPECT_GT(r["offline_b64_speedup"].get<double>(), 0);
    EXPECT_LT(r["params_pruned"].get<int64_t>(), r["params_dense"].get<int64_t>());
  }
}

TEST(BenchSmokeTest, Int8SpeedMeasuresFourVariantsSideBySide) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST missing: run cluster/install-deps.sh (package dataset-fashion-mnist)";
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) +
                               "/int8_speed --json --models cnn --train 1000 --test 300 --epochs 1 --rounds 1"));
  ASSERT_TRUE(j.ok()) << "no JSON: the bench failed";
  ASSERT_EQ((*j)["rows"].size(), 1u);
  const auto& r = (*j)["rows"][0];
  EXPECT_EQ(r["quantized_layers"], 4);
  for (const char* k : {"int8_vs_fp32_speedup", "pruned_int8_vs_pruned_speedup", "accuracy_int8", "accuracy_pruned_int8"})
    EXPECT_GT(r[k].get<double>(), 0) << k;
  EXPECT_LT(r["bytes_int8"].get<int64_t>(), r["bytes_fp32"].get<int64_t>());
  EXPECT_LT(r["bytes_pruned_int8"].get<int64_t>(), r["bytes_pruned"].get<int64_t>());
}

TEST(BenchSmokeTest, ArtifactUploadPrintsTheCoordinatorsMemoryAndEveryTransferCompletes) {
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/artifact_upload --json --mb 8 --chunk-kib 512"));
  ASSERT_TRUE(j.ok()) << "no JSON: the bench failed";
  EXPECT_EQ((*j)["failures"].get<int>(), 0);
  for (const char* k : {"idle_rss_mib", "upload_peak_rss_mib", "download_peak_rss_mib", "upload_mib_per_s"})
    EXPECT_GT((*j)[k].get<double>(), 0) << k;
  EXPECT_TRUE(j->contains("goal_met"));
}

}  // namespace
}  // namespace prunelab
