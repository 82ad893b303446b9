#include "coordinator/store/timed_store.h"

#include <chrono>

namespace prunelab::coordinator {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Status TimedStore::Apply(const std::vector<StoreWrite>& batch) {
  auto t0 = std::chrono::steady_clock::now();
  Status st = StoreWrapper::Apply(batch);
  write_latency.Observe(SecondsSince(t0));
  return st;
}

Status TimedStore::Sync() {
  auto t0 = std::chrono::steady_clock::now();
  Status st = StoreWrapper::Sync();
  sync_latency.Observe(SecondsSince(t0));
  return st;
}

}  // namespace prunelab::coordinator
