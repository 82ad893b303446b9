#include "common/net/artifact_fetch.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <fmt/printf.h>

#include "common/base/hash.h"

namespace prunelab {

namespace {
// The chunk size of one transfer, adapted to the link (see kMinAdaptiveChunkBytes).
class AdaptiveChunk {
 public:
  explicit AdaptiveChunk(uint32_t configured) : configured_(configured), size_(configured), smallest_(configured) {}
  uint32_t size() const { return size_; }
  uint32_t smallest() const { return smallest_; }
  // A chunk of `sent` bytes got no reply: true when the next try is smaller (not a failure yet).
  bool ShrinkAfterSilence(uint64_t sent) {
    in_a_row_ = 0;
    if (sent <= kMinAdaptiveChunkBytes) return false;
    size_ = static_cast<uint32_t>(std::max<uint64_t>(kMinAdaptiveChunkBytes, sent / 2));
    smallest_ = std::min(smallest_, size_);
    return true;
  }
  void Delivered() {
    if (size_ < configured_ && ++in_a_row_ >= kChunkGrowAfter) {
      size_ = static_cast<uint32_t>(std::min<uint64_t>(configured_, uint64_t{size_} * 2));
      in_a_row_ = 0;
    }
  }

 private:
  const uint32_t configured_;
  uint32_t size_;
  uint32_t smallest_;
  int in_a_row_ = 0;
};
}  // namespace

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
  AdaptiveChunk chunk(std::clamp<uint32_t>(options.chunk_bytes, 1, kMaxArtifactChunkBytes));
  while (!known_total || out.size() < total) {
    bool accepted = false;
    std::string last_problem;
    for (int attempt = 0; attempt < std::max(1, options.attempts_per_chunk) && !accepted; ++attempt) {
      const uint64_t asked = known_total ? std::min<uint64_t>(chunk.size(), total - out.size()) : chunk.size();
      auto reply = call(FetchArtifactMsg{hash, out.size(), chunk.size()});
      if (!reply.ok()) {
        last_problem = reply.status().ToString();
        if (chunk.ShrinkAfterSilence(asked)) {
          ++st.shrunk;
          --attempt;  // a smaller chunk is a new try, not a failed one
        }
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
      chunk.Delivered();
      accepted = true;
      if (options.on_progress && !options.on_progress(out.size(), total))
        return Status::Unavailable("artifact " + hash + ": download aborted");
    }
    if (!accepted) {
      return Status::Corruption("artifact " + hash + ": gave up at byte " + std::to_string(out.size()) + " after " +
                                std::to_string(options.attempts_per_chunk) + " tries (" + last_problem + ")");
    }
  }
  st.smallest_chunk = chunk.smallest();
  if (out.size() != total || !MatchesContentName(hash, out))
    return Status::Corruption("artifact " + hash + ": assembled " + std::to_string(out.size()) +
                              " bytes do not match their hash (corrupted at the source?)");
  return out;
}

namespace {
std::string NewUploadId() {
  std::random_device rd;
  return fmt::sprintf("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}
}  // namespace

Status UploadArtifactChunked(const std::function<StatusOr<Message>(const Message&)>& call, const std::string& hash,
                             const std::string& bytes, const ChunkedUploadOptions& options, ChunkedUploadStats* stats) {
  ChunkedUploadStats local;
  ChunkedUploadStats& st = stats ? *stats : local;
  const uint64_t total = bytes.size();
  AdaptiveChunk chunk(std::clamp<uint32_t>(options.chunk_bytes, 1, kMaxArtifactChunkBytes));
  const int attempts = std::max(1, options.attempts_per_chunk);
  std::string upload_id = NewUploadId();
  uint64_t offset = 0;
  int failures = 0;
  int restarts = 0;
  std::string last_problem;
  while (true) {
    if (failures >= attempts)
      return Status::Unavailable("artifact " + hash.substr(0, 12) + ": upload stalled at byte " + std::to_string(offset) +
                                 " after " + std::to_string(attempts) + " tries (" + last_problem + ")");
    PutArtifactChunkMsg m;
    m.hash = hash;
    m.upload_id = upload_id;
    m.total_bytes = total;
    m.offset = offset;
    m.data = bytes.substr(offset, chunk.size());
    m.chunk_hash = ContentHash(m.data);
    auto reply = call(m);
    if (!reply.ok()) {
      last_problem = reply.status().ToString();
      if (chunk.ShrinkAfterSilence(m.data.size())) {
        ++st.shrunk;  // a smaller chunk is a new try, not a failed one
      } else {
        ++failures;
      }
      continue;
    }
    if (auto* e = std::get_if<ErrorMsg>(&reply.value())) {
      last_problem = e->code + ": " + e->message;
      if (e->code == "bad_chunk") {
        ++st.corrupt_chunks;
        ++failures;
        continue;
      }
      if (e->code == "too_many_uploads") {
        ++failures;
        if (failures >= attempts) return Status::Unavailable(e->message);
        continue;
      }
      if (e->code == "artifact_corrupted" && ++restarts <= 2) {  // start over under a new id
        upload_id = NewUploadId();
        offset = 0;
        continue;
      }
      if (e->code == "artifact_corrupted") return Status::Corruption(e->message);
      return Status::InvalidArgument(e->message);
    }
    auto* r = std::get_if<PutArtifactReplyMsg>(&reply.value());
    if (!r || r->hash != hash || r->next_offset > total) {
      ++failures;
      last_problem = "unexpected reply";
      continue;
    }
    failures = 0;
    st.smallest_chunk = chunk.smallest();
    if (r->complete) return Status::Ok();
    if (r->next_offset == offset + m.data.size()) {
      ++st.chunks;
      chunk.Delivered();
    } else {
      ++st.resumed;
    }
    offset = r->next_offset;
    if (options.on_progress && !options.on_progress(offset, total))
      return Status::Unavailable("artifact " + hash.substr(0, 12) + ": upload aborted");
  }
}

}  // namespace prunelab
