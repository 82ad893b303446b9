#include "common/base/file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

namespace prunelab {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno("cannot write", path_);
      data.remove_prefix(static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
      written_since_hint_ += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }
  // Dirty pages of a large upload do not pile up in the page cache, and the fsync at the
  // end has little left to wait for.
  void StartWriteback() override {
    if (written_since_hint_ == 0) return;
    (void)::sync_file_range(fd_, static_cast<off_t>(size_ - written_since_hint_), static_cast<off_t>(written_since_hint_),
                            SYNC_FILE_RANGE_WRITE);
    written_since_hint_ = 0;
  }
  Status Sync() override { return ::fdatasync(fd_) == 0 ? Status::Ok() : Errno("cannot sync", path_); }
  Status Close() override {
    const int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0 ? Status::Ok() : Errno("cannot close", path_);
  }

 private:
  int fd_;
  const std::string path_;
  uint64_t size_ = 0;
  uint64_t written_since_hint_ = 0;
};

class PosixFileSystem final : public FileSystem {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot create", path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }
  StatusOr<std::optional<uint64_t>> FileSize(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return std::optional<uint64_t>(static_cast<uint64_t>(st.st_size));
    if (errno == ENOENT) return std::optional<uint64_t>();
    return Errno("cannot stat", path);
  }
  StatusOr<std::string> ReadRange(const std::string& path, uint64_t offset, uint64_t n) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound(path + " does not exist");
      return Errno("cannot open", path);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      Status e = Errno("cannot stat", path);
      ::close(fd);
      return e;
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    std::string out(offset >= size ? 0 : std::min<uint64_t>(n, size - offset), '\0');
    size_t done = 0;
    while (done < out.size()) {
      ssize_t got = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        Status e = got < 0 ? Errno("cannot read", path) : Status::IoError(path + " shrank while being read");
        ::close(fd);
        return e;
      }
      done += static_cast<size_t>(got);
    }
    ::close(fd);
    return out;
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? Status::Ok() : Errno("cannot rename " + from + " to", to);
  }
  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open", dir);
    int rc = ::fsync(fd);
    ::close(fd);
    return rc == 0 ? Status::Ok() : Errno("cannot sync", dir);
  }
  Status Remove(const std::string& path) override {
    return ::unlink(path.c_str()) == 0 || errno == ENOENT ? Status::Ok() : Errno("cannot remove", path);
  }
  Status CreateDirs(const std::string& dir) override {
    std::error_code ec;
    fs::create_directories(dir, ec);
    return ec ? Status::IoError("cannot create " + dir + ": " + ec.message()) : Status::Ok();
  }
  StatusOr<std::vector<std::string>> List(const std::string& dir) override {
    std::error_code ec;
    std::vector<std::string> out;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) out.push_back(it->path().string());
    if (ec) return Status::IoError("cannot list " + dir + ": " + ec.message());
    return out;
  }
};

}  // namespace

StatusOr<std::string> FileSystem::ReadFile(const std::string& path) {
  return ReadRange(path, 0, std::numeric_limits<uint64_t>::max());
}

FileSystem& LocalFileSystem() {
  static PosixFileSystem* fs = new PosixFileSystem();  // never destroyed: used until exit
  return *fs;
}

}  // namespace prunelab
