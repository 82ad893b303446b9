// Execution forms of a model as systems under test for the harness. "dense": the
// TorchScript module as it is. "frozen": torch::jit::freeze + optimize_for_inference
// (batch norm folded into the convolutions). "csr": every prunable weight stored in CSR and multiplied
// as sparse x dense (convolutions through im2col) — what a CPU offers for unstructured
// sparsity. LibTorch header: engine-internal.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "worker/engine/data/fashion_mnist.h"
#include "worker/loadgen/loadgen.h"
#include "worker/engine/model/model.h"

namespace prunelab::worker {

// Forms worth measuring for a model: dense and frozen always; csr when it has zeroed weights.
std::vector<std::string> CandidateForms(bool has_unstructured_zeros);

// A SUT running `form` of model m over `samples` (its images are the sample pool).
// InvalidArgument for an unknown form. The module is cloned; m is not modified.
StatusOr<std::unique_ptr<SystemUnderTest>> MakeSut(const std::string& form, const torch::jit::Module& m,
                                                   const Dataset& samples);

// The csr form's forward pass (exposed so tests can compare it with the dense module).
class CsrCnn {
 public:
  explicit CsrCnn(const torch::jit::Module& m);
  torch::Tensor Forward(const torch::Tensor& x) const;

 private:
  torch::Tensor Conv(const torch::Tensor& x, const torch::Tensor& w_csr, const torch::Tensor& bias, int64_t out_ch) const;
  torch::Tensor c1_, c1b_, c2_, c2b_, f1_, f1b_, f2_, f2b_;
  int64_t c1_out_, c2_out_;
  torch::Tensor bn1_w_, bn1_b_, bn1_m_, bn1_v_, bn2_w_, bn2_b_, bn2_m_, bn2_v_;
};

}  // namespace prunelab::worker
