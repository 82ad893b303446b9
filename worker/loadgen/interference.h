// Interference from the rest of the machine during a benchmark (Linux /proc and /sys): how
// much CPU other processes used, the hypervisor's steal time, and CPU frequency changes where
// the kernel shows them. A benchmark on a shared lab machine measures the machine, not the
// model, when others compute beside it; the host lock only keeps prunelab workers that share
// its lock file apart. Thread-safety: the functions are; a sample is a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/base/status.h"

namespace prunelab::worker {

struct CpuSample {
  double wall_s = 0;           // CLOCK_MONOTONIC
  double busy_s = 0;           // all CPUs: user + nice + system + irq + softirq (guest is inside user)
  double steal_s = 0;          // all CPUs: time the hypervisor ran something else
  double total_s = 0;          // all CPUs: every /proc/stat column but guest
  double own_cpu_s = 0;        // this process, every thread (CLOCK_PROCESS_CPUTIME_ID)
  int cpus = 0;                // CPUs in /proc/stat
  std::vector<double> freq_mhz;  // per CPU, from cpufreq; empty where the kernel does not show it
};

// One reading. `proc_stat` and `cpufreq_dir` are overridable for tests.
StatusOr<CpuSample> ReadCpuSample(const std::string& proc_stat = "/proc/stat",
                                  const std::string& cpufreq_dir = "/sys/devices/system/cpu");

struct Interference {
  double wall_s = 0;
  double other_cores = 0;      // CPU-seconds used by other processes per second (1.0 = one core busy)
  double steal_fraction = 0;   // steal time over all CPU time
  double freq_min_ratio = 1;   // lowest frequency seen / highest seen, over both readings; 1 when not visible
  bool freq_visible = false;
  int cpus = 0;
};
Interference Between(const CpuSample& before, const CpuSample& after);

// When a benchmark run is not to be trusted, and how often it is tried again. Defaults suit a
// machine that should be quiet; a lab sets them per worker (prunelab-worker flags).
struct InterferencePolicy {
  double max_other_cores = 0.25;   // average cores other processes may use during the run
  double max_steal = 0.05;         // fraction of CPU time stolen by the hypervisor
  double min_freq_ratio = 0.8;     // lowest/highest CPU frequency seen (where visible)
  double max_ab_spread = 1.5;      // fastest / slowest A/B round's speedup
  int retries = 2;                 // runs tried again (after retry_pause_s) before INVALID stands
  double retry_pause_s = 1.0;
};

// Reasons the run is INVALID (each names its figure and threshold); empty = clean.
std::vector<std::string> Judge(const Interference& i, const InterferencePolicy& p);
std::vector<std::string> JudgeAbSpread(double speedup_min, double speedup_max, const InterferencePolicy& p);

nlohmann::json ToJson(const Interference& i);
nlohmann::json ToJson(const InterferencePolicy& p);

}  // namespace prunelab::worker
