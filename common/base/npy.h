// NumPy .npy files (format 1.0-3.0): the header (dtype, shape) and where the data starts.
// Used at submit (headers only) and by the worker (whole arrays). No dependencies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace prunelab {

struct NpyHeader {
  std::string dtype;            // numpy descr without the byte-order mark: u1, i1, f4, f8, i4, i8, ...
  int64_t item_bytes = 0;
  std::vector<int64_t> shape;
  size_t data_offset = 0;       // where the C-order little-endian values begin
  int64_t Count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Parses the header at the start of `bytes` (the whole file, or at least its header).
// Refuses Fortran order, big-endian data, object arrays; errors name `what`.
StatusOr<NpyHeader> ParseNpyHeader(const std::string& bytes, const std::string& what);

// The header plus a check that `file_size` holds all of its values.
Status CheckNpySize(const NpyHeader& h, uint64_t file_size, const std::string& what);

}  // namespace prunelab
