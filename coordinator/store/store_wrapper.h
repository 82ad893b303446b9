// StoreWrapper: a Store that forwards every call to another (LevelDB's EnvWrapper). A
// decorator derives from it and overrides only what it changes. The inner store must outlive
// the wrapper; thread-safety is the inner store's.
#pragma once

#include "coordinator/store/store.h"

namespace prunelab::coordinator {

class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(Store& inner) : inner_(inner) {}
  Status Apply(const std::vector<StoreWrite>& batch) override { return inner_.Apply(batch); }
  void SetGroupCommit(bool on) override { inner_.SetGroupCommit(on); }
  Status Sync() override { return inner_.Sync(); }
  StatusOr<std::optional<std::string>> Get(const std::string& key) override { return inner_.Get(key); }
  Status Scan(const std::string& prefix,
              const std::function<void(const std::string&, const std::string&)>& fn) override {
    return inner_.Scan(prefix, fn);
  }

 protected:
  Store& inner() { return inner_; }

 private:
  Store& inner_;
};

}  // namespace prunelab::coordinator
