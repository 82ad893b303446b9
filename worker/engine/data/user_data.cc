#include "worker/engine/data/user_data.h"

#include <torch/torch.h>

#include <stb/stb_image.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace prunelab::worker {
namespace {

namespace fs = std::filesystem;

StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return Status::NotFound(what + ": no file '" + path + "'");
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Status::IoError(what + ": cannot read '" + path + "'");
  return bytes;
}

torch::ScalarType TypeOf(const std::string& dtype) {
  if (dtype == "u1" || dtype == "b1") return torch::kUInt8;
  if (dtype == "i1") return torch::kInt8;
  if (dtype == "i2" || dtype == "u2") return torch::kInt16;
  if (dtype == "i4" || dtype == "u4") return torch::kInt32;
  if (dtype == "i8" || dtype == "u8") return torch::kInt64;
  if (dtype == "f2") return torch::kFloat16;
  if (dtype == "f8") return torch::kFloat64;
  return torch::kFloat32;
}

StatusOr<torch::Tensor> LoadNpy(const std::string& path, const std::string& what) {
  auto bytes = ReadFile(path, what);
  if (!bytes.ok()) return bytes.status();
  auto h = ParseNpyHeader(bytes.value(), what + " '" + path + "'");
  if (!h.ok()) return h.status();
  PRUNELAB_RETURN_IF_ERROR(CheckNpySize(h.value(), bytes->size(), what + " '" + path + "'"));
  auto t = torch::from_blob(const_cast<char*>(bytes->data() + h->data_offset), h->shape, TypeOf(h->dtype)).clone();
  return t;
}

// [N, C, H, W] from N x H x W, N x C x H x W or N x H x W x C.
StatusOr<torch::Tensor> ToNchw(const torch::Tensor& x, const std::string& what) {
  auto small = [](int64_t c) { return c == 1 || c == 3 || c == 4; };
  if (x.dim() == 3) return x.unsqueeze(1);
  if (x.dim() == 4) {
    if (small(x.size(3)) && !small(x.size(1))) return x.permute({0, 3, 1, 2}).contiguous();
    if (small(x.size(1))) return x;
    if (small(x.size(3))) return x.permute({0, 3, 1, 2}).contiguous();
  }
  return Status::InvalidArgument(what + ": images of shape " + c10::str(x.sizes()) +
                                 " (expected N x H x W, N x C x H x W or N x H x W x C with C in 1, 3, 4)");
}

// Channels, size and normalization as the model takes them.
StatusOr<torch::Tensor> Prepare(torch::Tensor x, const DatasetConfig& cfg, const std::vector<int64_t>& input_shape,
                                const std::string& what) {
  x = x.to(torch::kFloat32);
  int64_t want_c = input_shape.size() == 3 ? input_shape[0] : x.size(1);
  if (x.size(1) == 4) x = x.slice(1, 0, 3);  // drop alpha
  if (want_c == 3 && x.size(1) == 1) x = x.expand({-1, 3, -1, -1}).contiguous();
  if (want_c == 1 && x.size(1) == 3) {
    auto w = torch::tensor({0.299f, 0.587f, 0.114f}).view({1, 3, 1, 1});
    x = (x * w).sum(1, true);
  }
  if (x.size(1) != want_c)
    return Status::InvalidArgument(what + ": images have " + std::to_string(x.size(1)) + " channels; model.input_shape wants " +
                                   std::to_string(want_c));
  if (input_shape.size() == 3 && (x.size(2) != input_shape[1] || x.size(3) != input_shape[2])) {
    namespace F = torch::nn::functional;
    const bool down = x.size(2) > input_shape[1] || x.size(3) > input_shape[2];
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{input_shape[1], input_shape[2]})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(down));
  }
  const int64_t c = x.size(1);
  for (const auto* v : {&cfg.mean, &cfg.std})
    if (!v->empty() && static_cast<int64_t>(v->size()) != 1 && static_cast<int64_t>(v->size()) != c)
      return Status::InvalidArgument(std::string("dataset.") + (v == &cfg.mean ? "mean" : "std") + " has " +
                                     std::to_string(v->size()) + " values; the model takes " + std::to_string(c) +
                                     " channels (give 1 or " + std::to_string(c) + ")");
  if (!cfg.mean.empty()) {
    auto m = torch::tensor(std::vector<float>(cfg.mean.begin(), cfg.mean.end()));
    x = x - m.view({1, -1, 1, 1});
  }
  if (!cfg.std.empty()) {
    auto s = torch::tensor(std::vector<float>(cfg.std.begin(), cfg.std.end()));
    x = x / s.view({1, -1, 1, 1});
  }
  return x.contiguous();
}

Status CheckLabels(const torch::Tensor& labels, const DatasetConfig& cfg, const std::string& what) {
  if (labels.numel() == 0) return Status::Ok();
  int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  if (lo < 0) return Status::InvalidArgument(what + ": label " + std::to_string(lo) + " is negative (labels are 0..classes-1)");
  if (!cfg.class_names.empty() && hi >= static_cast<int64_t>(cfg.class_names.size()))
    return Status::InvalidArgument(what + ": label " + std::to_string(hi) + " is out of range: dataset.classes names " +
                                   std::to_string(cfg.class_names.size()) + " classes (0.." +
                                   std::to_string(cfg.class_names.size() - 1) + ")");
  return Status::Ok();
}

StatusOr<Dataset> LoadNpyDataset(const DatasetConfig& cfg, bool train, uint32_t subset,
                                 const std::vector<int64_t>& input_shape) {
  const std::string split = train ? "train" : "test";
  const std::string ip = cfg.path + "/" + split + "_images.npy", lp = cfg.path + "/" + split + "_labels.npy";
  auto images = LoadNpy(ip, "dataset");
  if (!images.ok()) return images.status();
  auto labels = LoadNpy(lp, "dataset");
  if (!labels.ok()) return labels.status();
  if (labels->dim() != 1 || labels->is_floating_point())
    return Status::InvalidArgument("dataset '" + lp + "': labels must be a 1-D integer array, got " +
                                   std::string(c10::toString(labels->scalar_type())) + " " + c10::str(labels->sizes()));
  if (labels->size(0) != images->size(0))
    return Status::InvalidArgument("dataset: '" + ip + "' holds " + std::to_string(images->size(0)) + " images, '" + lp +
                                   "' " + std::to_string(labels->size(0)) + " labels");
  auto nchw = ToNchw(images.value(), "dataset '" + ip + "'");
  if (!nchw.ok()) return nchw.status();
  torch::Tensor x = nchw.value(), y = labels->to(torch::kInt64);
  if (subset > 0 && subset < x.size(0)) {
    x = x.slice(0, 0, subset);
    y = y.slice(0, 0, subset);
  }
  if (x.scalar_type() == torch::kUInt8) x = x.to(torch::kFloat32).div_(255.0);
  PRUNELAB_RETURN_IF_ERROR(CheckLabels(y, cfg, "dataset '" + lp + "'"));
  auto prepared = Prepare(x, cfg, input_shape, "dataset '" + ip + "'");
  if (!prepared.ok()) return prepared.status();
  Dataset d{prepared.value(), y};
  d.classes = cfg.class_names.empty() ? (y.numel() ? y.max().item<int64_t>() + 1 : 0)
                                      : static_cast<int64_t>(cfg.class_names.size());
  return d;
}

bool IsImage(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

std::string SplitDir(const std::string& dir, bool train) {
  if (train) return dir + "/train";
  std::error_code ec;
  return fs::is_directory(dir + "/test", ec) || !fs::is_directory(dir + "/val", ec) ? dir + "/test" : dir + "/val";
}

StatusOr<Dataset> LoadFolderDataset(const DatasetConfig& cfg, bool train, uint32_t subset,
                                    const std::vector<int64_t>& input_shape) {
  auto classes = FolderClasses(cfg.path);
  if (!classes.ok()) return classes.status();
  const std::string root = SplitDir(cfg.path, train);
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    return Status::NotFound("dataset.path: no '" + root + "' folder (a folder dataset has train/ and test/ or val/, one "
                            "sub-folder per class)");
  // Files per class, sorted; then taken class by class in turn so a subset stays balanced.
  std::vector<std::vector<fs::path>> files(classes->size());
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    std::string name = entry.path().filename().string();
    auto it = std::find(classes->begin(), classes->end(), name);
    if (it == classes->end())
      return Status::InvalidArgument("dataset: '" + entry.path().string() + "' is a class that train/ does not have "
                                     "(classes: the sub-folders of train/)");
    auto& list = files[it - classes->begin()];
    for (const auto& f : fs::directory_iterator(entry.path(), ec))
      if (f.is_regular_file() && IsImage(f.path())) list.push_back(f.path());
    std::sort(list.begin(), list.end());
  }
  std::vector<std::pair<fs::path, int64_t>> order;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (size_t c = 0; c < files.size(); ++c)
      if (i < files[c].size()) {
        order.emplace_back(files[c][i], static_cast<int64_t>(c));
        any = true;
      }
    if (!any) break;
  }
  if (order.empty()) return Status::NotFound("dataset: no .png/.jpg images under '" + root + "'");
  if (subset > 0 && subset < order.size()) order.resize(subset);
  const int want_c = input_shape.size() == 3 ? static_cast<int>(input_shape[0]) : 3;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (const auto& [path, label] : order) {
    auto bytes = ReadFile(path.string(), "dataset");
    if (!bytes.ok()) return bytes.status();
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes->data()),
                                              static_cast<int>(bytes->size()), &w, &h, &c, want_c == 1 ? 1 : 3);
    if (!px)
      return Status::InvalidArgument("dataset: cannot decode '" + path.string() + "': " + stbi_failure_reason() +
                                     " (PNG and JPEG are read)");
    auto t = torch::from_blob(px, {1, h, w, want_c == 1 ? 1 : 3}, torch::kUInt8).permute({0, 3, 1, 2}).to(torch::kFloat32).div(255.0);
    stbi_image_free(px);
    // Resized one at a time: images of a folder may differ in size.
    auto prepared = Prepare(t, DatasetConfig{}, input_shape, "dataset '" + path.string() + "'");
    if (!prepared.ok()) return prepared.status();
    images.push_back(prepared.value());
    labels.push_back(label);
  }
  auto x = torch::cat(images, 0);
  DatasetConfig norm = cfg;
  auto prepared = Prepare(x, norm, {}, "dataset '" + root + "'");  // normalization only
  if (!prepared.ok()) return prepared.status();
  Dataset d{prepared.value(), torch::tensor(labels, torch::kInt64)};
  d.classes = static_cast<int64_t>(classes->size());
  return d;
}

}  // namespace

StatusOr<std::vector<std::string>> FolderClasses(const std::string& dir) {
  std::error_code ec;
  const std::string train = dir + "/train";
  if (!fs::is_directory(train, ec))
    return Status::NotFound("dataset.path: no '" + train + "' folder (a folder dataset has train/ and test/ or val/, one "
                            "sub-folder per class)");
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(train, ec))
    if (e.is_directory() && e.path().filename().string()[0] != '.') classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  if (classes.size() < 2) return Status::InvalidArgument("dataset: '" + train + "' has " + std::to_string(classes.size()) +
                                                         " class sub-folders; a classifier needs at least 2");
  return classes;
}

StatusOr<Dataset> LoadUserDataset(const DatasetConfig& cfg, bool train, uint32_t subset,
                                  const std::vector<int64_t>& input_shape) {
  try {
    if (cfg.name == "npy") return LoadNpyDataset(cfg, train, subset, input_shape);
    if (cfg.name == "folder") return LoadFolderDataset(cfg, train, subset, input_shape);
  } catch (const c10::Error& e) {
    return Status::InvalidArgument("dataset '" + cfg.path + "': " + e.what_without_backtrace());
  }
  return Status::InvalidArgument("dataset.name '" + cfg.name + "' is not a user format (npy, folder)");
}

}  // namespace prunelab::worker
