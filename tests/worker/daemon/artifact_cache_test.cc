// The worker's artifact cache: hashes verified on read, and a write that fails at any step
// (through the file-system seam) leaves no entry that could be read as whole.
#include "worker/daemon/artifact_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/base/hash.h"
#include "tests/fault_file_system.h"
#include "tests/status_matchers.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

TEST(ArtifactCacheTest, VerifiesHashesAndDropsCorruptEntries) {
  testing::TempDir dir;
  ArtifactCache cache(dir.path() + "/cache");
  ASSERT_TRUE(cache.Init().ok());
  std::string bytes = "model";
  std::string h = ContentHash(bytes);
  EXPECT_TRUE(IsError(cache.Put(h, "tampered"), Status::Code::kCorruption, "artifact does not match its hash"));
  ASSERT_TRUE(cache.Put(h, bytes).ok());
  EXPECT_EQ(cache.Get(h).value_or(""), bytes);
  {
    std::ofstream corrupt(dir.path() + "/cache/" + h + ".bin", std::ios::trunc);
    corrupt << "bit rot";
  }
  EXPECT_FALSE(cache.Get(h).has_value());
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/cache/" + h + ".bin"));
}

TEST(ArtifactCacheTest, AWriteThatFailsHalfwayLeavesNoEntryAndTheNextPutSucceeds) {
  using Fault = prunelab::testing::FaultFileSystem::Fault;
  testing::TempDir dir;
  prunelab::testing::FaultFileSystem faults;
  ArtifactCache cache(dir.path() + "/cache", faults);
  ASSERT_TRUE(cache.Init().ok());
  const std::string kept = "the baseline", next = std::string(100000, 'v') + "ariant";
  ASSERT_TRUE(cache.Put(ContentHash(kept), kept).ok());
  for (Fault f : {Fault::kAppendHalfway, Fault::kRename}) {
    faults.Arm(f);
    EXPECT_TRUE(IsError(cache.Put(ContentHash(next), next), Status::Code::kIoError, "injected")) << static_cast<int>(f);
    EXPECT_FALSE(cache.Get(ContentHash(next)).has_value()) << static_cast<int>(f);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path() + "/cache"), {}), 1)
        << "no temporary file is left: " << static_cast<int>(f);
  }
  EXPECT_EQ(faults.fired(), 2);
  EXPECT_EQ(cache.Get(ContentHash(kept)).value_or(""), kept);
  ASSERT_TRUE(cache.Put(ContentHash(next), next).ok());
  EXPECT_EQ(cache.Get(ContentHash(next)).value_or(""), next);
}

}  // namespace
}  // namespace prunelab::worker
