#include "worker/loadgen/interference.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <fmt/printf.h>

namespace prunelab::worker {

namespace {

double Seconds(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string Fixed(double v, int digits) {
  return fmt::sprintf("%.*f", digits, v);
}

}  // namespace

StatusOr<CpuSample> ReadCpuSample(const std::string& proc_stat, const std::string& cpufreq_dir) {
  CpuSample s;
  s.wall_s = Seconds(CLOCK_MONOTONIC);
  s.own_cpu_s = Seconds(CLOCK_PROCESS_CPUTIME_ID);
  std::ifstream in(proc_stat);
  if (!in) return Status::Unavailable("cannot read " + proc_stat);
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100);
  std::string line;
  bool total_seen = false;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0) break;  // the cpu lines come first
    std::istringstream f(line);
    std::string name;
    f >> name;
    if (name != "cpu") {
      ++s.cpus;
      continue;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice
    unsigned long long v[10] = {0};
    for (int i = 0; i < 10 && (f >> v[i]); ++i) {
    }
    s.busy_s = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
    s.steal_s = v[7] / hz;
    s.total_s = (v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / hz;
    total_seen = true;
  }
  if (!total_seen) return Status::Unavailable(proc_stat + " has no aggregate cpu line");
  for (int c = 0; c < s.cpus; ++c) {
    std::ifstream fr(cpufreq_dir + "/cpu" + std::to_string(c) + "/cpufreq/scaling_cur_freq");
    double khz = 0;
    if (!(fr >> khz) || khz <= 0) {
      s.freq_mhz.clear();  // all or nothing: a partial view would compare unlike CPUs
      break;
    }
    s.freq_mhz.push_back(khz / 1000.0);
  }
  return s;
}

Interference Between(const CpuSample& a, const CpuSample& b) {
  Interference i;
  i.cpus = b.cpus;
  i.wall_s = std::max(1e-9, b.wall_s - a.wall_s);
  const double own = std::max(0.0, b.own_cpu_s - a.own_cpu_s);
  // /proc/stat counts in clock ticks (10 ms): over short runs the others' share is coarse,
  // never negative.
  i.other_cores = std::max(0.0, (b.busy_s - a.busy_s) - own) / i.wall_s;
  const double total = b.total_s - a.total_s;
  i.steal_fraction = total > 0 ? std::max(0.0, b.steal_s - a.steal_s) / total : 0;
  if (!a.freq_mhz.empty() && a.freq_mhz.size() == b.freq_mhz.size()) {
    i.freq_visible = true;
    double lo = 1e30, hi = 0;
    for (const auto* v : {&a.freq_mhz, &b.freq_mhz})
      for (double f : *v) {
        lo = std::min(lo, f);
        hi = std::max(hi, f);
      }
    i.freq_min_ratio = hi > 0 ? lo / hi : 1;
  }
  return i;
}

std::vector<std::string> Judge(const Interference& i, const InterferencePolicy& p) {
  std::vector<std::string> why;
  if (i.other_cores > p.max_other_cores)
    why.push_back("other processes used " + Fixed(i.other_cores, 2) + " cores on average during the run (limit " +
                  Fixed(p.max_other_cores, 2) + ", prunelab-worker --max-other-cores)");
  if (i.steal_fraction > p.max_steal)
    why.push_back("the hypervisor stole " + Fixed(100 * i.steal_fraction, 1) + " % of CPU time (limit " +
                  Fixed(100 * p.max_steal, 1) + " %, --max-steal)");
  if (i.freq_visible && i.freq_min_ratio < p.min_freq_ratio)
    why.push_back("CPU frequency varied to " + Fixed(100 * i.freq_min_ratio, 0) + " % of its highest (limit " +
                  Fixed(100 * p.min_freq_ratio, 0) + " %, --min-freq-ratio)");
  return why;
}

std::vector<std::string> JudgeAbSpread(double speedup_min, double speedup_max, const InterferencePolicy& p) {
  if (speedup_min <= 0 || speedup_max / speedup_min <= p.max_ab_spread) return {};
  return {"interleaved A/B rounds disagree: speedup " + Fixed(speedup_min, 2) + "x to " + Fixed(speedup_max, 2) +
          "x, a spread of " + Fixed(speedup_max / speedup_min, 2) + " (limit " + Fixed(p.max_ab_spread, 2) +
          ", --max-ab-spread)"};
}

nlohmann::json ToJson(const Interference& i) {
  nlohmann::json j{{"wall_s", i.wall_s}, {"other_cores", i.other_cores}, {"steal_fraction", i.steal_fraction},
                   {"cpus", i.cpus}};
  if (i.freq_visible) j["freq_min_ratio"] = i.freq_min_ratio;
  else j["freq"] = "not visible (no cpufreq in this kernel or VM)";
  return j;
}

nlohmann::json ToJson(const InterferencePolicy& p) {
  return {{"max_other_cores", p.max_other_cores}, {"max_steal", p.max_steal}, {"min_freq_ratio", p.min_freq_ratio},
          {"max_ab_spread", p.max_ab_spread},     {"retries", p.retries}};
}

}  // namespace prunelab::worker
