#include <map>
#include <mutex>

#include "coordinator/store/store.h"

namespace prunelab::coordinator {
namespace {

class MemoryStore final : public Store {
 public:
  Status Apply(const std::vector<StoreWrite>& batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : batch) {
      if (w.value) data_[w.key] = *w.value; else data_.erase(w.key);
    }
    return Status::Ok();
  }
  void SetGroupCommit(bool) override {}  // nothing is durable here anyway
  Status Sync() override { return Status::Ok(); }
  StatusOr<std::optional<std::string>> Get(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Scan(const std::string& prefix,
              const std::function<void(const std::string&, const std::string&)>& fn) override {
    std::vector<std::pair<std::string, std::string>> hits;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
        hits.emplace_back(it->first, it->second);
    }
    for (const auto& [k, v] : hits) fn(k, v);
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> data_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace prunelab::coordinator
