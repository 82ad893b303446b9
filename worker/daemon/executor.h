// TrialExecutor: runs one task (train a baseline, evaluate it, or prune+fine-tune+evaluate
// a variant) and returns its result. Interface without LibTorch so the worker daemon and
// tests can use it without the ~15 s LibTorch headers; the real one is NewTorchExecutor()
// (worker/engine/torch_executor.h).
// A trial that fails is a TrialResult with ok=false and the reason; Execute never throws.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/base/status.h"
#include "common/base/types.h"
#include "worker/loadgen/interference.h"

namespace prunelab::worker {

struct ExecutionContext {
  std::string worker_id;
  HardwareFingerprint hardware;
  // Bytes of an artifact by content hash (from the local cache or the coordinator).
  std::function<StatusOr<std::string>(const std::string& hash)> fetch_artifact;
  // Phase name ("training", "fine-tuning", "evaluating", "benchmarking") and fraction
  // done; returning false aborts the task.
  std::function<bool(const std::string& phase, double progress)> on_progress;
  // True once the worker is stopping (second signal): long phases (benchmarks) poll it and
  // abandon the task within about one query. Unset: never.
  std::function<bool()> cancelled;
  // Host-wide lock shared by every worker on this machine: training holds it shared,
  // timing holds it exclusive, so co-located workers never benchmark while another
  // computes. The returned handle releases on destruction. Unset: no locking.
  std::function<std::shared_ptr<void>(bool exclusive)> host_lock;
  // When a benchmark run counts as disturbed by other load on the machine (retried, then INVALID).
  InterferencePolicy interference;
  // Where derived data is kept between tasks (tokenized text, trained tokenizers); empty:
  // /tmp/prunelab-cache.
  std::string cache_dir;
};

struct ExecutionOutput {
  TrialResult result;
  std::string artifact;  // trainBaseline: the serialized dense model (hash in result.artifact_hash)
};

class TrialExecutor {
 public:
  virtual ~TrialExecutor() = default;
  virtual ExecutionOutput Execute(const Task& task, const ExecutionContext& ctx) = 0;
};

// The intra-op threads a timing uses are the target's (task.benchmark.threads; 0 keeps the
// worker's own), set for the timing's scope and recorded in r->hardware.threads. The timing
// holds the host lock exclusively, so nothing else computes in this process meanwhile.
class TimingThreads {
 public:
  TimingThreads(uint32_t threads, TrialResult* r);
  ~TimingThreads();
  TimingThreads(const TimingThreads&) = delete;
  TimingThreads& operator=(const TimingThreads&) = delete;

 private:
  int before_;
};

// Sets LibTorch's intra-op threads (interop to 1) and keeps large freed buffers in the heap
// (glibc mmap/trim thresholds) before any work; returns threads in use.
int ConfigureTorchThreads(int threads);
// Fills torch_version, threads and device into a host fingerprint. device "cuda:N" needs
// a CUDA LibTorch; returns InvalidArgument naming what is missing otherwise.
StatusOr<HardwareFingerprint> AddTorchInfo(HardwareFingerprint hw, const std::string& device);

}  // namespace prunelab::worker
