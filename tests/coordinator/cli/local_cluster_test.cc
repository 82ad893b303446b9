// What `prunelab run` starts is owned: destroying the owners stops and reaps everything, on
// every exit path (the missing-model abort was a joinable thread destroyed on an early return).
#include "coordinator/cli/local_cluster.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "coordinator/store/store.h"
#include "tests/test_util.h"

namespace prunelab::coordinator {
namespace {

bool Reaped(pid_t pid) { return kill(pid, 0) == -1 && errno == ESRCH; }

// Whether `pid` ignores SIGTERM (its SigIgn mask in /proc), waiting at most timeout_ms for the
// shell to install its trap.
bool IgnoresSigterm(pid_t pid, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("SigIgn:", 0) == 0 && (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

TEST(LocalClusterTest, EmbeddedCoordinatorStopsAndJoinsWhenDestroyedEarly) {
  testing::TempDir dir;
  {
    auto c = EmbeddedCoordinator::Start(dir.path(), /*http_port=*/0);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_NE(c.value()->worker_endpoint().find("tcp://127.0.0.1:"), std::string::npos);
    EXPECT_GT(c.value()->http_port(), 0);
    // Destroyed here, service thread running: before the owner this was std::terminate.
  }
  // The store's lock was released with it: the next run opens the same data directory.
  auto again = OpenRocksDbStore(dir.path() + "/store");
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST(LocalClusterTest, WorkersAreStoppedAndReapedWhenTheOwnerGoes) {
  testing::TempDir dir;
  std::vector<pid_t> pids;
  {
    LocalWorkers w("/bin/sleep");
    w.Spawn({"1000"}, dir.path() + "/a.log");
    w.Spawn({"1000"}, dir.path() + "/b.log");
    pids = w.pids();
    ASSERT_EQ(pids.size(), 2u);
    EXPECT_EQ(w.Poll(nullptr), 2);
  }
  for (pid_t p : pids) EXPECT_TRUE(Reaped(p)) << "pid " << p << " outlived its owner";
}

TEST(LocalClusterTest, AWorkerIgnoringSigtermIsKilledAfterTheGrace) {
  testing::TempDir dir;
  LocalWorkers w("/bin/sh");
  w.Spawn({"-c", "trap '' TERM; exec sleep 1000"}, dir.path() + "/w.log");
  pid_t pid = w.pids().at(0);
  ASSERT_TRUE(IgnoresSigterm(pid, 10000)) << "the shell installs its trap before the test goes on";
  w.Stop(/*immediately=*/true, /*grace_ms=*/300);
  EXPECT_TRUE(Reaped(pid));
}

TEST(LocalClusterTest, PollReportsEachExitOnce) {
  testing::TempDir dir;
  LocalWorkers w("/bin/sh");
  w.Spawn({"-c", "exit 3"}, dir.path() + "/w.log");
  int exits = 0, alive = 1;
  for (int i = 0; i < 400 && alive > 0; ++i) {
    alive = w.Poll([&](size_t index, int status, const std::string& log) {
      ++exits;
      EXPECT_EQ(index, 0u);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
      EXPECT_EQ(log, dir.path() + "/w.log");
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(alive, 0);
  EXPECT_EQ(w.Poll([&](size_t, int, const std::string&) { ++exits; }), 0);
  EXPECT_EQ(exits, 1);
}

}  // namespace
}  // namespace prunelab::coordinator
