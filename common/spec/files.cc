#include "common/spec/files.h"

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

Status CheckDatasetFiles(const DatasetConfig& cfg) {
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
