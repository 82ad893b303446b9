#include "worker/loadgen/memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace prunelab::worker {
namespace {
uint64_t StatusField(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::string k = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(k, 0) != 0) continue;
    std::istringstream is(line.substr(k.size()));
    uint64_t kb = 0;
    is >> kb;
    return kb * 1024;
  }
  return 0;
}
}  // namespace

bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

uint64_t PeakRssBytes() { return StatusField("VmHWM"); }
uint64_t CurrentRssBytes() { return StatusField("VmRSS"); }

}  // namespace prunelab::worker
