// main() of every GoogleTest binary: GoogleTest's, plus a watchdog. A test still running
// after PRUNELAB_TEST_WATCHDOG_S seconds (default 540, under ctest's 600 s per-test timeout)
// prints which test it is, how long it has run, and every thread's stack (gdb in batch mode,
// where installed), then aborts, so a hang is diagnosable from a CI log instead of being a
// bare "Timeout". Every wait in the watchdog itself is bounded.
#include <gtest/gtest.h>

#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  explicit Watchdog(int limit_s) : limit_(limit_s) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Watchdog() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void OnTestStart(const ::testing::TestInfo& t) override {
    std::lock_guard<std::mutex> lock(mu_);
    name_ = std::string(t.test_suite_name()) + "." + t.name();
    started_ = std::chrono::steady_clock::now();
    running_ = true;
  }
  void OnTestEnd(const ::testing::TestInfo&) override {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      if (!running_ || done_) continue;
      const auto ran = std::chrono::steady_clock::now() - started_;
      if (ran < limit_) continue;
      const std::string name = name_;
      lock.unlock();
      Report(name, std::chrono::duration_cast<std::chrono::seconds>(ran).count());
      std::abort();
    }
  }

  static void Report(const std::string& name, long seconds) {
    std::fprintf(stderr,
                 "\n[ WATCHDOG ] %s has run for %ld s (limit PRUNELAB_TEST_WATCHDOG_S): a hang. Thread stacks of "
                 "pid %d follow; then abort.\n",
                 name.c_str(), seconds, static_cast<int>(getpid()));
    std::fflush(stderr);
    // gdb attaches to this process (PR_SET_PTRACER in main allows it under Yama); `timeout`
    // bounds it should gdb itself get stuck.
    const std::string cmd = "command -v gdb >/dev/null 2>&1 && timeout 60 gdb -p " + std::to_string(getpid()) +
                            " -batch -nx -ex 'set pagination off' -ex 'thread apply all bt' 1>&2 2>/dev/null"
                            " || echo '[ WATCHDOG ] gdb is not installed: no stacks' 1>&2";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "[ WATCHDOG ] the stack dump did not finish\n");
    std::fflush(stderr);
  }

  const std::chrono::seconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool running_ = false;
  std::string name_;
  std::chrono::steady_clock::time_point started_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  int limit = 540;
  if (const char* v = std::getenv("PRUNELAB_TEST_WATCHDOG_S")) limit = std::max(1, std::atoi(v));
  // Owned by GoogleTest's listener list, which deletes it at exit.
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(limit));
  return RUN_ALL_TESTS();
}
