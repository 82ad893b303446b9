// ArtifactCache: content-addressed files on a worker's disk (<dir>/<hash>.bin). Writes go
// to a temporary file renamed into place, so a worker killed mid-write (or a write that
// fails halfway) never leaves a corrupt entry; reads verify the hash and drop entries that
// do not match.
// Thread-safety: safe across threads and processes sharing the directory.
#pragma once

#include <optional>
#include <string>

#include "common/base/file_system.h"
#include "common/base/status.h"

namespace prunelab::worker {

class ArtifactCache {
 public:
  // fs: the file system it writes through (tests inject faults); LocalFileSystem() by default.
  explicit ArtifactCache(std::string dir, FileSystem& fs = LocalFileSystem());
  Status Init();  // creates the directory
  std::optional<std::string> Get(const std::string& hash);
  Status Put(const std::string& hash, const std::string& bytes);

 private:
  std::string PathOf(const std::string& hash) const;
  std::string dir_;
  FileSystem& fs_;
};

}  // namespace prunelab::worker
