#include "common/base/hardware.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>
#include <set>
#include <sstream>
#include <thread>

namespace prunelab {

std::string LoadedBlasLibrary() {
  // The implementation, not the libblas.so.3 alternative link that loads it.
  static const char* kPreferred[] = {"libopenblas", "libmkl_rt", "libblis", "libblas"};
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::vector<std::string> paths;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos != std::string::npos) paths.push_back(line.substr(pos));
  }
  for (const char* name : kPreferred)
    for (const auto& p : paths)
      if (p.find(name) != std::string::npos && p.find(".so") != std::string::npos) return p;
  return "none loaded";
}

namespace {
// NVIDIA GPUs visible through the driver's procfs, e.g. "NVIDIA H100 80GB HBM3"; empty if none.
std::string DetectNvidiaGpus() {
  std::error_code ec;
  std::string out;
  for (const auto& dir : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    std::ifstream info(dir.path() / "information");
    std::string line;
    while (std::getline(info, line)) {
      if (line.rfind("Model:", 0) != 0) continue;
      auto v = line.substr(6);
      v.erase(0, v.find_first_not_of(" \t"));
      out += (out.empty() ? "" : ", ") + v;
    }
  }
  return out;
}
}  // namespace

HardwareFingerprint ReadHostFingerprint() {
  HardwareFingerprint h;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) h.hostname = host;
  h.cores = std::thread::hardware_concurrency();
  std::ifstream cpu("/proc/cpuinfo");
  std::string line;
  static const std::set<std::string> kInteresting{"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                                  "avx512_vnni", "avx512_bf16", "amx_tile", "neon", "asimd"};
  while (std::getline(cpu, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && h.cpu_model.empty()) h.cpu_model = value;
    if ((key == "flags" || key == "Features") && h.isa_flags.empty()) {
      std::istringstream is(value);
      std::string f;
      while (is >> f)
        if (kInteresting.count(f)) h.isa_flags += (h.isa_flags.empty() ? "" : " ") + f;
    }
  }
  std::ifstream mem("/proc/meminfo");
  while (std::getline(mem, line)) {
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream is(line.substr(9));
      uint64_t kb = 0;
      is >> kb;
      h.memory_bytes = kb * 1024;
    }
  }
  h.blas = LoadedBlasLibrary();
  h.gpu = DetectNvidiaGpus();
  return h;
}

}  // namespace prunelab
