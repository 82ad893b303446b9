// FaultFileSystem (tests only): a FileSystem that passes every call to a real one and fails
// the one it is told to, the way a full disk or a failing device does: an append that writes
// half its bytes and then fails, a sync, a rename or a directory sync that fails. An armed
// fault fires once, on the matching call after `skip` matching calls that pass, and says
// "injected" in its error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/base/file_system.h"

namespace prunelab::testing {

class FaultFileSystem : public FileSystem {
 public:
  enum class Fault { kNone, kAppendHalfway, kSync, kRename, kSyncDir };

  explicit FaultFileSystem(FileSystem& base = LocalFileSystem()) : base_(base) {}
  void Arm(Fault f, int skip = 0) {
    armed_ = f;
    skip_ = skip;
  }
  // How many armed faults fired.
  int fired() const { return fired_; }

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    auto f = base_.NewWritableFile(path);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(f).value(), path, this));
  }
  StatusOr<std::optional<uint64_t>> FileSize(const std::string& path) override { return base_.FileSize(path); }
  StatusOr<std::string> ReadRange(const std::string& path, uint64_t offset, uint64_t n) override {
    return base_.ReadRange(path, offset, n);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (Fire(Fault::kRename)) return Status::IoError("injected: cannot rename " + from + " to " + to);
    return base_.Rename(from, to);
  }
  Status SyncDir(const std::string& dir) override {
    if (Fire(Fault::kSyncDir)) return Status::IoError("injected: cannot sync " + dir);
    return base_.SyncDir(dir);
  }
  Status Remove(const std::string& path) override { return base_.Remove(path); }
  Status CreateDirs(const std::string& dir) override { return base_.CreateDirs(dir); }
  StatusOr<std::vector<std::string>> List(const std::string& dir) override { return base_.List(dir); }

 private:
  class File : public WritableFile {
   public:
    File(std::unique_ptr<WritableFile> base, std::string path, FaultFileSystem* fs)
        : base_(std::move(base)), path_(std::move(path)), fs_(fs) {}
    Status Append(std::string_view data) override {
      if (fs_->Fire(Fault::kAppendHalfway)) {
        (void)base_->Append(data.substr(0, data.size() / 2));
        return Status::IoError("injected: no space left on device writing " + path_);
      }
      return base_->Append(data);
    }
    Status Sync() override {
      if (fs_->Fire(Fault::kSync)) return Status::IoError("injected: cannot sync " + path_);
      return base_->Sync();
    }
    Status Close() override { return base_->Close(); }

   private:
    std::unique_ptr<WritableFile> base_;
    const std::string path_;
    FaultFileSystem* fs_;
  };

  bool Fire(Fault f) {
    if (armed_ != f) return false;
    if (skip_ > 0) {
      --skip_;
      return false;
    }
    armed_ = Fault::kNone;
    ++fired_;
    return true;
  }

  FileSystem& base_;
  Fault armed_ = Fault::kNone;
  int skip_ = 0;
  int fired_ = 0;
};

}  // namespace prunelab::testing
