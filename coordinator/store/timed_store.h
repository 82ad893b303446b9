// TimedStore: times the writes and WAL syncs of the store it wraps, for /metrics.
// Thread-safe (the histograms are).
#pragma once

#include "common/base/histogram.h"
#include "coordinator/store/store_wrapper.h"

namespace prunelab::coordinator {

class TimedStore final : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status Apply(const std::vector<StoreWrite>& batch) override;
  Status Sync() override;
  LatencyHistogram write_latency;  // seconds per Apply
  LatencyHistogram sync_latency;   // seconds per Sync
};

}  // namespace prunelab::coordinator
