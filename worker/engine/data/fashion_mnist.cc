#include "worker/engine/data/fashion_mnist.h"

#include <torch/torch.h>

#include <zlib.h>

namespace prunelab::worker {
namespace {

StatusOr<std::string> ReadMaybeGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files transparently too
  if (!f) return Status::NotFound(path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  bool err = n < 0;
  gzclose(f);
  if (err) return Status::IoError("cannot decompress " + path);
  return out;
}

uint32_t BigEndian32(const std::string& s, size_t off) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[off + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

}  // namespace

StatusOr<Dataset> ParseIdx(const std::string& img, const std::string& lab, uint32_t subset) {
  if (img.size() < 16 || BigEndian32(img, 0) != 0x00000803)
    return Status::Corruption("image file is not an IDX3 ubyte file (magic 0x00000803)");
  if (lab.size() < 8 || BigEndian32(lab, 0) != 0x00000801)
    return Status::Corruption("label file is not an IDX1 ubyte file (magic 0x00000801)");
  int64_t n = BigEndian32(img, 4), rows = BigEndian32(img, 8), cols = BigEndian32(img, 12);
  int64_t nl = BigEndian32(lab, 4);
  if (n != nl) return Status::Corruption("image count " + std::to_string(n) + " != label count " + std::to_string(nl));
  if (static_cast<int64_t>(img.size()) < 16 + n * rows * cols || static_cast<int64_t>(lab.size()) < 8 + n)
    return Status::Corruption("IDX file shorter than its header says");
  if (subset > 0 && subset < n) n = subset;
  auto bytes = torch::from_blob(const_cast<char*>(img.data() + 16), {n, 1, rows, cols}, torch::kUInt8);
  Dataset d;
  d.inputs = bytes.to(torch::kFloat32).div_(255.0).sub_(kFashionMnistMean).div_(kFashionMnistStd);
  d.labels = torch::from_blob(const_cast<char*>(lab.data() + 8), {n}, torch::kUInt8).to(torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    if (static_cast<unsigned char>(lab[8 + i]) > 9) return Status::Corruption("label out of range 0..9");
  }
  return d;
}

StatusOr<Dataset> LoadFashionMnist(const std::string& dir, bool train, uint32_t subset) {
  std::string prefix = dir + "/" + (train ? "train" : "t10k");
  auto img = ReadMaybeGzip(prefix + "-images-idx3-ubyte.gz");
  if (!img.ok()) img = ReadMaybeGzip(prefix + "-images-idx3-ubyte");
  auto lab = ReadMaybeGzip(prefix + "-labels-idx1-ubyte.gz");
  if (!lab.ok()) lab = ReadMaybeGzip(prefix + "-labels-idx1-ubyte");
  if (!img.ok() || !lab.ok())
    return Status::NotFound("Fashion-MNIST not found in '" + dir + "' (expected " + prefix +
                            "-{images-idx3,labels-idx1}-ubyte[.gz]); install it with "
                            "`apt-get install dataset-fashion-mnist` or run cluster/install-deps.sh");
  return ParseIdx(img.value(), lab.value(), subset);
}

}  // namespace prunelab::worker
