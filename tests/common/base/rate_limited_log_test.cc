#include "common/base/rate_limited_log.h"

#include <gtest/gtest.h>

#include <thread>

namespace prunelab {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(RateLimitedLogTest, OneLinePerKeyPerIntervalWithTheCountSince) {
  RateLimitedLog log("x: ", std::chrono::seconds(60));
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 5; ++i) log.Log("peer-a", "refused a");
  log.Log("peer-b", "refused b");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(Count(out, "x: refused a"), 1u) << out;
  EXPECT_EQ(Count(out, "x: refused b"), 1u) << out;
  RateLimitedLog fast("y: ", std::chrono::seconds(0));
  ::testing::internal::CaptureStderr();
  fast.Log("k", "first");
  fast.Log("k", "second");
  out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(Count(out, "warning y: first\n"), 1u) << out;
  EXPECT_EQ(Count(out, "warning y: second\n"), 1u) << "a zero interval logs every time: " << out;
  EXPECT_EQ(Count(out, "\n"), 2u) << out;
}

TEST(RateLimitedLogTest, RemembersABoundedNumberOfKeys) {
  RateLimitedLog log("z: ", std::chrono::seconds(60), /*max_keys=*/3);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 100; ++i) log.Log("k" + std::to_string(i), "line " + std::to_string(i));
  log.Log("k99", "again");
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(Count(out, "z: line"), 100u) << "every new key gets its line";
  EXPECT_EQ(Count(out, "again"), 0u) << "a remembered key stays quiet";
}

}  // namespace
}  // namespace prunelab
