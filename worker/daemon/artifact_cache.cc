#include "worker/daemon/artifact_cache.h"

#include <unistd.h>

#include "common/base/hash.h"

namespace prunelab::worker {

ArtifactCache::ArtifactCache(std::string dir, FileSystem& fs) : dir_(std::move(dir)), fs_(fs) {}

Status ArtifactCache::Init() {
  Status st = fs_.CreateDirs(dir_);
  if (!st.ok()) return Status::IoError("cannot create cache directory '" + dir_ + "': " + st.message());
  return Status::Ok();
}

std::string ArtifactCache::PathOf(const std::string& hash) const { return dir_ + "/" + hash + ".bin"; }

std::optional<std::string> ArtifactCache::Get(const std::string& hash) {
  if (hash.empty() || hash.find('/') != std::string::npos) return std::nullopt;
  auto bytes = fs_.ReadFile(PathOf(hash));
  if (!bytes.ok()) return std::nullopt;
  if (!MatchesContentName(hash, bytes.value())) {
    (void)fs_.Remove(PathOf(hash));  // corrupt: fetch again
    return std::nullopt;
  }
  return std::move(bytes).value();
}

Status ArtifactCache::Put(const std::string& hash, const std::string& bytes) {
  if (!MatchesContentName(hash, bytes)) return Status::Corruption("artifact does not match its hash " + hash);
  const std::string tmp = PathOf(hash) + ".tmp." + std::to_string(getpid());
  auto file = fs_.NewWritableFile(tmp);
  if (!file.ok()) return file.status();
  Status st = file.value()->Append(bytes);
  Status closed = file.value()->Close();
  if (st.ok()) st = closed;
  if (st.ok()) st = fs_.Rename(tmp, PathOf(hash));
  if (!st.ok()) {
    (void)fs_.Remove(tmp);
    return st;
  }
  return Status::Ok();
}

}  // namespace prunelab::worker
