#include "worker/daemon/artifact_cache.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/hash.h"

namespace prunelab::worker {

namespace fs = std::filesystem;

ArtifactCache::ArtifactCache(std::string dir) : dir_(std::move(dir)) {}

Status ArtifactCache::Init() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Status::IoError("cannot create cache directory '" + dir_ + "': " + ec.message());
  return Status::Ok();
}

std::string ArtifactCache::PathOf(const std::string& hash) const { return dir_ + "/" + hash + ".bin"; }

std::optional<std::string> ArtifactCache::Get(const std::string& hash) {
  if (hash.empty() || hash.find('/') != std::string::npos) return std::nullopt;
  std::ifstream in(PathOf(hash), std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  if (!MatchesContentName(hash, bytes)) {
    std::error_code ec;
    fs::remove(PathOf(hash), ec);  // corrupt: fetch again
    return std::nullopt;
  }
  return bytes;
}

Status ArtifactCache::Put(const std::string& hash, const std::string& bytes) {
  if (!MatchesContentName(hash, bytes)) return Status::Corruption("artifact does not match its hash " + hash);
  std::string tmp = PathOf(hash) + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return Status::IoError("cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, PathOf(hash), ec);
  if (ec) return Status::IoError("cannot rename into " + PathOf(hash) + ": " + ec.message());
  return Status::Ok();
}

}  // namespace prunelab::worker
