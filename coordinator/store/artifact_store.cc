#include "coordinator/store/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <fmt/printf.h>

#include "common/base/hash.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {
namespace {

namespace fs = std::filesystem;

Status Errno(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Only content names become file names: a peer naming "../store/CURRENT" reads nothing.
bool IsArtifactName(const std::string& hash) { return IsContentName(hash) || IsLegacyContentName(hash); }

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Errno("cannot open", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::Ok() : Errno("cannot sync", dir);
}

class KvArtifactStore final : public ArtifactStore {
 public:
  explicit KvArtifactStore(Store& store) : store_(store) {}

  StatusOr<std::optional<uint64_t>> Size(const std::string& hash) override {
    auto v = store_.Get(ArtifactKey(hash));
    if (!v.ok()) return v.status();
    if (!v.value()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(v.value()->size());
  }
  StatusOr<std::string> Read(const std::string& hash, uint64_t offset, uint64_t n) override {
    auto v = store_.Get(ArtifactKey(hash));
    if (!v.ok()) return v.status();
    if (!v.value()) return Status::NotFound("artifact " + hash + " is not in the store");
    const std::string& bytes = *v.value();
    return offset >= bytes.size() ? std::string() : bytes.substr(offset, n);
  }
  Status Put(const std::string& hash, std::string_view bytes) override {
    return store_.Apply({{ArtifactKey(hash), std::string(bytes)}});
  }
  Status Append(const std::string& upload_id, std::string_view data) override {
    staging_[upload_id].append(data);
    return Status::Ok();
  }
  Status Publish(const std::string& upload_id, const std::string& hash) override {
    auto it = staging_.find(upload_id);
    if (it == staging_.end()) return Status::NotFound("no upload " + upload_id);
    Status st = store_.Apply({{ArtifactKey(hash), std::move(it->second)}});
    staging_.erase(it);
    return st;
  }
  void Discard(const std::string& upload_id) override { staging_.erase(upload_id); }
  bool HasRoom(uint64_t) override { return true; }
  std::string Where() const override { return "memory"; }

 private:
  Store& store_;
  std::map<std::string, std::string> staging_;
};

class FileArtifactStore final : public ArtifactStore {
 public:
  FileArtifactStore(std::string dir, Store* legacy, uint64_t min_free_bytes, bool read_only)
      : dir_(std::move(dir)), staging_dir_(dir_ + "/staging"), legacy_(legacy), min_free_(min_free_bytes),
        read_only_(read_only) {}
  ~FileArtifactStore() override {
    for (auto& [id, f] : open_) ::close(f.fd);
  }

  StatusOr<std::optional<uint64_t>> Size(const std::string& hash) override {
    if (!IsArtifactName(hash)) return std::optional<uint64_t>();
    struct stat st {};
    if (::stat(Path(hash).c_str(), &st) == 0) return std::optional<uint64_t>(static_cast<uint64_t>(st.st_size));
    if (errno != ENOENT) return Errno("cannot stat", Path(hash));
    auto old = Legacy(hash);
    if (!old.ok()) return old.status();
    if (!old.value()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(old.value()->size());
  }

  StatusOr<std::string> Read(const std::string& hash, uint64_t offset, uint64_t n) override {
    if (!IsArtifactName(hash)) return Status::NotFound("'" + hash.substr(0, 80) + "' is not an artifact name");
    int fd = ::open(Path(hash).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) return Errno("cannot open", Path(hash));
      auto old = Legacy(hash);
      if (!old.ok()) return old.status();
      if (!old.value()) return Status::NotFound("artifact " + hash + " is not in " + dir_);
      return offset >= old.value()->size() ? std::string() : old.value()->substr(offset, n);
    }
    std::string out;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && offset < static_cast<uint64_t>(st.st_size))
      out.resize(std::min<uint64_t>(n, static_cast<uint64_t>(st.st_size) - offset));
    size_t done = 0;
    while (done < out.size()) {
      ssize_t got = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        Status e = Errno("cannot read", Path(hash));
        ::close(fd);
        return e;
      }
      done += static_cast<size_t>(got);
    }
    ::close(fd);
    return out;
  }

  Status Put(const std::string& hash, std::string_view bytes) override {
    if (!IsArtifactName(hash)) return Status::InvalidArgument("'" + hash.substr(0, 80) + "' is not an artifact name");
    if (read_only_) return Status::InvalidArgument("artifact store " + dir_ + " is open read-only");
    const std::string id = "put-" + RandomId();
    Status st = Append(id, bytes);
    if (st.ok()) st = Publish(id, hash);
    if (!st.ok()) Discard(id);
    return st;
  }

  Status Append(const std::string& upload_id, std::string_view data) override {
    if (read_only_) return Status::InvalidArgument("artifact store " + dir_ + " is open read-only");
    auto it = open_.find(upload_id);
    if (it == open_.end()) {
      const std::string path = StagingPath(upload_id);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return Errno("cannot create", path);
      it = open_.emplace(upload_id, Staged{fd, 0}).first;
    }
    Staged& f = it->second;
    PRUNELAB_RETURN_IF_ERROR(WriteAll(f.fd, data, StagingPath(upload_id)));
    // Start writeback now (asynchronous): the fsync at Publish then has little left to wait
    // for, and dirty pages of a large upload do not pile up in the page cache.
    (void)::sync_file_range(f.fd, static_cast<off_t>(f.size), static_cast<off_t>(data.size()), SYNC_FILE_RANGE_WRITE);
    f.size += data.size();
    return Status::Ok();
  }

  Status Publish(const std::string& upload_id, const std::string& hash) override {
    auto it = open_.find(upload_id);
    if (it == open_.end()) return Status::NotFound("no upload " + upload_id);
    if (!IsArtifactName(hash)) return Status::InvalidArgument("'" + hash.substr(0, 80) + "' is not an artifact name");
    const int fd = it->second.fd;
    open_.erase(it);
    const std::string from = StagingPath(upload_id);
    if (::fdatasync(fd) != 0) {
      Status e = Errno("cannot sync", from);
      ::close(fd);
      return e;
    }
    ::close(fd);
    if (::rename(from.c_str(), Path(hash).c_str()) != 0) return Errno("cannot rename into place", from);
    return SyncDir(dir_);
  }

  void Discard(const std::string& upload_id) override {
    if (auto it = open_.find(upload_id); it != open_.end()) {
      ::close(it->second.fd);
      open_.erase(it);
    }
    std::error_code ec;
    fs::remove(StagingPath(upload_id), ec);
  }

  bool HasRoom(uint64_t bytes) override { return HasFreeSpace(dir_, bytes + min_free_); }
  std::string Where() const override { return dir_; }

  Status Open() {
    std::error_code ec;
    if (read_only_) return Status::Ok();
    fs::create_directories(staging_dir_, ec);
    if (ec) return Status::IoError("cannot create " + staging_dir_ + ": " + ec.message());
    // What a crash left half-uploaded is useless without its hash state: the uploads restart.
    for (const auto& e : fs::directory_iterator(staging_dir_, ec)) fs::remove(e.path(), ec);
    return Status::Ok();
  }

 private:
  struct Staged {
    int fd;
    uint64_t size;
  };

  std::string Path(const std::string& hash) const { return dir_ + "/" + hash; }
  std::string StagingPath(const std::string& id) const { return staging_dir_ + "/" + id + ".part"; }

  static std::string RandomId() {
    std::random_device rd;
    return fmt::sprintf("%08x%08x", rd(), rd());
  }

  // An artifact an earlier version kept in the record store: moved to a file on first read.
  StatusOr<std::optional<std::string>> Legacy(const std::string& hash) {
    if (!legacy_) return std::optional<std::string>();
    auto v = legacy_->Get(ArtifactKey(hash));
    if (!v.ok() || !v.value() || read_only_) return v;
    if (Put(hash, *v.value()).ok()) (void)legacy_->Apply({{ArtifactKey(hash), std::nullopt}});
    return v;
  }

  const std::string dir_;
  const std::string staging_dir_;
  Store* legacy_;
  const uint64_t min_free_;
  const bool read_only_;
  std::map<std::string, Staged> open_;
};

}  // namespace

std::unique_ptr<ArtifactStore> NewKvArtifactStore(Store& store) { return std::make_unique<KvArtifactStore>(store); }

StatusOr<std::unique_ptr<ArtifactStore>> OpenFileArtifactStore(const std::string& dir, Store* legacy,
                                                               uint64_t min_free_bytes, bool read_only) {
  auto s = std::make_unique<FileArtifactStore>(dir, legacy, min_free_bytes, read_only);
  PRUNELAB_RETURN_IF_ERROR(s->Open());
  return std::unique_ptr<ArtifactStore>(std::move(s));
}

}  // namespace prunelab::coordinator
