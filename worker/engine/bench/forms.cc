#include "worker/engine/bench/forms.h"

#include <torch/torch.h>

#include <torch/csrc/jit/runtime/graph_executor.h>

namespace prunelab::worker {
namespace {

// Query inputs are gathered before the clock matters as little as possible: single-sample
// queries use pre-sliced tensors, batches are gathered with one index_select.
class SampleInputs {
 public:
  explicit SampleInputs(const Dataset& d) : pool_(d.inputs.contiguous()) {
    for (int64_t i = 0; i < pool_.size(0); ++i) singles_.push_back(pool_.slice(0, i, i + 1));
  }
  torch::Tensor Gather(const std::vector<int64_t>& idx) const {
    if (idx.size() == 1) return singles_[idx[0]];
    auto t = torch::from_blob(const_cast<int64_t*>(idx.data()), {static_cast<int64_t>(idx.size())}, torch::kInt64);
    return pool_.index_select(0, t);
  }
  uint64_t size() const { return singles_.size(); }

 private:
  torch::Tensor pool_;
  std::vector<torch::Tensor> singles_;
};

// Runs a TorchScript module: the plain one ("dense"), or one frozen (parameters inlined
// as constants) and optimized for inference (conv + batch norm folded, ops fused), which
// is what one ships with torch.jit.freeze ("frozen").
class ModuleSut final : public SystemUnderTest {
 public:
  ModuleSut(torch::jit::Module prepared, const Dataset& d) : module_(std::move(prepared)), inputs_(d) {}
  void RunQuery(const std::vector<int64_t>& samples) override {
    torch::NoGradGuard g;
    auto out = module_.forward({inputs_.Gather(samples)}).toTensor();
    (void)out;
  }
  uint64_t sample_pool_size() const override { return inputs_.size(); }

 private:
  torch::jit::Module module_;
  SampleInputs inputs_;
};

torch::jit::Module EvalCopy(const torch::jit::Module& m) {
  auto copy = CloneModule(m);
  copy.eval();
  return copy;
}

class CsrSut final : public SystemUnderTest {
 public:
  CsrSut(const torch::jit::Module& m, const Dataset& d) : net_(m), inputs_(d) {}
  void RunQuery(const std::vector<int64_t>& samples) override {
    torch::NoGradGuard g;
    auto out = net_.Forward(inputs_.Gather(samples));
    (void)out;
  }
  uint64_t sample_pool_size() const override { return inputs_.size(); }

 private:
  CsrCnn net_;
  SampleInputs inputs_;
};

torch::Tensor Csr(const torch::Tensor& w) { return w.detach().reshape({w.size(0), -1}).contiguous().to_sparse_csr(); }
torch::Tensor T(const torch::jit::Module& m, const char* name) { return GetTensor(m, name).detach().clone(); }

}  // namespace

std::vector<std::string> CandidateForms(bool has_unstructured_zeros) {
  if (has_unstructured_zeros) return {"dense", "frozen", "csr"};
  return {"dense", "frozen"};
}

CsrCnn::CsrCnn(const torch::jit::Module& m)
    : c1_(Csr(GetTensor(m, "conv1_w"))), c1b_(T(m, "conv1_b")), c2_(Csr(GetTensor(m, "conv2_w"))),
      c2b_(T(m, "conv2_b")), f1_(Csr(GetTensor(m, "fc1_w"))), f1b_(T(m, "fc1_b")), f2_(Csr(GetTensor(m, "fc2_w"))),
      f2b_(T(m, "fc2_b")), c1_out_(GetTensor(m, "conv1_w").size(0)), c2_out_(GetTensor(m, "conv2_w").size(0)),
      bn1_w_(T(m, "bn1_w")), bn1_b_(T(m, "bn1_b")), bn1_m_(T(m, "bn1_mean")), bn1_v_(T(m, "bn1_var")),
      bn2_w_(T(m, "bn2_w")), bn2_b_(T(m, "bn2_b")), bn2_m_(T(m, "bn2_mean")), bn2_v_(T(m, "bn2_var")) {}

torch::Tensor CsrCnn::Conv(const torch::Tensor& x, const torch::Tensor& w_csr, const torch::Tensor& bias,
                           int64_t out_ch) const {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  // im2col: [B, C*9, H*W] -> [C*9, B*H*W]; one sparse x dense product for the batch.
  auto cols = torch::nn::functional::unfold(x, torch::nn::functional::UnfoldFuncOptions({3, 3}).padding(1));
  cols = cols.transpose(0, 1).reshape({cols.size(1), b * h * w});
  auto out = torch::mm(w_csr, cols).view({out_ch, b, h, w}).permute({1, 0, 2, 3});
  return out + bias.view({1, out_ch, 1, 1});
}

torch::Tensor CsrCnn::Forward(const torch::Tensor& x) const {
  auto y = Conv(x, c1_, c1b_, c1_out_);
  y = torch::batch_norm(y, bn1_w_, bn1_b_, bn1_m_, bn1_v_, false, 0.1, 1e-5, false);
  y = torch::max_pool2d(torch::relu(y), {2, 2});
  y = Conv(y, c2_, c2b_, c2_out_);
  y = torch::batch_norm(y, bn2_w_, bn2_b_, bn2_m_, bn2_v_, false, 0.1, 1e-5, false);
  y = torch::max_pool2d(torch::relu(y), {2, 2});
  y = torch::flatten(y, 1);
  y = torch::relu(torch::mm(f1_, y.t()).t() + f1b_);
  return torch::mm(f2_, y.t()).t() + f2b_;
}

StatusOr<std::unique_ptr<SystemUnderTest>> MakeSut(const std::string& form, const torch::jit::Module& m,
                                                   const Dataset& samples) {
  if (form == "dense") return std::unique_ptr<SystemUnderTest>(new ModuleSut(EvalCopy(m), samples));
  if (form == "csr") return std::unique_ptr<SystemUnderTest>(new CsrSut(m, samples));
  if (form == "frozen") {
    // Freezing inlines submodule calls through their optimized graphs, which are only inlined
    // while the graph executor's optimizations are on (the worker turns them off for
    // training); without this, a frozen module with submodules calls methods it no longer has.
    const bool optimize = torch::jit::getGraphExecutorOptimize();
    torch::jit::setGraphExecutorOptimize(true);
    try {
      auto frozen = torch::jit::freeze(EvalCopy(m));
      frozen = torch::jit::optimize_for_inference(frozen);
      torch::jit::setGraphExecutorOptimize(optimize);
      auto sut = std::unique_ptr<SystemUnderTest>(new ModuleSut(frozen, samples));
      sut->RunQuery({0});  // fails here, not mid-benchmark, if freezing broke the module
      return sut;
    } catch (const c10::Error& e) {
      torch::jit::setGraphExecutorOptimize(optimize);
      return Status::InvalidArgument(std::string("cannot freeze the module: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      // The interpreter reports errors of a frozen graph as std::runtime_error (e.g. MKL-DNN's
      // adaptive_avg_pool2d refusing an input size that is not a multiple of the output's).
      torch::jit::setGraphExecutorOptimize(optimize);
      std::string what = e.what();
      while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
      auto cut = what.rfind('\n');
      return Status::InvalidArgument("the frozen form does not run this model: " +
                                     (cut == std::string::npos ? what : what.substr(cut + 1)));
    }
  }
  return Status::InvalidArgument("unknown execution form '" + form + "' (have: dense, frozen, csr)");
}

}  // namespace prunelab::worker
