// The real file system behind the seam: what the artifact store and cache rely on.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "common/base/file_system.h"
#include "tests/status_matchers.h"
#include "tests/test_util.h"

namespace prunelab {
namespace {

using prunelab::testing::IsError;

TEST(LocalFileSystemTest, WritesReadsRangesRenamesListsAndRemoves) {
  testing::TempDir dir;
  FileSystem& fs = LocalFileSystem();
  const std::string root = dir.path() + "/a/b";
  ASSERT_TRUE(fs.CreateDirs(root).ok());
  EXPECT_FALSE(fs.FileSize(root + "/f").value().has_value());
  EXPECT_TRUE(IsError(fs.ReadFile(root + "/f").status(), Status::Code::kNotFound, root + "/f"));
  {
    auto f = fs.NewWritableFile(root + "/f.tmp").value();
    ASSERT_TRUE(f->Append("hello, ").ok());
    ASSERT_TRUE(f->Append("world").ok());
    f->StartWriteback();
    ASSERT_TRUE(f->Sync().ok());
    ASSERT_TRUE(f->Close().ok());
  }
  ASSERT_TRUE(fs.Rename(root + "/f.tmp", root + "/f").ok());
  ASSERT_TRUE(fs.SyncDir(root).ok());
  EXPECT_EQ(*fs.FileSize(root + "/f").value(), 12u);
  EXPECT_EQ(fs.ReadFile(root + "/f").value(), "hello, world");
  EXPECT_EQ(fs.ReadRange(root + "/f", 7, 100).value(), "world") << "a range past the end is cut at the end";
  EXPECT_EQ(fs.ReadRange(root + "/f", 50, 10).value(), "");
  auto names = fs.List(root).value();
  EXPECT_EQ(names, std::vector<std::string>{root + "/f"});
  EXPECT_TRUE(IsError(fs.Rename(root + "/missing", root + "/g"), Status::Code::kIoError, root + "/missing"));
  ASSERT_TRUE(fs.Remove(root + "/f").ok());
  EXPECT_TRUE(fs.Remove(root + "/f").ok()) << "a missing file is not an error";
  EXPECT_TRUE(fs.List(root).value().empty());
  EXPECT_TRUE(IsError(fs.List(root + "/nope").status(), Status::Code::kIoError, "nope"));
  EXPECT_TRUE(IsError(fs.NewWritableFile(root + "/nope/f").status(), Status::Code::kIoError, "cannot create"));
}

}  // namespace
}  // namespace prunelab
