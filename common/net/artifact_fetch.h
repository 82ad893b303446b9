// Artifact transfer in chunks, both ways. Download: the coordinator serves an artifact (baseline checkpoint,
// pruned variant, user model) a chunk at a time; every chunk carries its own content hash
// and is fetched again when it does not match, and the assembled artifact must match the
// hash it is named by. Used by workers (into their cache) and by `prunelab export`. Upload
// (PutArtifactChunk): users' models from the CLI and baselines/variants from workers, in
// order, resumed at the byte the coordinator asks for.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/base/status.h"
#include "common/base/types.h"

namespace prunelab {

inline constexpr uint32_t kDefaultArtifactChunkBytes = 1u << 20;  // 1 MiB
inline constexpr uint32_t kMaxArtifactChunkBytes = 16u << 20;
// Slow or lossy links: a chunk whose reply does not come in time is asked for (or sent) again
// at half the size, down to this, before the silence counts as a failed try; after
// kChunkGrowAfter chunks in a row go through, the size doubles again (up to the configured
// one). So a link that moves 64 KiB per RPC timeout still carries any artifact.
inline constexpr uint32_t kMinAdaptiveChunkBytes = 64u << 10;
inline constexpr int kChunkGrowAfter = 4;

struct ChunkedFetchOptions {
  uint32_t chunk_bytes = kDefaultArtifactChunkBytes;
  int attempts_per_chunk = 4;  // a chunk that keeps arriving corrupted fails the fetch
  // Called after every chunk with bytes received so far and the total; false aborts.
  std::function<bool(uint64_t done, uint64_t total)> on_progress;
};

struct ChunkedFetchStats {
  uint32_t chunks = 0;          // chunks accepted
  uint32_t corrupt_chunks = 0;  // chunks rejected by their hash and fetched again
  uint32_t shrunk = 0;          // times a silent chunk was asked for again at half the size
  uint32_t smallest_chunk = 0;  // bytes: the smallest chunk size used
};

// call: one request/reply with the coordinator (e.g. RpcClient::Call bound to a timeout).
// NotFound when the coordinator does not have it; Corruption when it keeps arriving corrupted.
StatusOr<std::string> FetchArtifactChunked(const std::function<StatusOr<Message>(const Message&)>& call,
                                           const std::string& hash, const ChunkedFetchOptions& options = {},
                                           ChunkedFetchStats* stats = nullptr);

inline constexpr uint32_t kDefaultUploadChunkBytes = 4u << 20;  // 4 MiB

struct ChunkedUploadOptions {
  uint32_t chunk_bytes = kDefaultUploadChunkBytes;
  int attempts_per_chunk = 4;  // failures in a row (no reply, a chunk refused by its hash) before giving up
  std::function<bool(uint64_t done, uint64_t total)> on_progress;  // false aborts
};

struct ChunkedUploadStats {
  uint32_t chunks = 0;          // chunks sent and taken
  uint32_t corrupt_chunks = 0;  // refused by their hash and sent again
  uint32_t resumed = 0;         // times the coordinator asked for another byte than the next
  uint32_t shrunk = 0;          // times a silent chunk was sent again at half the size
  uint32_t smallest_chunk = 0;  // bytes: the smallest chunk size used
};

// Uploads `bytes` (named hash) until the coordinator has it whole and verified. OK also when
// it had it already. Unavailable: no reply (or "too many uploads") attempts times in a row —
// retry later; anything else (InvalidArgument, Corruption): the coordinator refused it, the
// status carries its reason (e.g. the size limit), and retrying will not help.
Status UploadArtifactChunked(const std::function<StatusOr<Message>(const Message&)>& call, const std::string& hash,
                             const std::string& bytes, const ChunkedUploadOptions& options = {},
                             ChunkedUploadStats* stats = nullptr);

// The coordinator's side: chunk [offset, offset + max_bytes) of `bytes` (which hash names).
ArtifactReplyMsg ArtifactChunk(const std::string& hash, const std::string& bytes, uint64_t offset, uint32_t max_bytes);

}  // namespace prunelab
