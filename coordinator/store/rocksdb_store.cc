// The one place that includes RocksDB.
#include <sys/statvfs.h>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <fmt/printf.h>

#include "coordinator/store/store.h"

namespace prunelab::coordinator {
namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

// Free bytes on the filesystem holding `dir` (UINT64_MAX when unknown).
uint64_t FreeBytes(const std::string& dir) {
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0) return UINT64_MAX;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

std::string Mib(uint64_t bytes) {
  if (bytes == UINT64_MAX) return "unknown";
  return fmt::sprintf("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

std::string FreeSpace(const std::string& dir) { return Mib(FreeBytes(dir)); }

class RocksDbStore final : public Store {
 public:
  RocksDbStore(std::unique_ptr<rocksdb::DB> db, std::string dir, uint64_t min_free_bytes)
      : db_(std::move(db)), dir_(std::move(dir)), min_free_bytes_(min_free_bytes) {}

  // After a failed write or sync nothing more is written through this DB: RocksDB's WAL writer
  // must not be used again after an I/O error (Debian's build asserts, which aborted the
  // coordinator on a full disk). Reads go on. A restart reopens the DB and replays what is durable.
  Status Apply(const std::vector<StoreWrite>& batch) override {
    if (Status st = Failed(); !st.ok()) return st;
    // The reserve: refuse before RocksDB's WAL writer ever meets ENOSPC (it must not be used
    // after an I/O error, and a sync running on another thread could be). Checked on every
    // batch: one statvfs, about a microsecond.
    uint64_t bytes = 0;
    for (const auto& w : batch) bytes += w.key.size() + (w.value ? w.value->size() : 0);
    const uint64_t free_bytes = FreeBytes(dir_);
    if (free_bytes != UINT64_MAX && free_bytes < min_free_bytes_ + 2 * bytes) {
      Status st = Status::IoError("no space: " + Mib(free_bytes) + " free, below the reserve of " + Mib(min_free_bytes_) +
                                  " plus this write (" + Mib(bytes) + "), --min-free-mb");
      Fail(st);
      return Failed();
    }
    Status st = ApplyOnce(batch);
    if (!st.ok()) Fail(st);
    return st;
  }

  Status ApplyOnce(const std::vector<StoreWrite>& batch) {
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
  Status Sync() override {
    if (Status st = Failed(); !st.ok()) return st;
    if (!group_commit_) return Status::Ok();
    Status st = FromRocks(db_->SyncWAL(), "sync WAL");
    if (!st.ok()) Fail(st);
    return st;
  }

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
  Status Failed() {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.empty()) return Status::Ok();
    return Status::IoError("the store in " + dir_ + " takes no more writes after: " + failure_ + " (" + FreeSpace(dir_) +
                           " free there now); once space is freed, the coordinator restarts from what is durable and "
                           "workers resend every result that was not acknowledged");
  }
  void Fail(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.empty()) failure_ = st.message();
  }

  std::unique_ptr<rocksdb::DB> db_;
  const std::string dir_;
  const uint64_t min_free_bytes_;
  std::atomic<bool> group_commit_{false};
  std::mutex mu_;
  std::string failure_;  // the first write error; guarded by mu_
};

}  // namespace

bool HasFreeSpace(const std::string& dir, uint64_t bytes) {
  const uint64_t free_bytes = FreeBytes(dir);
  return free_bytes == UINT64_MAX || free_bytes >= bytes;
}

StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(const std::string& dir, bool read_only, uint64_t min_free_bytes) {
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
  return std::unique_ptr<Store>(new RocksDbStore(std::unique_ptr<rocksdb::DB>(raw), dir, min_free_bytes));
}

}  // namespace prunelab::coordinator
