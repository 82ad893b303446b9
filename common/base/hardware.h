// Hardware fingerprint from the operating system (no LibTorch): CPU model, ISA flags,
// cores, memory, hostname, and the BLAS library actually mapped into this process.
// The worker's engine adds LibTorch version and threads.
#pragma once

#include "common/base/types.h"

namespace prunelab {

HardwareFingerprint ReadHostFingerprint();
// Path of the BLAS shared library mapped into this process (from /proc/self/maps),
// or "none loaded" — e.g. .../openblas-pthread/libblas.so.3 vs .../blas/libblas.so.3.
std::string LoadedBlasLibrary();

}  // namespace prunelab
