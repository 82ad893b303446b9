// RateLimitedLog: one log line (log.h, warning level) per key per interval, with how many times the key was seen
// since its last line, so a peer that retries forever cannot flood the log. Used for every
// refusal (wrong endpoint, ZAP allow-lists, failed CURVE handshakes). Thread-safe; at most
// max_keys keys are remembered (then it forgets them all and starts over).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace prunelab {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::string prefix, std::chrono::seconds interval = std::chrono::seconds(60),
                          size_t max_keys = 10000)
      : prefix_(std::move(prefix)), interval_(interval), max_keys_(max_keys) {}
  // Counts `key`; writes `line` unless the key's last line is younger than the interval.
  void Log(const std::string& key, const std::string& line);

 private:
  struct Entry {
    uint64_t count = 0, count_at_last_line = 0;
    bool logged = false;
    std::chrono::steady_clock::time_point last;
  };
  const std::string prefix_;
  const std::chrono::seconds interval_;
  const size_t max_keys_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

}  // namespace prunelab
