// Resident-memory accounting of this process (Linux /proc), for peak memory during a run.
#pragma once

#include <cstdint>

namespace prunelab::worker {

// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS; false if the kernel
// does not allow it (then PeakRssBytes() is the process lifetime peak).
bool ResetPeakRss();
uint64_t PeakRssBytes();     // VmHWM
uint64_t CurrentRssBytes();  // VmRSS

}  // namespace prunelab::worker
