// The bench programs run and print one JSON object with their figures (no timing asserted).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

#include "common/records.h"

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
  auto j = ParseJson(RunStdout(std::string(PRUNELAB_BIN_DIR) + "/dispatch_scale --json --tasks 60"));
  ASSERT_TRUE(j.ok());
  ASSERT_EQ((*j)["runs"].size(), 6u);  // 10, 100, 1000 workers x sync per change / group commit
  for (const auto& r : (*j)["runs"]) {
    EXPECT_EQ(r["tasks"].get<uint64_t>(), 61u) << r.dump();  // 60 trials + the baseline evaluation
    EXPECT_GT(r["tasks_per_s"].get<double>(), 0);
  }
}

}  // namespace
}  // namespace prunelab
