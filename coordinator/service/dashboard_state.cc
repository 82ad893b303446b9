#include "coordinator/service/dashboard_state.h"

#include <chrono>

namespace prunelab::coordinator {

void DashboardState::Publish(DashboardSnapshot s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    snap_ = std::move(s);
    ++published_;
  }
  published_cv_.notify_all();
}

uint64_t DashboardState::published() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

bool DashboardState::WaitForPublishAfter(uint64_t seen, int timeout_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  return published_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return published_ > seen; });
}

DashboardSnapshot DashboardState::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snap_;
}

}  // namespace prunelab::coordinator
