// The engine's TrialExecutor: LibTorch training, pruning, evaluation and benchmarking
// behind the LibTorch-free interface in worker/daemon/executor.h. This header includes
// no LibTorch, so the worker's main, tests and bench programs can name it cheaply.
#pragma once

#include <memory>

#include "worker/daemon/executor.h"

namespace prunelab::worker {

std::unique_ptr<TrialExecutor> NewTorchExecutor();

}  // namespace prunelab::worker
