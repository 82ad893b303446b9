// ArtifactUploads: the coordinator's side of chunked uploads (PutArtifactChunk). Each chunk is
// checked (its own hash, its place, the limits) and appended to the upload's staging area at
// once; the whole artifact's hash is computed as the chunks pass, and the artifact becomes
// visible under its name only when it is complete and matches. Nothing holds more than one
// chunk in memory. Uploads are in order: a chunk before the wanted byte is a resend (answered
// with the byte wanted), one after it or of an unknown upload gets the byte wanted too, so an
// uploader always resumes where the coordinator is (after a lost reply, or a restart that
// dropped the staging files: byte 0).
// Thread-safety: not thread-safe; owned by the Coordinator.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/base/clock.h"
#include "common/base/hash.h"
#include "common/base/types.h"
#include "coordinator/store/artifact_store.h"

namespace prunelab::coordinator {

struct UploadLimits {
  uint64_t max_artifact_bytes = kDefaultMaxArtifactBytes;  // prunelab-coordinator --max-artifact-mb
  uint32_t max_uploads = 32;                               // at once; more are told to retry
  int64_t stale_after_ms = 10 * 60 * 1000;                 // an upload silent this long is dropped
};

class ArtifactUploads {
 public:
  // artifacts and clock must outlive it.
  ArtifactUploads(ArtifactStore& artifacts, const Clock& clock, UploadLimits limits);
  // A PutArtifactReplyMsg, or an ErrorMsg whose code says what to do: bad_chunk (send that
  // chunk again), artifact_corrupted (upload again from byte 0), too_many_uploads (retry
  // later), artifact_too_large / invalid_upload / store_full / store_error (give up: the message
  // says why).
  Message OnChunk(const PutArtifactChunkMsg& m);
  // Drops uploads silent for longer than stale_after_ms (their staging files too).
  void Expire();
  size_t active() const { return uploads_.size(); }
  const UploadLimits& limits() const { return limits_; }

 private:
  struct Upload {
    std::string hash;
    uint64_t total = 0;
    uint64_t received = 0;
    std::unique_ptr<ContentHasher> hasher;
    int64_t last_ms = 0;
  };
  void Drop(const std::string& id);

  ArtifactStore& artifacts_;
  const Clock& clock_;
  UploadLimits limits_;
  std::map<std::string, Upload> uploads_;  // by upload id
};

// "600.0 MiB"
std::string MibText(uint64_t bytes);

}  // namespace prunelab::coordinator
