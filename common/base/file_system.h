// FileSystem: the seam between prunelab's durable files (the coordinator's artifact store,
// a worker's artifact cache) and the disk. LocalFileSystem() is the real one (POSIX); tests
// wrap it to inject faults (a write that fails halfway, a sync or rename that fails) and
// check that nothing already stored is lost and nothing half-written is ever read as whole.
// Thread-safety: LocalFileSystem() is safe from any thread; a WritableFile belongs to one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace prunelab {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of `data` at the end, or fails (IoError naming the path); after a failure
  // the file's content is undefined and it must be discarded.
  virtual Status Append(std::string_view data) = 0;
  // Starts writing back what was appended (asynchronous; a hint, never an error).
  virtual void StartWriteback() {}
  // Makes the content durable (fdatasync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates `path` (or truncates it) for writing.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Size in bytes; nullopt when the file does not exist.
  virtual StatusOr<std::optional<uint64_t>> FileSize(const std::string& path) = 0;
  // Bytes [offset, offset + n) (fewer at the end); NotFound when the file does not exist.
  virtual StatusOr<std::string> ReadRange(const std::string& path, uint64_t offset, uint64_t n) = 0;
  // The whole file; NotFound when it does not exist.
  StatusOr<std::string> ReadFile(const std::string& path);
  // Atomically replaces `to` with `from`.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Makes a directory's entries (a rename into it) durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Removes a file; a missing file is not an error.
  virtual Status Remove(const std::string& path) = 0;
  virtual Status CreateDirs(const std::string& dir) = 0;
  // Paths of the entries of `dir`.
  virtual StatusOr<std::vector<std::string>> List(const std::string& dir) = 0;
};

FileSystem& LocalFileSystem();

}  // namespace prunelab
