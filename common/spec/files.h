// Files a user names (spec, TorchScript model, dataset): opened with limits and checked at
// submit, so a wrong file fails in seconds with its name, not later on a worker.
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/status.h"
#include "common/base/types.h"

namespace prunelab {

inline constexpr uint64_t kMaxSpecBytes = 1u << 20;           // 1 MiB of YAML
// The CLI reads a model whole before uploading it in chunks; the coordinator's own limit
// (--max-artifact-mb) is checked on the upload's first chunk.
inline constexpr uint64_t kMaxUserModelBytes = kDefaultMaxArtifactBytes;

// Reads a regular file of at most max_bytes. A FIFO, device, socket or directory is refused
// (opened without blocking, so a FIFO cannot hang the reader), as is a dangling symlink.
// `what` names the file in errors ("spec file", "model.torchscript").
StatusOr<std::string> ReadRegularFile(const std::string& path, uint64_t max_bytes, const std::string& what);

// A spec file: regular, at most kMaxSpecBytes, valid UTF-8 (the error gives line and column).
StatusOr<std::string> ReadSpecText(const std::string& path);

// TorchScript files are zip archives (torch.jit.save); InvalidArgument names what it found.
Status CheckTorchScriptBytes(const std::string& bytes, const std::string& what);

// The IDX image and label files a dataset needs in `cfg.path` (train and test), gzip or raw,
// with readable headers; a text corpus folder or token files for language modeling. For checks on this machine (prunelab run): a remote worker's paths
// are its own.
Status CheckDatasetFiles(const DatasetConfig& cfg);

}  // namespace prunelab
