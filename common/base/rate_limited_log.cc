#include "common/base/rate_limited_log.h"

#include "common/base/log.h"

namespace prunelab {

void RateLimitedLog::Log(const std::string& key, const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= max_keys_ && !entries_.count(key)) entries_.clear();
  Entry& e = entries_[key];
  ++e.count;
  const auto now = std::chrono::steady_clock::now();
  if (e.logged && now - e.last < interval_) return;
  const uint64_t since = e.count - e.count_at_last_line;
  e.logged = true;
  e.last = now;
  e.count_at_last_line = e.count;
  std::string out = prefix_ + line;
  if (since > 1) out += " (" + std::to_string(since) + " times since the last line)";
  log::Warn(out);
}

}  // namespace prunelab
