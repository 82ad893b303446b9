// The one place that includes RocksDB.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <filesystem>

#include "coordinator/store/store.h"

namespace prunelab::coordinator {
namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

class RocksDbStore final : public Store {
 public:
  explicit RocksDbStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  Status Apply(const std::vector<StoreWrite>& batch) override {
    rocksdb::WriteBatch wb;
    for (const auto& w : batch) {
      rocksdb::Status s = w.value ? wb.Put(w.key, *w.value) : wb.Delete(w.key);
      if (!s.ok()) return FromRocks(s, "batch");
    }
    rocksdb::WriteOptions wo;
    wo.sync = !group_commit_;  // otherwise Sync() puts the WAL on disk before any ack
    return FromRocks(db_->Write(wo, &wb), "write");
  }

  void SetGroupCommit(bool on) override { group_commit_ = on; }
  Status Sync() override { return group_commit_ ? FromRocks(db_->SyncWAL(), "sync WAL") : Status::Ok(); }

  StatusOr<std::optional<std::string>> Get(const std::string& key) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "get " + key);
    return std::optional<std::string>(std::move(value));
  }

  Status Scan(const std::string& prefix,
              const std::function<void(const std::string&, const std::string&)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
      fn(it->key().ToString(), it->value().ToString());
    return FromRocks(it->status(), "scan " + prefix);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<bool> group_commit_{false};
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(const std::string& dir, bool read_only) {
  rocksdb::Options options;
  options.create_if_missing = !read_only;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (read_only) {
    if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT"))
      return Status::NotFound("no prunelab store in '" + dir + "' (expected a RocksDB database there; "
                              "pass the --data-dir used by `prunelab run` or the coordinator)");
    s = rocksdb::DB::OpenForReadOnly(options, dir, &raw);
  } else {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IoError("cannot create data directory '" + dir + "': " + ec.message());
    s = rocksdb::DB::Open(options, dir, &raw);
  }
  if (!s.ok()) {
    Status st = FromRocks(s, "open store '" + dir + "'");
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos)
      return Status::Unavailable("store '" + dir + "' is in use by another coordinator (" + s.ToString() + ")");
    return st;
  }
  return std::unique_ptr<Store>(new RocksDbStore(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace prunelab::coordinator
