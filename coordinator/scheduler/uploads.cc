#include "coordinator/scheduler/uploads.h"

#include <cstdio>
#include <fmt/printf.h>

#include "common/net/artifact_fetch.h"

namespace prunelab::coordinator {

std::string MibText(uint64_t bytes) {
  return fmt::sprintf("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

namespace {

bool ValidUploadId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
      return false;
  return true;
}

ErrorMsg Refuse(const std::string& code, const std::string& message) { return ErrorMsg{code, message}; }

}  // namespace

ArtifactUploads::ArtifactUploads(ArtifactStore& artifacts, const Clock& clock, UploadLimits limits)
    : artifacts_(artifacts), clock_(clock), limits_(limits) {}

void ArtifactUploads::Drop(const std::string& id) {
  artifacts_.Discard(id);
  uploads_.erase(id);
}

void ArtifactUploads::Expire() {
  const int64_t now = clock_.NowMs();
  for (auto it = uploads_.begin(); it != uploads_.end();) {
    auto next = std::next(it);
    if (now - it->second.last_ms > limits_.stale_after_ms) Drop(it->first);
    it = next;
  }
}

Message ArtifactUploads::OnChunk(const PutArtifactChunkMsg& m) {
  if (!IsContentName(m.hash))
    return Refuse("invalid_upload", "an artifact is named by its content hash (64 hex characters, BLAKE2b-256)");
  if (!ValidUploadId(m.upload_id))
    return Refuse("invalid_upload", "upload id must be 1-64 characters of [A-Za-z0-9_-]");
  if (m.total_bytes == 0) return Refuse("invalid_upload", "an artifact of 0 bytes");
  if (m.total_bytes > limits_.max_artifact_bytes)
    return Refuse("artifact_too_large", "the artifact is " + MibText(m.total_bytes) + "; this coordinator takes at most " +
                                            MibText(limits_.max_artifact_bytes) +
                                            " per artifact (prunelab-coordinator --max-artifact-mb)");
  if (m.data.size() > kMaxArtifactChunkBytes)
    return Refuse("invalid_upload", "a chunk of " + MibText(m.data.size()) + "; chunks are at most " +
                                        MibText(kMaxArtifactChunkBytes));
  if (m.offset > m.total_bytes || m.data.size() > m.total_bytes - m.offset)
    return Refuse("invalid_upload", "chunk at byte " + std::to_string(m.offset) + " of " + std::to_string(m.data.size()) +
                                        " bytes runs past the artifact's " + std::to_string(m.total_bytes) + " bytes");
  if (ContentHash(m.data) != m.chunk_hash)
    return Refuse("bad_chunk", "chunk at byte " + std::to_string(m.offset) + " failed its hash check; send it again");

  auto it = uploads_.find(m.upload_id);
  // Content-addressed: an artifact already here is not uploaded twice.
  auto have = artifacts_.Size(m.hash);
  if (!have.ok()) return Refuse("store_error", have.status().ToString());
  if (have.value() && *have.value() == m.total_bytes) {
    if (it != uploads_.end()) Drop(m.upload_id);
    return PutArtifactReplyMsg{m.hash, m.total_bytes, true};
  }
  if (it == uploads_.end()) {
    if (m.offset != 0) return PutArtifactReplyMsg{m.hash, 0, false};  // unknown here (a restart): from the start
    if (uploads_.size() >= limits_.max_uploads)
      return Refuse("too_many_uploads", std::to_string(uploads_.size()) + " uploads are in progress, the most this "
                                        "coordinator takes at once; try again shortly");
    if (!artifacts_.HasRoom(m.total_bytes))
      return Refuse("store_full", "no room for an artifact of " + MibText(m.total_bytes) + " in " + artifacts_.Where() +
                                      " (with the store's reserve, --min-free-mb); free disk space and submit again");
    Upload u;
    u.hash = m.hash;
    u.total = m.total_bytes;
    u.hasher = std::make_unique<ContentHasher>();
    it = uploads_.emplace(m.upload_id, std::move(u)).first;
  }
  Upload& u = it->second;
  if (u.hash != m.hash || u.total != m.total_bytes)
    return Refuse("invalid_upload", "upload " + m.upload_id + " was started for another artifact; use a new upload id");
  u.last_ms = clock_.NowMs();
  if (m.offset != u.received) return PutArtifactReplyMsg{m.hash, u.received, false};  // a resend, or ahead of us
  if (Status st = artifacts_.Append(m.upload_id, m.data); !st.ok()) {
    Drop(m.upload_id);
    return Refuse("store_error", "upload dropped: " + st.ToString());
  }
  u.hasher->Update(m.data);
  u.received += m.data.size();
  if (u.received < u.total) return PutArtifactReplyMsg{m.hash, u.received, false};
  const std::string got = u.hasher->Final();
  if (got != m.hash) {
    Drop(m.upload_id);
    return Refuse("artifact_corrupted", "the " + std::to_string(m.total_bytes) + " bytes uploaded hash to " + got +
                                            ", not to " + m.hash + "; upload again from byte 0");
  }
  Status st = artifacts_.Publish(m.upload_id, m.hash);
  uploads_.erase(m.upload_id);
  if (!st.ok()) {
    artifacts_.Discard(m.upload_id);
    return Refuse("store_error", "upload not stored: " + st.ToString());
  }
  return PutArtifactReplyMsg{m.hash, m.total_bytes, true};
}

}  // namespace prunelab::coordinator
