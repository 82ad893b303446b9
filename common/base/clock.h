// Clock: the only source of time and of waiting for the coordinator's state machine and the
// worker daemon, so tests advance time by hand instead of sleeping (KJ's Timer: now() and
// afterDelay()). Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace prunelab {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t NowMs() const = 0;
  // Waits `ms`, returning early once *interrupt is true (checked at least every 20 ms).
  virtual void WaitMs(int64_t ms, const std::atomic<bool>* interrupt = nullptr) const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void WaitMs(int64_t ms, const std::atomic<bool>* interrupt = nullptr) const override {
    for (int64_t waited = 0; waited < ms && !(interrupt && interrupt->load()); waited += 20)
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(20, ms - waited)));
  }
};

// Time moves only by AdvanceMs and by waits: WaitMs advances the clock by the wait and
// returns after a 1 ms real pause (so threads waiting in a loop cannot starve the
// rest of a test), never after the real duration.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMs() const override { return now_.load(); }
  void WaitMs(int64_t ms, const std::atomic<bool>* interrupt = nullptr) const override {
    if (interrupt && interrupt->load()) return;
    now_ += std::max<int64_t>(ms, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void AdvanceMs(int64_t ms) { now_ += ms; }

 private:
  mutable std::atomic<int64_t> now_;
};

}  // namespace prunelab
