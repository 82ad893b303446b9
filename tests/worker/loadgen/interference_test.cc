// Interference readings: /proc/stat parsing and arithmetic on fixed files, the verdict's
// reasons, and a real busy process seen by a real reading.
#include "worker/loadgen/interference.h"
#include "tests/status_matchers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

void WriteStat(const std::string& path, unsigned long long user, unsigned long long idle, unsigned long long steal) {
  // aggregate line, then two CPUs; columns: user nice system idle iowait irq softirq steal guest guest_nice
  std::ofstream(path) << "cpu  " << user << " 0 0 " << idle << " 0 0 0 " << steal << " 0 0\n"
                      << "cpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\nintr 1 2 3\n";
}

TEST(InterferenceTest, ParsesProcStatAndCountsOtherCoresStealAndFrequency) {
  testing::TempDir dir;
  const std::string stat = dir.path() + "/stat", freq = dir.path() + "/cpu";
  WriteStat(stat, 1000, 5000, 10);
  for (int c = 0; c < 2; ++c) {
    std::filesystem::create_directories(freq + "/cpu" + std::to_string(c) + "/cpufreq");
    std::ofstream(freq + "/cpu" + std::to_string(c) + "/cpufreq/scaling_cur_freq") << (c ? 3000000 : 2400000) << "\n";
  }
  auto a = ReadCpuSample(stat, freq);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->cpus, 2);
  ASSERT_EQ(a->freq_mhz.size(), 2u);
  EXPECT_DOUBLE_EQ(a->freq_mhz[0], 2400);
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(a->busy_s, 1000 / hz);
  // One second later: the machine was busy 1.5 CPU-seconds, this process used 0.5 of them.
  CpuSample b = *a;
  b.wall_s += 1.0;
  b.busy_s += 1.5;
  b.own_cpu_s += 0.5;
  b.steal_s += 0.2;
  b.total_s += 2.0;
  Interference i = Between(*a, b);
  EXPECT_NEAR(i.other_cores, 1.0, 1e-9);
  EXPECT_NEAR(i.steal_fraction, 0.1, 1e-9);
  EXPECT_TRUE(i.freq_visible);
  EXPECT_NEAR(i.freq_min_ratio, 0.8, 1e-9);

  InterferencePolicy p;
  auto why = Judge(i, p);
  ASSERT_EQ(why.size(), 2u) << "other cores and steal; the frequency ratio 0.80 is at the limit";
  EXPECT_NE(why[0].find("1.00 cores"), std::string::npos) << why[0];
  EXPECT_NE(why[0].find("--max-other-cores"), std::string::npos) << why[0];
  EXPECT_NE(why[1].find("10.0 %"), std::string::npos) << why[1];
  p.max_other_cores = 1.5;
  p.max_steal = 0.2;
  EXPECT_TRUE(Judge(i, p).empty());
  EXPECT_EQ(nlohmann::json(ToJson(i))["freq_min_ratio"], 0.8);

  // No cpufreq (most VMs): frequency is "not visible", never a reason.
  auto bare = ReadCpuSample(stat, dir.path() + "/none");
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(bare->freq_mhz.empty());
  EXPECT_FALSE(Between(*bare, *bare).freq_visible);
  EXPECT_TRUE(IsError(ReadCpuSample(dir.path() + "/missing"), Status::Code::kUnavailable, "cannot read"));
}

TEST(InterferenceTest, AbRoundsThatDisagreeAreAReason) {
  InterferencePolicy p;
  EXPECT_TRUE(JudgeAbSpread(1.9, 2.2, p).empty());
  auto why = JudgeAbSpread(0.9, 1.8, p);
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("0.90x to 1.80x"), std::string::npos) << why[0];
  EXPECT_NE(why[0].find("--max-ab-spread"), std::string::npos) << why[0];
}

// A real busy process beside this one: a real reading over a second sees at least most of a
// core used by others, and the verdict says so. (Other tests may load the machine too; that
// only adds to what is seen, so the test cannot pass by a quiet machine's accident.)
TEST(InterferenceTest, ABusyProcessIsSeen) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    volatile unsigned long x = 0;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) ++x;
    _exit(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto a = ReadCpuSample();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto b = ReadCpuSample();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  Interference i = Between(*a, *b);
  EXPECT_GE(i.other_cores, 0.7) << "a process spinning on a core for the whole reading";
  auto why = Judge(i, InterferencePolicy{});
  ASSERT_FALSE(why.empty());
  EXPECT_NE(why[0].find("other processes used"), std::string::npos) << why[0];
}

}  // namespace
}  // namespace prunelab::worker
