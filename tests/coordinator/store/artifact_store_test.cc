// One parity suite for both ArtifactStore implementations (files beside the store, values of
// a memory store), then what only the file store does: staging files, crash leftovers, and
// artifacts that earlier versions kept in RocksDB.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "common/base/hash.h"
#include "tests/status_matchers.h"
#include "coordinator/store/artifact_store.h"
#include "coordinator/store/store_view.h"
#include "tests/fault_file_system.h"
#include "tests/test_util.h"

namespace prunelab::coordinator {
namespace {

using prunelab::testing::IsError;

struct ArtifactFactory {
  std::string name;
  std::function<std::unique_ptr<ArtifactStore>(const std::string& dir, Store& kv)> open;
};

void PrintTo(const ArtifactFactory& f, std::ostream* os) { *os << f.name; }

class ArtifactParityTest : public ::testing::TestWithParam<ArtifactFactory> {
 protected:
  ArtifactParityTest() : kv_(NewMemoryStore()) {}
  std::unique_ptr<ArtifactStore> Open() { return GetParam().open(dir_.path() + "/artifacts", *kv_); }
  testing::TempDir dir_;
  std::unique_ptr<Store> kv_;
};

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u) >> 13);
  return s;
}

TEST_P(ArtifactParityTest, PutSizeAndRangedReads) {
  auto a = Open();
  ASSERT_TRUE(a);
  const std::string bytes = Bytes(100000);
  const std::string h = ContentHash(bytes);
  EXPECT_FALSE(a->Size(h).value().has_value());
  EXPECT_EQ(a->Read(h, 0, 10).status().code(), Status::Code::kNotFound);
  ASSERT_TRUE(a->Put(h, bytes).ok());
  ASSERT_TRUE(a->Size(h).value().has_value());
  EXPECT_EQ(*a->Size(h).value(), bytes.size());
  EXPECT_EQ(a->Read(h, 0, 10).value(), bytes.substr(0, 10));
  EXPECT_EQ(a->Read(h, 99990, 100).value(), bytes.substr(99990)) << "a range past the end is cut at the end";
  EXPECT_EQ(a->Read(h, 200000, 100).value(), "");
  EXPECT_EQ(a->Read(h, 0, bytes.size()).value(), bytes);
}

TEST_P(ArtifactParityTest, StagedBytesAreInvisibleUntilPublishedAndDiscardDropsThem) {
  auto a = Open();
  const std::string bytes = Bytes(300000);
  const std::string h = ContentHash(bytes);
  ASSERT_TRUE(a->Append("up1", std::string_view(bytes).substr(0, 100000)).ok());
  ASSERT_TRUE(a->Append("up1", std::string_view(bytes).substr(100000)).ok());
  EXPECT_FALSE(a->Size(h).value().has_value()) << "nothing is visible under the name before Publish";
  ASSERT_TRUE(a->Publish("up1", h).ok());
  EXPECT_EQ(a->Read(h, 0, bytes.size()).value(), bytes);
  ASSERT_TRUE(a->Append("up2", "half of something").ok());
  a->Discard("up2");
  EXPECT_EQ(a->Publish("up2", ContentHash("x")).code(), Status::Code::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(
    All, ArtifactParityTest,
    ::testing::Values(ArtifactFactory{"kv",
                                      [](const std::string&, Store& kv) { return NewKvArtifactStore(kv); }},
                      ArtifactFactory{"files",
                                      [](const std::string& dir, Store& kv) {
                                        auto s = OpenFileArtifactStore(dir, &kv, 0);
                                        return s.ok() ? std::move(s).value() : nullptr;
                                      }}),
    [](const ::testing::TestParamInfo<ArtifactFactory>& p) { return p.param.name; });

TEST(FileArtifactStoreTest, ArtifactsAreFilesNamedByHashAndCrashLeftoversAreRemovedOnOpen) {
  testing::TempDir dir;
  auto kv = NewMemoryStore();
  const std::string root = dir.path() + "/artifacts";
  {
    auto a = OpenFileArtifactStore(root, kv.get(), 0).value();
    ASSERT_TRUE(a->Put(ContentHash("whole"), "whole").ok());
    ASSERT_TRUE(a->Append("crashed", "half an upload").ok());
    EXPECT_TRUE(std::filesystem::exists(root + "/staging/crashed.part"));
  }  // as after kill -9: the staging file stays behind
  EXPECT_TRUE(std::filesystem::exists(root + "/" + ContentHash("whole")));
  EXPECT_FALSE(kv->Get(ArtifactKey(ContentHash("whole"))).value().has_value()) << "artifacts are not RocksDB values";
  auto a = OpenFileArtifactStore(root, kv.get(), 0).value();
  EXPECT_FALSE(std::filesystem::exists(root + "/staging/crashed.part")) << "useless without its hash state";
  EXPECT_EQ(a->Read(ContentHash("whole"), 0, 100).value(), "whole");
}

TEST(FileArtifactStoreTest, AnArtifactAnEarlierVersionKeptInTheRecordStoreIsServedAndMovedToAFile) {
  testing::TempDir dir;
  auto kv = NewMemoryStore();
  const std::string old = "model of prunelab 0.5";
  const std::string h = ContentHash(old);
  ASSERT_TRUE(kv->Apply({{ArtifactKey(h), old}}).ok());
  {
    auto ro = OpenFileArtifactStore(dir.path() + "/artifacts", kv.get(), 0, /*read_only=*/true).value();
    EXPECT_EQ(ro->Read(h, 0, 100).value(), old) << "the CLI reads a data directory without changing it";
    EXPECT_TRUE(kv->Get(ArtifactKey(h)).value().has_value());
  }
  auto a = OpenFileArtifactStore(dir.path() + "/artifacts", kv.get(), 0).value();
  EXPECT_EQ(*a->Size(h).value(), old.size());
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/artifacts/" + h)) << "moved to a file on first read";
  EXPECT_FALSE(kv->Get(ArtifactKey(h)).value().has_value()) << "and no longer kept twice";
  EXPECT_EQ(a->Read(h, 5, 5).value(), old.substr(5, 5));
}

// Names come from peers: only content hashes become file names.
TEST(FileArtifactStoreTest, ANameThatIsNotAContentHashReachesNoFile) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/secret") << "not an artifact";
  auto a = OpenFileArtifactStore(dir.path() + "/artifacts", nullptr, 0).value();
  for (const std::string& name : std::vector<std::string>{"../secret", "/etc/passwd", "", std::string(64, '.')}) {
    EXPECT_FALSE(a->Size(name).value().has_value()) << name;
    EXPECT_EQ(a->Read(name, 0, 100).status().code(), Status::Code::kNotFound) << name;
    EXPECT_TRUE(IsError(a->Put(name, "x"), Status::Code::kInvalidArgument, "artifact name")) << name;
  }
}

TEST(FileArtifactStoreTest, HasRoomKeepsTheReserveFree) {
  testing::TempDir dir;
  auto a = OpenFileArtifactStore(dir.path() + "/artifacts", nullptr, 0).value();
  EXPECT_TRUE(a->HasRoom(1 << 20));
  auto reserved = OpenFileArtifactStore(dir.path() + "/artifacts", nullptr, uint64_t{1} << 62).value();
  EXPECT_FALSE(reserved->HasRoom(1 << 20)) << "a reserve larger than any disk leaves no room";
}

// A full disk or a failing device at any step of a write: the write fails with the reason,
// what was stored before stays whole, the failed artifact is absent (never partial), no
// staging file is left, the same write succeeds once the fault is gone, and a restart finds
// exactly what was acknowledged.
TEST(FileArtifactStoreTest, AWriteThatFailsHalfwayLosesNothing) {
  using Fault = prunelab::testing::FaultFileSystem::Fault;
  testing::TempDir dir;
  const std::string root = dir.path() + "/artifacts";
  prunelab::testing::FaultFileSystem faults;
  auto a = OpenFileArtifactStore(root, nullptr, 0, false, &faults).value();
  const std::string kept = Bytes(200000), next = Bytes(300001);
  const std::string hk = ContentHash(kept), hn = ContentHash(next);
  ASSERT_TRUE(a->Put(hk, kept).ok());
  auto staging_left = [&] { return !std::filesystem::is_empty(root + "/staging"); };

  for (Fault f : {Fault::kAppendHalfway, Fault::kSync, Fault::kRename}) {
    faults.Arm(f);
    EXPECT_TRUE(IsError(a->Put(hn, next), Status::Code::kIoError, "injected")) << static_cast<int>(f);
    EXPECT_FALSE(a->Size(hn).value().has_value()) << "a failed write is absent, not partial: " << static_cast<int>(f);
    EXPECT_FALSE(staging_left()) << static_cast<int>(f);
    EXPECT_EQ(a->Read(hk, 0, kept.size()).value(), kept);
  }
  EXPECT_EQ(faults.fired(), 3);

  // An upload in chunks whose second chunk fails halfway: the coordinator discards it and the
  // client starts again from byte 0.
  faults.Arm(Fault::kAppendHalfway, /*skip=*/1);
  ASSERT_TRUE(a->Append("up", std::string_view(next).substr(0, 100000)).ok());
  EXPECT_TRUE(IsError(a->Append("up", std::string_view(next).substr(100000)), Status::Code::kIoError, "no space left"));
  a->Discard("up");
  EXPECT_FALSE(staging_left());
  ASSERT_TRUE(a->Append("up", std::string_view(next).substr(0, 100000)).ok());
  ASSERT_TRUE(a->Append("up", std::string_view(next).substr(100000)).ok());
  ASSERT_TRUE(a->Publish("up", hn).ok());
  EXPECT_EQ(a->Read(hn, 0, next.size()).value(), next);

  // The rename went through but the directory sync did not: the caller is told (it does not
  // acknowledge), and what is under the name is whole.
  const std::string third = Bytes(5000) + "3";
  faults.Arm(Fault::kSyncDir);
  EXPECT_TRUE(IsError(a->Put(ContentHash(third), third), Status::Code::kIoError, "injected"));
  if (auto s = a->Size(ContentHash(third)).value()) EXPECT_EQ(a->Read(ContentHash(third), 0, *s).value(), third);

  a.reset();
  auto again = OpenFileArtifactStore(root, nullptr, 0).value();
  EXPECT_EQ(again->Read(hk, 0, kept.size()).value(), kept);
  EXPECT_EQ(again->Read(hn, 0, next.size()).value(), next);
  EXPECT_FALSE(staging_left());
}

}  // namespace
}  // namespace prunelab::coordinator
