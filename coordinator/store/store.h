// Store: the coordinator's durable key-value state. Two implementations behind one
// interface: in-memory (tests) and RocksDB (everything real); one parity suite runs both.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace prunelab::coordinator {

struct StoreWrite {
  std::string key;
  std::optional<std::string> value;  // nullopt deletes the key
};

class Store {
 public:
  virtual ~Store() = default;
  // Applies every write or none. When it returns OK the batch is durable (WAL synced):
  // only then may a result be acknowledged. In group-commit mode the batch is durable only
  // after the next successful Sync(), and the owner must Sync() before acknowledging.
  virtual Status Apply(const std::vector<StoreWrite>& batch) = 0;
  // Group commit: one WAL sync for many batches (the service syncs once per round of
  // messages, before sending any reply).
  virtual void SetGroupCommit(bool on) = 0;
  // Makes every batch applied so far durable.
  virtual Status Sync() = 0;
  virtual StatusOr<std::optional<std::string>> Get(const std::string& key) = 0;
  // Calls fn for every key starting with prefix, in key order.
  virtual Status Scan(const std::string& prefix,
                      const std::function<void(const std::string& key, const std::string& value)>& fn) = 0;
};

std::unique_ptr<Store> NewMemoryStore();

// Opens (creating if needed) a RocksDB database in dir. read_only opens without taking
// the lock, so the CLI can read the store of a running or stopped coordinator.
// min_free_bytes: writes are refused (and the store takes no more, see rocksdb_store.cc) once
// the filesystem has less than this free plus twice the batch.
inline constexpr uint64_t kDefaultMinFreeBytes = 64ull << 20;
// True when the filesystem holding dir has at least `bytes` free (or its free space is unknown).
bool HasFreeSpace(const std::string& dir, uint64_t bytes);
StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(const std::string& dir, bool read_only = false,
                                                  uint64_t min_free_bytes = kDefaultMinFreeBytes);

}  // namespace prunelab::coordinator
