// Token streams for language modeling: pre-tokenized text as nanoGPT writes it (DIR/train.bin
// and DIR/val.bin: little-endian uint16 ids, one after the other) or as NumPy arrays
// (DIR/train.npy and DIR/val.npy: a 1-D array of uint16, int32 or int64 ids), cut into
// windows of sequence_length + 1 ids: the model reads the first sequence_length, and the
// targets are the same window shifted by one (the next token at every position).
// LibTorch tensors only. Engine-internal.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/status.h"
#include "worker/engine/data/dataset.h"

namespace prunelab::worker {

// The ids of one token file (.bin: uint16; .npy: u2, i4 or i8, 1-D), as int64. Every id must
// lie in [0, vocabulary): the error names the file, the position (token index and byte offset)
// and the id. An empty file is refused naming it.
StatusOr<at::Tensor> ReadTokenFile(const std::string& path, int64_t vocabulary);

// Windows of sequence_length + 1 ids every `stride` ids (stride = sequence_length: windows
// that share one boundary token, so every token but the first is a target once), at most
// max_windows of them (0: all). inputs int64 [N, sequence_length], labels int64 [N,
// sequence_length]. A stream shorter than one window is refused, naming `what` and both lengths.
StatusOr<Dataset> TokenWindows(const at::Tensor& ids, int64_t sequence_length, int64_t stride, int64_t max_windows,
                               const std::string& what);

// DIR/SPLIT.bin, or DIR/SPLIT.npy when there is no .bin; split is "train" or "val" ("test" is
// read as val when DIR/test.* does not exist). Windows as TokenWindows with stride =
// sequence_length.
StatusOr<Dataset> LoadTokenSplit(const std::string& dir, const std::string& split, int64_t sequence_length,
                                 int64_t vocabulary, int64_t max_windows);

}  // namespace prunelab::worker
