// The test watchdog (tests/test_main.cc) turns a hang into a report: the test's name, how long
// it ran, and the stacks of every thread, where the hung frame can be read.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <unistd.h>

namespace {

const char* kVictim = "PRUNELAB_WATCHDOG_VICTIM";

TEST(WatchdogTest, AHungTestIsReportedWithTheStacksOfItsThreads) {
  if (std::getenv(kVictim)) GTEST_SKIP() << "this process is the victim";
  const std::string cmd = std::string(kVictim) + "=1 PRUNELAB_TEST_WATCHDOG_S=2 timeout 120 /proc/" +
                          std::to_string(getpid()) + "/exe --gtest_filter=WatchdogTest.HangsWhenAskedTo 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("[ WATCHDOG ] WatchdogTest.HangsWhenAskedTo has run for"), std::string::npos) << out;
  if (std::system("command -v gdb >/dev/null 2>&1") == 0)
    EXPECT_NE(out.find("WatchdogTest_HangsWhenAskedTo_Test::TestBody"), std::string::npos)
        << "the hung frame is in the stacks:\n" << out;
}

// Hangs (60 s) only when the test above runs it; otherwise skipped.
TEST(WatchdogTest, HangsWhenAskedTo) {
  if (!std::getenv(kVictim)) GTEST_SKIP() << "run by AHungTestIsReportedWithTheStacksOfItsThreads";
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

}  // namespace
