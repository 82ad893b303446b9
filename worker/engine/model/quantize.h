// int8 post-training quantization of TorchScript modules (zoo and users' alike) through
// LibTorch's graph-mode quantization passes and its own quantized engines (oneDNN on x86,
// QNNPACK on ARM). LibTorch header: engine-internal.
//
// Static int8: the forward is inlined, the module's configuration folded (eval mode),
// every batch norm that follows a convolution folded into it, observers inserted on
// activations (min/max per tensor, quint8 affine 0..255) and weights (min/max per output
// channel, qint8 symmetric), calibration batches run through, then quantize/dequantize
// inserted and fused into quantized::conv2d(_relu) / quantized::linear(_relu) with packed
// weights. Ops without a quantized kernel run in float between dequantize and quantize.
// Dynamic int8 (int8_dynamic): linear weights int8 per tensor, activations quantized per
// batch at run time (quantized::linear_dynamic); no calibration; convolutions stay float.
#pragma once

#include <string>

#include "worker/engine/data/dataset.h"
#include "worker/engine/model/model.h"
#include "worker/engine/task/learning_task.h"

namespace prunelab::worker {

struct QuantizeReport {
  std::string mode;              // int8 | int8_dynamic
  std::string engine;            // onednn | qnnpack
  int64_t quantized_ops = 0;     // quantized::conv2d*, quantized::linear* in the result
  int64_t float_ops = 0;         // convolutions / linears left in float
  int64_t folded_batch_norms = 0;
  int64_t calibration_samples = 0;
  std::string weights;           // "qint8, symmetric per output channel (min/max)"
  std::string activations;       // "quint8, affine per tensor (min/max over calibration)"
};

// The engine quantized ops will run on, selected for this process: oneDNN where LibTorch
// has it (x86), else QNNPACK (ARM); an error when it has neither.
StatusOr<std::string> SelectQuantizedEngine();

// A quantized copy of `m` (`m` is left as it is). `calibration`: the first
// batches * batch_size samples are run through the observers (static mode). The copy runs
// on a calibration batch and its output has the original's shape, or an error says what
// broke (a module the passes cannot handle is an error naming LibTorch's reason).
StatusOr<torch::jit::Module> QuantizeInt8(const torch::jit::Module& m, const std::string& mode, const LearningTask& task,
                                          const Dataset& calibration, int batches, int batch_size, QuantizeReport* report);

}  // namespace prunelab::worker
