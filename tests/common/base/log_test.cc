// The daemons' log: one format, whole lines from many threads at once, levels.
#include "common/base/log.h"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace prunelab {
namespace {

TEST(LogTest, LinesAreWholeTimestampedAndLevelledFromManyThreads) {
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([t] {
      for (int k = 0; k < 200; ++k) log::Info("worker w" + std::to_string(t) + ": line " + std::to_string(k));
    });
  for (auto& th : threads) th.join();
  log::Warn("coordinator: a warning");
  std::string out = ::testing::internal::GetCapturedStderr();
  const std::regex info(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ info worker w[0-7]: line \d+)");
  std::istringstream in(out);
  std::string line;
  int lines = 0, bad = 0;
  while (std::getline(in, line)) {
    ++lines;
    if (line.find("coordinator: a warning") != std::string::npos) {
      EXPECT_TRUE(std::regex_match(line, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ warning coordinator: a warning)"))) << line;
      continue;
    }
    if (!std::regex_match(line, info)) ++bad;
  }
  EXPECT_EQ(lines, 8 * 200 + 1);
  EXPECT_EQ(bad, 0) << "interleaved or malformed lines in:\n" << out.substr(0, 2000);
}

TEST(LogTest, LinesBelowTheLevelAreDropped) {
  ::testing::internal::CaptureStderr();
  log::Debug("not shown by default");
  log::SetLevel(log::Level::kDebug);
  log::Debug("shown at debug");
  log::SetLevel(log::Level::kError);
  log::Warn("dropped at error");
  log::Error("kept at error");
  log::SetLevel(log::Level::kInfo);
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find("not shown by default"), std::string::npos) << out;
  EXPECT_NE(out.find("debug shown at debug"), std::string::npos) << out;
  EXPECT_EQ(out.find("dropped at error"), std::string::npos) << out;
  EXPECT_NE(out.find("error kept at error"), std::string::npos) << out;
}

}  // namespace
}  // namespace prunelab
