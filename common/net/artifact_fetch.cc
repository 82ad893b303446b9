#include "common/net/artifact_fetch.h"

#include <algorithm>

#include "common/base/hash.h"

namespace prunelab {

ArtifactReplyMsg ArtifactChunk(const std::string& hash, const std::string& bytes, uint64_t offset, uint32_t max_bytes) {
  ArtifactReplyMsg r;
  r.hash = hash;
  r.found = true;
  r.total_bytes = bytes.size();
  r.offset = std::min<uint64_t>(offset, bytes.size());
  uint32_t n = max_bytes == 0 ? kDefaultArtifactChunkBytes : std::min(max_bytes, kMaxArtifactChunkBytes);
  r.data = bytes.substr(r.offset, n);
  r.chunk_hash = ContentHash(r.data);
  return r;
}

StatusOr<std::string> FetchArtifactChunked(const std::function<StatusOr<Message>(const Message&)>& call,
                                           const std::string& hash, const ChunkedFetchOptions& options,
                                           ChunkedFetchStats* stats) {
  ChunkedFetchStats local;
  ChunkedFetchStats& st = stats ? *stats : local;
  std::string out;
  uint64_t total = 0;
  bool known_total = false;
  while (!known_total || out.size() < total) {
    bool accepted = false;
    std::string last_problem;
    for (int attempt = 0; attempt < std::max(1, options.attempts_per_chunk) && !accepted; ++attempt) {
      auto reply = call(FetchArtifactMsg{hash, out.size(), options.chunk_bytes});
      if (!reply.ok()) {
        last_problem = reply.status().ToString();
        continue;
      }
      if (auto* e = std::get_if<ErrorMsg>(&reply.value())) {
        last_problem = e->code + ": " + e->message;
        continue;
      }
      auto* a = std::get_if<ArtifactReplyMsg>(&reply.value());
      if (!a || a->hash != hash) {
        last_problem = "unexpected reply";
        continue;
      }
      if (!a->found) return Status::NotFound("artifact " + hash + " is not on the coordinator");
      if (a->offset != out.size() || (known_total && a->total_bytes != total) ||
          ContentHash(a->data) != a->chunk_hash || (a->data.empty() && a->total_bytes > out.size())) {
        ++st.corrupt_chunks;
        last_problem = "chunk at byte " + std::to_string(out.size()) + " failed its hash check";
        continue;
      }
      total = a->total_bytes;
      known_total = true;
      out += a->data;
      ++st.chunks;
      accepted = true;
      if (options.on_progress && !options.on_progress(out.size(), total))
        return Status::Unavailable("artifact " + hash + ": download aborted");
    }
    if (!accepted) {
      return Status::Corruption("artifact " + hash + ": gave up at byte " + std::to_string(out.size()) + " after " +
                                std::to_string(options.attempts_per_chunk) + " tries (" + last_problem + ")");
    }
  }
  if (out.size() != total || !MatchesContentName(hash, out))
    return Status::Corruption("artifact " + hash + ": assembled " + std::to_string(out.size()) +
                              " bytes do not match their hash (corrupted at the source?)");
  return out;
}

}  // namespace prunelab
