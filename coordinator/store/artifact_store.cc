#include "coordinator/store/artifact_store.h"

#include <map>
#include <random>

#include <fmt/printf.h>

#include "common/base/file_system.h"
#include "common/base/hash.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {
namespace {

// Only content names become file names: a peer naming "../store/CURRENT" reads nothing.
bool IsArtifactName(const std::string& hash) { return IsContentName(hash) || IsLegacyContentName(hash); }

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
  FileArtifactStore(std::string dir, Store* legacy, uint64_t min_free_bytes, bool read_only, FileSystem& fs)
      : dir_(std::move(dir)), staging_dir_(dir_ + "/staging"), legacy_(legacy), min_free_(min_free_bytes),
        read_only_(read_only), fs_(fs) {}

  StatusOr<std::optional<uint64_t>> Size(const std::string& hash) override {
    if (!IsArtifactName(hash)) return std::optional<uint64_t>();
    auto size = fs_.FileSize(Path(hash));
    if (!size.ok() || size.value()) return size;
    auto old = Legacy(hash);
    if (!old.ok()) return old.status();
    if (!old.value()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(old.value()->size());
  }

  StatusOr<std::string> Read(const std::string& hash, uint64_t offset, uint64_t n) override {
    if (!IsArtifactName(hash)) return Status::NotFound("'" + hash.substr(0, 80) + "' is not an artifact name");
    auto bytes = fs_.ReadRange(Path(hash), offset, n);
    if (bytes.ok() || bytes.status().code() != Status::Code::kNotFound) return bytes;
    auto old = Legacy(hash);
    if (!old.ok()) return old.status();
    if (!old.value()) return Status::NotFound("artifact " + hash + " is not in " + dir_);
    const std::string& all = *old.value();
    return offset >= all.size() ? std::string() : all.substr(offset, n);
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
      auto file = fs_.NewWritableFile(StagingPath(upload_id));
      if (!file.ok()) return file.status();
      it = open_.emplace(upload_id, std::move(file).value()).first;
    }
    PRUNELAB_RETURN_IF_ERROR(it->second->Append(data));
    it->second->StartWriteback();
    return Status::Ok();
  }

  // Durable in its staging file first, then renamed into place and the directory synced: a
  // failure at any step leaves the artifact absent under its name, never partial.
  Status Publish(const std::string& upload_id, const std::string& hash) override {
    auto it = open_.find(upload_id);
    if (it == open_.end()) return Status::NotFound("no upload " + upload_id);
    if (!IsArtifactName(hash)) return Status::InvalidArgument("'" + hash.substr(0, 80) + "' is not an artifact name");
    std::unique_ptr<WritableFile> file = std::move(it->second);
    open_.erase(it);
    const std::string from = StagingPath(upload_id);
    Status st = file->Sync();
    Status closed = file->Close();
    if (st.ok()) st = closed;
    if (st.ok()) st = fs_.Rename(from, Path(hash));
    if (!st.ok()) {
      (void)fs_.Remove(from);
      return st;
    }
    return fs_.SyncDir(dir_);
  }

  void Discard(const std::string& upload_id) override {
    open_.erase(upload_id);
    (void)fs_.Remove(StagingPath(upload_id));
  }

  bool HasRoom(uint64_t bytes) override { return HasFreeSpace(dir_, bytes + min_free_); }
  std::string Where() const override { return dir_; }

  Status Open() {
    if (read_only_) return Status::Ok();
    PRUNELAB_RETURN_IF_ERROR(fs_.CreateDirs(staging_dir_));
    // What a crash left half-uploaded is useless without its hash state: the uploads restart.
    auto left = fs_.List(staging_dir_);
    if (!left.ok()) return left.status();
    for (const auto& path : left.value()) PRUNELAB_RETURN_IF_ERROR(fs_.Remove(path));
    return Status::Ok();
  }

 private:
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
  FileSystem& fs_;
  std::map<std::string, std::unique_ptr<WritableFile>> open_;
};

}  // namespace

std::unique_ptr<ArtifactStore> NewKvArtifactStore(Store& store) { return std::make_unique<KvArtifactStore>(store); }

StatusOr<std::unique_ptr<ArtifactStore>> OpenFileArtifactStore(const std::string& dir, Store* legacy,
                                                               uint64_t min_free_bytes, bool read_only, FileSystem* fs) {
  auto s = std::make_unique<FileArtifactStore>(dir, legacy, min_free_bytes, read_only, fs ? *fs : LocalFileSystem());
  PRUNELAB_RETURN_IF_ERROR(s->Open());
  return std::unique_ptr<ArtifactStore>(std::move(s));
}

}  // namespace prunelab::coordinator
