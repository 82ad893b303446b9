// Artifact download in chunks: the coordinator serves an artifact (baseline checkpoint,
// pruned variant, user model) a chunk at a time; every chunk carries its own content hash
// and is fetched again when it does not match, and the assembled artifact must match the
// hash it is named by. Used by workers (into their cache) and by `prunelab export`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/base/status.h"
#include "common/base/types.h"

namespace prunelab {

inline constexpr uint32_t kDefaultArtifactChunkBytes = 1u << 20;  // 1 MiB
inline constexpr uint32_t kMaxArtifactChunkBytes = 16u << 20;

struct ChunkedFetchOptions {
  uint32_t chunk_bytes = kDefaultArtifactChunkBytes;
  int attempts_per_chunk = 4;  // a chunk that keeps arriving corrupted fails the fetch
  // Called after every chunk with bytes received so far and the total; false aborts.
  std::function<bool(uint64_t done, uint64_t total)> on_progress;
};

struct ChunkedFetchStats {
  uint32_t chunks = 0;          // chunks accepted
  uint32_t corrupt_chunks = 0;  // chunks rejected by their hash and fetched again
};

// call: one request/reply with the coordinator (e.g. RpcClient::Call bound to a timeout).
// NotFound when the coordinator does not have it; Corruption when it keeps arriving corrupted.
StatusOr<std::string> FetchArtifactChunked(const std::function<StatusOr<Message>(const Message&)>& call,
                                           const std::string& hash, const ChunkedFetchOptions& options = {},
                                           ChunkedFetchStats* stats = nullptr);

// The coordinator's side: chunk [offset, offset + max_bytes) of `bytes` (which hash names).
ArtifactReplyMsg ArtifactChunk(const std::string& hash, const std::string& bytes, uint64_t offset, uint32_t max_bytes);

}  // namespace prunelab
