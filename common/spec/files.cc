#include "common/spec/files.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "common/base/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/base/text.h"

namespace prunelab {
namespace {

std::string Hex(const std::string& b, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n && i < b.size(); ++i) {
    auto c = static_cast<unsigned char>(b[i]);
    if (i) out += ' ';
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// First bytes of a file (for magic numbers), through the same checks as ReadRegularFile.
StatusOr<std::string> Head(const std::string& path, size_t n) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::NotFound(path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Status::InvalidArgument(path + " is not a regular file");
  }
  std::string out(n, '\0');
  ssize_t got = read(fd, out.data(), n);
  close(fd);
  if (got < 0) return Status::IoError(path + ": " + std::strerror(errno));
  out.resize(static_cast<size_t>(got));
  return out;
}

const char* FileKind(mode_t m) {
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISDIR(m)) return "a directory";
  return "not a regular file";
}

}  // namespace

StatusOr<std::string> ReadRegularFile(const std::string& path, uint64_t max_bytes, const std::string& what) {
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    std::string why = std::strerror(errno);
    struct stat lst {};
    if (lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) why = "a symlink to a file that does not exist";
    return Status::NotFound(what + ": cannot read '" + path + "' (" + why + ")");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    close(fd);
    return Status::IoError(what + ": cannot stat '" + path + "'");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Status::InvalidArgument(what + ": '" + path + "' is " + FileKind(st.st_mode) + "; give a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    close(fd);
    return Status::InvalidArgument(what + ": '" + path + "' is " + std::to_string(st.st_size) +
                                   " bytes, over the limit of " + std::to_string(max_bytes) + " bytes");
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  out.resize(done);  // a file that shrank while read
  return out;
}

StatusOr<std::string> ReadSpecText(const std::string& path) {
  auto text = ReadRegularFile(path, kMaxSpecBytes, "spec file");
  if (!text.ok()) return text.status();
  size_t bad = 0;
  if (!IsValidUtf8(text.value(), &bad)) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < bad; ++i) {
      if (text.value()[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return Status::InvalidArgument("spec file '" + path + "' is not valid UTF-8: line " + std::to_string(line) +
                                   ", column " + std::to_string(col) + " (byte " + std::to_string(bad) + ": " +
                                   Quoted(text.value().substr(bad, 1)) + "); save it as UTF-8");
  }
  return text;
}

Status CheckTorchScriptBytes(const std::string& bytes, const std::string& what) {
  if (bytes.size() >= 4 && bytes.compare(0, 4, "PK\x03\x04") == 0) return Status::Ok();
  return Status::InvalidArgument(what + " is not a TorchScript file: torch.jit.save writes a zip archive (starts with "
                                 "50 4b 03 04), this starts with " + (bytes.empty() ? "nothing (empty)" : Hex(bytes, 4)) +
                                 "; save the model with torch.jit.save(torch.jit.script(model), PATH)");
}

namespace {
// npy: the four arrays exist, their headers parse, sizes hold, counts agree, labels are 1-D
// integers. folder: train/ has >= 2 class folders with images; test/ (or val/) exists and
// has no class train/ lacks.
Status CheckNpyDataset(const DatasetConfig& cfg) {
  for (const char* split : {"train", "test"}) {
    std::vector<int64_t> counts;
    for (const char* kind : {"images", "labels"}) {
      const std::string path = cfg.path + "/" + split + "_" + kind + ".npy";
      auto head = Head(path, 4096);
      if (!head.ok())
        return Status::NotFound("dataset.path: no " + std::string(split) + "_" + kind + ".npy in '" + cfg.path +
                                "' (an npy dataset has train_images.npy, train_labels.npy, test_images.npy, "
                                "test_labels.npy)");
      auto h = ParseNpyHeader(head.value(), "dataset '" + path + "'");
      if (!h.ok()) return h.status();
      std::error_code ec;
      auto size = std::filesystem::file_size(path, ec);
      PRUNELAB_RETURN_IF_ERROR(CheckNpySize(h.value(), ec ? 0 : size, "dataset '" + path + "'"));
      const bool labels = std::string(kind) == "labels";
      if (labels && (h->shape.size() != 1 || h->dtype[0] == 'f'))
        return Status::InvalidArgument("dataset '" + path + "': labels must be a 1-D integer array (dtype " + h->dtype +
                                       ", " + std::to_string(h->shape.size()) + " dimensions)");
      if (!labels && (h->shape.size() < 3 || h->shape.size() > 4))
        return Status::InvalidArgument("dataset '" + path + "': images must be N x H x W, N x C x H x W or N x H x W x C (" +
                                       std::to_string(h->shape.size()) + " dimensions)");
      if (!labels && h->dtype != "u1" && h->dtype != "f4")
        return Status::InvalidArgument("dataset '" + path + "': images must be uint8 or float32, not " + h->dtype);
      counts.push_back(h->shape.empty() ? 0 : h->shape[0]);
    }
    if (counts[0] != counts[1])
      return Status::InvalidArgument("dataset: " + std::string(split) + "_images.npy holds " + std::to_string(counts[0]) +
                                     " images, " + split + "_labels.npy " + std::to_string(counts[1]) + " labels");
  }
  return Status::Ok();
}

Status CheckFolderDataset(const DatasetConfig& cfg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto classes_of = [&](const std::string& dir, std::vector<std::string>* out) -> Status {
    if (!fs::is_directory(dir, ec)) return Status::NotFound("dataset.path: no '" + dir + "' folder (a folder dataset has "
                                                            "train/ and test/ or val/, one sub-folder per class)");
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (!e.is_directory() || e.path().filename().string()[0] == '.') continue;
      bool image = false;
      for (const auto& f : fs::directory_iterator(e.path(), ec)) {
        std::string x = f.path().extension().string();
        for (auto& ch : x) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        image |= f.is_regular_file() && (x == ".png" || x == ".jpg" || x == ".jpeg");
        if (image) break;
      }
      if (!image) return Status::InvalidArgument("dataset: class folder '" + e.path().string() + "' has no .png/.jpg image");
      out->push_back(e.path().filename().string());
    }
    return Status::Ok();
  };
  std::vector<std::string> train, test;
  PRUNELAB_RETURN_IF_ERROR(classes_of(cfg.path + "/train", &train));
  if (train.size() < 2)
    return Status::InvalidArgument("dataset: '" + cfg.path + "/train' has " + std::to_string(train.size()) +
                                   " class sub-folders; a classifier needs at least 2");
  std::string test_dir = fs::is_directory(cfg.path + "/test", ec) || !fs::is_directory(cfg.path + "/val", ec)
                             ? cfg.path + "/test" : cfg.path + "/val";
  PRUNELAB_RETURN_IF_ERROR(classes_of(test_dir, &test));
  for (const auto& c : test)
    if (std::find(train.begin(), train.end(), c) == train.end())
      return Status::InvalidArgument("dataset: '" + test_dir + "/" + c + "' is a class that train/ does not have");
  if (!cfg.class_names.empty() && cfg.class_names.size() != train.size())
    return Status::InvalidArgument("dataset.classes names " + std::to_string(cfg.class_names.size()) +
                                   " classes; '" + cfg.path + "/train' has " + std::to_string(train.size()) +
                                   " class folders (leave dataset.classes out: the folder names are the classes)");
  return Status::Ok();
}
// Language modeling: a text corpus directory (DIR/train.txt + DIR/val.txt, or text files) and
// the user's tokenizer; or token files (DIR/train.bin + DIR/val.bin, or .npy).
Status CheckLanguageDataset(const DatasetConfig& cfg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(cfg.path, ec))
    return Status::NotFound("dataset.path: '" + cfg.path + "' is not a directory (name " + cfg.name +
                            (cfg.name == "text" ? ": a folder of UTF-8 text files, or train.txt and val.txt)"
                                                : ": a folder with train.bin and val.bin, or train.npy and val.npy)"));
  if (cfg.name == "tokens") {
    for (const char* split : {"train", "val"}) {
      const std::string base = cfg.path + "/" + split;
      if (!fs::is_regular_file(base + ".bin", ec) && !fs::is_regular_file(base + ".npy", ec))
        return Status::NotFound("dataset.path: no " + std::string(split) + ".bin or " + split + ".npy in '" + cfg.path +
                                "' (token files: uint16 ids as nanoGPT writes them, or a 1-D .npy of ids)");
    }
    return Status::Ok();
  }
  bool any = false;
  for (const auto& e : fs::directory_iterator(cfg.path, ec))
    if (e.is_regular_file(ec)) any = true;
  if (!any) return Status::NotFound("dataset.path: '" + cfg.path + "' holds no files (name text: UTF-8 text files)");
  if (!cfg.tokenizer.empty()) {
    auto head = Head(cfg.tokenizer, 1);
    if (!head.ok()) return Status::NotFound("dataset.tokenizer: " + head.status().message());
  }
  return Status::Ok();
}
}  // namespace

Status CheckDatasetFiles(const DatasetConfig& cfg) {
  if (cfg.name == "text" || cfg.name == "tokens") return CheckLanguageDataset(cfg);
  if (cfg.name == "npy") return CheckNpyDataset(cfg);
  if (cfg.name == "folder") return CheckFolderDataset(cfg);
  for (const char* split : {"train", "t10k"}) {
    for (const auto& [kind, magic] : {std::pair<const char*, char>{"images-idx3-ubyte", 3}, {"labels-idx1-ubyte", 1}}) {
      const std::string base = cfg.path + "/" + split + "-" + kind;
      auto gz = Head(base + ".gz", 4);
      auto raw = gz.ok() ? gz : Head(base, 4);
      if (!raw.ok())
        return Status::NotFound("dataset.path: no " + std::string(split) + "-" + kind + "(.gz) in '" + cfg.path +
                                "' (" + raw.status().message() + ")");
      const std::string& h = raw.value();
      const bool is_gzip = h.size() >= 2 && static_cast<unsigned char>(h[0]) == 0x1f && static_cast<unsigned char>(h[1]) == 0x8b;
      const bool is_idx = h.size() == 4 && h[0] == 0 && h[1] == 0 && h[2] == 8 && h[3] == magic;
      if (!is_gzip && !is_idx)
        return Status::InvalidArgument("dataset.path: '" + (gz.ok() ? base + ".gz" : base) +
                                       "' is neither gzip nor an IDX file (starts with " + Hex(h, 4) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace prunelab
