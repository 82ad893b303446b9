#include "worker/engine/data/token_data.h"

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/npy.h"

namespace prunelab::worker {
namespace {

StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError(path + ": read failed");
  return ss.str();
}

// Little-endian values of `count` items of `bytes` each, from `data`, as int64.
at::Tensor Widen(const char* data, int64_t count, int64_t bytes) {
  auto out = torch::empty({count}, torch::kLong);
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(data) + i * bytes;
    uint64_t v = 0;
    for (int64_t b = 0; b < bytes; ++b) v |= static_cast<uint64_t>(p[b]) << (8 * b);
    if (bytes == 4) o[i] = static_cast<int32_t>(static_cast<uint32_t>(v));
    else o[i] = static_cast<int64_t>(v);  // u2 is unsigned; i8 keeps its bits
  }
  return out;
}

}  // namespace

StatusOr<at::Tensor> ReadTokenFile(const std::string& path, int64_t vocabulary) {
  auto bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  const std::string& b = bytes.value();
  at::Tensor ids;
  int64_t item = 2;
  size_t offset = 0;
  if (std::filesystem::path(path).extension() == ".npy") {
    auto h = ParseNpyHeader(b, path);
    if (!h.ok()) return h.status();
    if (Status st = CheckNpySize(h.value(), b.size(), path); !st.ok()) return st;
    if (h->shape.size() != 1)
      return Status::InvalidArgument(path + ": token ids must be a 1-D array; this one has shape " +
                                     c10::str(at::IntArrayRef(h->shape)));
    if (h->dtype != "u2" && h->dtype != "i4" && h->dtype != "i8")
      return Status::InvalidArgument(path + ": token ids must be uint16, int32 or int64; this array is '" + h->dtype + "'");
    item = h->item_bytes;
    offset = h->data_offset;
    ids = Widen(b.data() + offset, h->Count(), item);
  } else {
    if (b.size() % 2 != 0)
      return Status::InvalidArgument(path + ": " + std::to_string(b.size()) +
                                     " bytes is not a whole number of uint16 token ids (nanoGPT's .bin format)");
    ids = Widen(b.data(), static_cast<int64_t>(b.size() / 2), 2);
  }
  if (ids.numel() == 0) return Status::InvalidArgument(path + ": no token ids (the split is empty)");
  auto bad = ids.lt(0).logical_or(ids.ge(vocabulary)).nonzero();
  if (bad.size(0) > 0) {
    const int64_t at = bad[0][0].item<int64_t>();
    return Status::InvalidArgument(path + ": token " + std::to_string(at) + " (byte offset " +
                                   std::to_string(offset + at * item) + ") is id " +
                                   std::to_string(ids[at].item<int64_t>()) + ", outside the vocabulary [0, " +
                                   std::to_string(vocabulary) + ") (" + std::to_string(bad.size(0)) +
                                   " such ids in the file); set dataset.vocab_size to the tokenizer's");
  }
  return ids;
}

StatusOr<Dataset> TokenWindows(const at::Tensor& ids, int64_t sequence_length, int64_t stride, int64_t max_windows,
                               const std::string& what) {
  if (sequence_length < 1 || stride < 1) return Status::InvalidArgument("sequence length and stride must be positive");
  const int64_t n = ids.numel();
  if (n < sequence_length + 1)
    return Status::InvalidArgument(what + ": " + std::to_string(n) + " tokens, fewer than one window of sequence_length + 1 = " +
                                   std::to_string(sequence_length + 1) + "; use more text or a shorter sequence_length");
  int64_t windows = (n - sequence_length - 1) / stride + 1;
  if (max_windows > 0) windows = std::min(windows, max_windows);
  auto w = ids.as_strided({windows, sequence_length + 1}, {stride, 1}).clone();
  Dataset d;
  d.inputs = w.slice(1, 0, sequence_length).contiguous();
  d.labels = w.slice(1, 1, sequence_length + 1).contiguous();
  return d;
}

StatusOr<Dataset> LoadTokenSplit(const std::string& dir, const std::string& split, int64_t sequence_length,
                                 int64_t vocabulary, int64_t max_windows) {
  namespace fs = std::filesystem;
  std::string name = split;
  auto exists = [&](const std::string& s) {
    return fs::exists(fs::path(dir) / (s + ".bin")) || fs::exists(fs::path(dir) / (s + ".npy"));
  };
  if (name == "test" && !exists("test")) name = "val";
  if (!exists(name))
    return Status::NotFound(dir + ": no " + name + ".bin or " + name +
                            ".npy (token streams: nanoGPT's train.bin/val.bin of uint16, or 1-D .npy ids)");
  const fs::path bin = fs::path(dir) / (name + ".bin");
  const std::string path = fs::exists(bin) ? bin.string() : (fs::path(dir) / (name + ".npy")).string();
  auto ids = ReadTokenFile(path, vocabulary);
  if (!ids.ok()) return ids.status();
  return TokenWindows(ids.value(), sequence_length, sequence_length, max_windows, path);
}

}  // namespace prunelab::worker
