// ArtifactStore: the coordinator's content-addressed artifacts (users' models, trained
// baselines, pruned variants), kept apart from the record store because they are large.
// Two implementations behind one interface:
//  - files beside the store (<data-dir>/artifacts/<hash>): an upload is appended to a staging
//    file as its chunks arrive, then fsynced and renamed into place (atomic: an artifact is
//    either whole under its name or absent); reads are ranged (pread), so serving one never
//    loads it whole. Data directories of earlier versions kept artifacts as RocksDB values
//    (artifact/<hash>): those are moved to files the first time they are read.
//  - values of a Store (artifact/<hash>): tests driving the coordinator on a memory store.
// Thread-safety: one owner thread (the coordinator's event loop), except Size/Read on the
// file store, which are safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/file_system.h"
#include "common/base/status.h"
#include "coordinator/store/store.h"

namespace prunelab::coordinator {

class ArtifactStore {
 public:
  virtual ~ArtifactStore() = default;
  // Size of the artifact named hash; nullopt when it is not here.
  virtual StatusOr<std::optional<uint64_t>> Size(const std::string& hash) = 0;
  // Bytes [offset, offset + n) (fewer at the end). NotFound when absent.
  virtual StatusOr<std::string> Read(const std::string& hash, uint64_t offset, uint64_t n) = 0;
  // Stores a whole artifact whose name the caller has checked; durable when it returns OK.
  virtual Status Put(const std::string& hash, std::string_view bytes) = 0;
  // Staging (uploads): Append adds bytes to upload_id's staging area (created on first use);
  // Publish makes them durable and visible under hash, atomically; Discard drops them.
  virtual Status Append(const std::string& upload_id, std::string_view data) = 0;
  virtual Status Publish(const std::string& upload_id, const std::string& hash) = 0;
  virtual void Discard(const std::string& upload_id) = 0;
  // Room for `bytes` more while keeping the store's reserve free.
  virtual bool HasRoom(uint64_t bytes) = 0;
  // Where artifacts live, for messages ("memory" for the KV store).
  virtual std::string Where() const = 0;
};

// Artifacts as values of `store` (which must outlive it).
std::unique_ptr<ArtifactStore> NewKvArtifactStore(Store& store);

// dir is created if needed; staging files left by a crash are removed (their uploads start
// again: the coordinator asks for byte 0). legacy: the record store, for artifacts written by
// earlier versions (may be null). min_free_bytes: an upload that would leave less free is
// refused. read_only: the CLI reading a data directory (no migration, no clean-up). fs: the
// file system it writes through (null: LocalFileSystem(); tests inject faults here).
StatusOr<std::unique_ptr<ArtifactStore>> OpenFileArtifactStore(const std::string& dir, Store* legacy,
                                                               uint64_t min_free_bytes, bool read_only = false,
                                                               FileSystem* fs = nullptr);

}  // namespace prunelab::coordinator
