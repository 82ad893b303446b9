// The coordinator's memory while large artifacts travel: a real prunelab-coordinator process
// (RocksDB records, artifacts as files in a temporary data directory), N uploaders (as workers
// delivering variants) each sending an artifact of --mb MiB at once over real ZeroMQ sockets
// in hash-checked chunks, then N downloaders fetching them back at once. The coordinator's
// resident memory is sampled from /proc every 5 ms: idle, peak while uploading, peak while
// downloading; goal: peak - idle <= 64 MiB with two 500 MiB uploads. Also the transfer rates
// (loopback; the uploaders share this machine's cores with the coordinator).
// Usage: artifact_upload [--json] [--mb 500] [--uploaders 2] [--chunk-kib 4096]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_flags.h"
#include "common/base/hash.h"
#include "common/net/artifact_fetch.h"
#include "common/net/rpc.h"

using namespace prunelab;
using Steady = std::chrono::steady_clock;

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// VmRSS of a process, in bytes (0 when it cannot be read).
uint64_t RssBytes(pid_t pid, const char* field = "VmRSS:") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(std::strlen(field))) << 10;
  return 0;
}

// Highest RSS of pid while `work` runs, sampled every 5 ms.
uint64_t PeakWhile(pid_t pid, const std::function<void()>& work) {
  std::atomic<bool> done{false};
  std::atomic<uint64_t> peak{RssBytes(pid)};
  std::thread sampler([&] {
    while (!done.load()) {
      uint64_t r = RssBytes(pid);
      if (r > peak.load()) peak = r;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  work();
  done = true;
  sampler.join();
  return peak.load();
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 g(seed);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = g();
    std::memcpy(s.data() + i, &v, 8);
  }
  return s;
}

// Runs fn(0..n-1) on n threads at once and waits for them.
void AllAtOnce(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i) ts.emplace_back(fn, i);
  for (auto& t : ts) t.join();
}

double Mib(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

std::string SelfDir() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  int mb = 500, uploaders = 2, chunk_kib = 4096;
  bench::BenchFlags flags("artifact_upload", "coordinator memory and transfer rates while artifacts are uploaded and fetched");
  flags.Int("--mb", &mb, "size of each artifact, MiB")
      .Int("--uploaders", &uploaders, "artifacts uploaded (then downloaded) at once")
      .Int("--chunk-kib", &chunk_kib, "upload chunk size, KiB (at most 16384)");
  if (auto rc = flags.Parse(argc, argv)) return *rc;
  const std::string bin = SelfDir() + "/prunelab-coordinator";
  if (access(bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "artifact_upload: %s not found (build the project first)\n", bin.c_str());
    return 1;
  }
  char tmpl[] = "/tmp/prunelab-upload-XXXXXX";
  const std::string dir = mkdtemp(tmpl) ? tmpl : "";
  const int wport = FreePort(), cport = FreePort();
  const std::string worker_ep = "tcp://127.0.0.1:" + std::to_string(wport);
  const std::string client_ep = "tcp://127.0.0.1:" + std::to_string(cport);
  pid_t coord = fork();
  if (coord == 0) {
    int fd = ::open((dir + "/coordinator.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execl(bin.c_str(), bin.c_str(), "--data-dir", (dir + "/data").c_str(), "--worker-endpoint", worker_ep.c_str(),
          "--client-endpoint", client_ep.c_str(), "--http", "off", static_cast<char*>(nullptr));
    _exit(127);
  }
  ZmqContext ctx;
  {
    RpcClient probe(ctx, client_ep);
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) up = probe.Call(StatusRequestMsg{""}, 200).ok();
    if (!up) {
      std::fprintf(stderr, "artifact_upload: the coordinator did not start (see %s/coordinator.log)\n", dir.c_str());
      kill(coord, SIGKILL);
      return 1;
    }
  }
  if (!flags.json()) std::fprintf(stderr, "preparing %d artifact(s) of %d MiB...\n", uploaders, mb);
  std::vector<std::string> blobs;
  std::vector<std::string> hashes;
  for (int i = 0; i < uploaders; ++i) {
    blobs.push_back(RandomBytes(static_cast<size_t>(mb) << 20, 1000 + i));
    hashes.push_back(ContentHash(blobs.back()));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const uint64_t idle = RssBytes(coord);

  std::atomic<int> failures{0};
  auto t0 = Steady::now();
  const uint64_t up_peak = PeakWhile(coord, [&] {
    AllAtOnce(uploaders, [&](int i) {
        RpcClient rpc(ctx, worker_ep);
        ChunkedUploadOptions o;
        o.chunk_bytes = static_cast<uint32_t>(chunk_kib) << 10;
        Status st = UploadArtifactChunked([&](const Message& m) { return rpc.Call(m, 30000); }, hashes[i], blobs[i], o);
        if (!st.ok()) {
          std::fprintf(stderr, "upload %d: %s\n", i, st.ToString().c_str());
          ++failures;
        }
      });
  });
  const double up_s = std::chrono::duration<double>(Steady::now() - t0).count();

  t0 = Steady::now();
  const uint64_t down_peak = PeakWhile(coord, [&] {
    AllAtOnce(uploaders, [&](int i) {
        RpcClient rpc(ctx, worker_ep);
        ChunkedFetchOptions o;
        o.chunk_bytes = static_cast<uint32_t>(chunk_kib) << 10;
        auto got = FetchArtifactChunked([&](const Message& m) { return rpc.Call(m, 30000); }, hashes[i], o);
        if (!got.ok() || got.value() != blobs[i]) {
          std::fprintf(stderr, "download %d: %s\n", i, got.ok() ? "bytes differ" : got.status().ToString().c_str());
          ++failures;
        }
      });
  });
  const double down_s = std::chrono::duration<double>(Steady::now() - t0).count();
  const uint64_t hwm = RssBytes(coord, "VmHWM:");
  kill(coord, SIGTERM);
  waitpid(coord, nullptr, 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  const double total_mib = static_cast<double>(mb) * uploaders;
  const double growth = Mib(up_peak) - Mib(idle);
  nlohmann::json j{{"artifact_mib", mb},
                   {"uploaders", uploaders},
                   {"chunk_kib", chunk_kib},
                   {"idle_rss_mib", Mib(idle)},
                   {"upload_peak_rss_mib", Mib(up_peak)},
                   {"upload_peak_minus_idle_mib", growth},
                   {"download_peak_rss_mib", Mib(down_peak)},
                   {"download_peak_minus_idle_mib", Mib(down_peak) - Mib(idle)},
                   {"coordinator_vmhwm_mib", Mib(hwm)},
                   {"upload_mib_per_s", total_mib / up_s},
                   {"download_mib_per_s", total_mib / down_s},
                   {"peak_over_artifact", (Mib(std::max(up_peak, down_peak)) - Mib(idle)) / mb},
                   {"goal_peak_minus_idle_mib", 64},
                   {"goal_met", growth <= 64 && Mib(down_peak) - Mib(idle) <= 64},
                   {"failures", failures.load()}};
  if (flags.json()) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("Coordinator memory while %d artifact(s) of %d MiB travel at once (chunks of %d KiB):\n", uploaders, mb, chunk_kib);
    std::printf("  idle RSS                %8.1f MiB\n", Mib(idle));
    std::printf("  peak RSS, uploading     %8.1f MiB  (+%.1f MiB over idle; goal <= 64 MiB: %s)\n", Mib(up_peak), growth,
                growth <= 64 ? "met" : "NOT met");
    std::printf("  peak RSS, downloading   %8.1f MiB  (+%.1f MiB over idle)\n", Mib(down_peak), Mib(down_peak) - Mib(idle));
    std::printf("  VmHWM (whole run)       %8.1f MiB  = %.3f of one artifact\n", Mib(hwm), Mib(hwm) / mb);
    std::printf("  upload rate             %8.1f MiB/s (all uploaders together, %.1f s)\n", total_mib / up_s, up_s);
    std::printf("  download rate           %8.1f MiB/s (%.1f s)\n", total_mib / down_s, down_s);
    if (failures) std::printf("  FAILURES: %d transfer(s) did not complete (see above)\n", failures.load());
  }
  return failures ? 1 : 0;
}
