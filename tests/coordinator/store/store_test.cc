// One parity suite run against every Store implementation.
#include <gtest/gtest.h>

#include <functional>

#include "coordinator/store/store.h"
#include "tests/test_util.h"

namespace prunelab::coordinator {
namespace {

struct StoreFactory {
  std::string name;
  std::function<std::unique_ptr<Store>(const std::string& dir)> open;
};

void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

class StoreParityTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  testing::TempDir dir_;
  std::unique_ptr<Store> Open() { return GetParam().open(dir_.path() + "/db"); }
};

std::vector<std::pair<std::string, std::string>> ScanAll(Store& s, const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  EXPECT_TRUE(s.Scan(prefix, [&](const std::string& k, const std::string& v) { out.emplace_back(k, v); }).ok());
  return out;
}

TEST_P(StoreParityTest, PutGetDeleteScan) {
  auto s = Open();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Apply({{"task/a/2", "two"}, {"task/a/1", "one"}, {"task/b/1", "other"}, {"result/a/1", "r"}}).ok());
  auto v = s->Get("task/a/1");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v.value().has_value());
  EXPECT_EQ(*v.value(), "one");
  EXPECT_FALSE(s->Get("missing").value().has_value());
  auto rows = ScanAll(*s, "task/a/");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].first, "task/a/1");  // key order
  EXPECT_EQ(rows[1].first, "task/a/2");
  ASSERT_TRUE(s->Apply({{"task/a/1", std::nullopt}, {"task/a/2", "TWO"}}).ok());
  rows = ScanAll(*s, "task/a/");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].second, "TWO");
}

TEST_P(StoreParityTest, BinaryValuesSurvive) {
  auto s = Open();
  std::string bin("\0\1\2\xff\0", 5);
  ASSERT_TRUE(s->Apply({{"artifact/x", bin}}).ok());
  EXPECT_EQ(*s->Get("artifact/x").value(), bin);
}

std::unique_ptr<Store> OpenRocks(const std::string& dir) {
  auto s = OpenRocksDbStore(dir);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

INSTANTIATE_TEST_SUITE_P(All, StoreParityTest,
                         ::testing::Values(StoreFactory{"memory", [](const std::string&) { return NewMemoryStore(); }},
                                           StoreFactory{"rocksdb", OpenRocks}),
                         [](const ::testing::TestParamInfo<StoreFactory>& i) { return i.param.name; });

TEST(RocksDbStoreTest, DataSurvivesReopenAndReadOnlyOpen) {
  testing::TempDir dir;
  std::string path = dir.path() + "/db";
  {
    auto s = OpenRocksDbStore(path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s.value()->Apply({{"sweep/sw-0001", "{\"id\":\"sw-0001\"}"}, {"result/sw-0001/t1", "ok"}}).ok());
  }
  auto again = OpenRocksDbStore(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again.value()->Get("result/sw-0001/t1").value(), "ok");
  // A read-only reader works while the writer still holds the lock.
  auto ro = OpenRocksDbStore(path, /*read_only=*/true);
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  EXPECT_EQ(*ro.value()->Get("sweep/sw-0001").value(), "{\"id\":\"sw-0001\"}");
  // A second writer is refused with a clear message.
  auto second = OpenRocksDbStore(path);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().ToString();
}

TEST(RocksDbStoreTest, ReadOnlyOpenOfMissingStoreSaysWhatToDo) {
  testing::TempDir dir;
  auto ro = OpenRocksDbStore(dir.path() + "/nothing", true);
  ASSERT_FALSE(ro.ok());
  EXPECT_NE(ro.status().message().find("--data-dir"), std::string::npos);
}

}  // namespace
}  // namespace prunelab::coordinator
