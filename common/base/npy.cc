#include "common/base/npy.h"

#include <cctype>

namespace prunelab {
namespace {

// The value text after 'key': in a Python dict literal ("{'descr': '<f4', ...}").
std::string Field(const std::string& dict, const std::string& key) {
  auto k = dict.find("'" + key + "'");
  if (k == std::string::npos) return "";
  auto colon = dict.find(':', k);
  if (colon == std::string::npos) return "";
  size_t i = colon + 1;
  while (i < dict.size() && std::isspace(static_cast<unsigned char>(dict[i]))) ++i;
  if (i >= dict.size()) return "";
  if (dict[i] == '\'') {
    auto end = dict.find('\'', i + 1);
    return end == std::string::npos ? "" : dict.substr(i, end - i + 1);
  }
  if (dict[i] == '(') {
    auto end = dict.find(')', i);
    return end == std::string::npos ? "" : dict.substr(i, end - i + 1);
  }
  size_t end = i;
  while (end < dict.size() && dict[end] != ',' && dict[end] != '}') ++end;
  return dict.substr(i, end - i);
}

}  // namespace

StatusOr<NpyHeader> ParseNpyHeader(const std::string& b, const std::string& what) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0)
    return Status::InvalidArgument(what + ": not a NumPy .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(b[6]);
  size_t len = 0, start = 0;
  if (major == 1) {
    len = static_cast<unsigned char>(b[8]) | (static_cast<size_t>(static_cast<unsigned char>(b[9])) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) return Status::InvalidArgument(what + ": truncated .npy header");
    for (int i = 0; i < 4; ++i) len |= static_cast<size_t>(static_cast<unsigned char>(b[8 + i])) << (8 * i);
    start = 12;
  } else {
    return Status::InvalidArgument(what + ": .npy format version " + std::to_string(major) + " is not supported (1, 2, 3)");
  }
  if (len > (1u << 20) || start + len > b.size()) return Status::InvalidArgument(what + ": truncated .npy header");
  const std::string dict = b.substr(start, len);
  NpyHeader h;
  h.data_offset = start + len;
  std::string descr = Field(dict, "descr");
  if (descr.size() < 4) return Status::InvalidArgument(what + ": .npy header has no dtype ('descr')");
  descr = descr.substr(1, descr.size() - 2);  // strip quotes
  const char order = descr[0];
  if (order == '>') return Status::InvalidArgument(what + ": big-endian data ('" + descr + "'); save it little-endian");
  h.dtype = (order == '<' || order == '|' || order == '=') ? descr.substr(1) : descr;
  static const std::vector<std::pair<std::string, int64_t>> kinds{{"u1", 1}, {"i1", 1}, {"b1", 1}, {"u2", 2}, {"i2", 2},
                                                                  {"i4", 4}, {"u4", 4}, {"i8", 8}, {"u8", 8}, {"f4", 4},
                                                                  {"f8", 8}, {"f2", 2}};
  for (const auto& [k, n] : kinds)
    if (h.dtype == k) h.item_bytes = n;
  if (h.item_bytes == 0)
    return Status::InvalidArgument(what + ": dtype '" + descr + "' is not supported (uint8, float32/64, integers)");
  std::string fortran = Field(dict, "fortran_order");
  if (fortran.find("True") != std::string::npos)
    return Status::InvalidArgument(what + ": Fortran-order array; save it with np.ascontiguousarray first");
  std::string shape = Field(dict, "shape");
  if (shape.size() < 2 || shape.front() != '(') return Status::InvalidArgument(what + ": .npy header has no shape");
  std::string cur;
  for (char ch : shape.substr(1)) {
    if (std::isdigit(static_cast<unsigned char>(ch))) {
      cur += ch;
    } else if (ch == ',' || ch == ')') {
      if (!cur.empty()) {
        if (cur.size() > 12) return Status::InvalidArgument(what + ": shape entry too large");
        h.shape.push_back(std::stoll(cur));
      }
      cur.clear();
    } else if (!std::isspace(static_cast<unsigned char>(ch))) {
      return Status::InvalidArgument(what + ": cannot read the shape " + shape);
    }
  }
  return h;
}

Status CheckNpySize(const NpyHeader& h, uint64_t file_size, const std::string& what) {
  const long double need = static_cast<long double>(h.data_offset) + static_cast<long double>(h.Count()) * h.item_bytes;
  if (need > static_cast<long double>(file_size))
    return Status::InvalidArgument(what + ": the file holds " + std::to_string(file_size) + " bytes; its header needs " +
                                   std::to_string(static_cast<uint64_t>(need)) + " (truncated?)");
  return Status::Ok();
}

}  // namespace prunelab
