// Wanda against an independent reference written from the paper (tests/python/wanda_reference.py):
// the engine's masks, from input norms gathered by hooks in the model's graph, are identical.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include "tests/test_util.h"
#include "worker/engine/model/model.h"
#include "worker/engine/model/user_model.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"

namespace prunelab::worker {
namespace {

bool HaveTorch() { return std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The reference's model, calibration data and answers, written by the Python script into a
// temporary directory, loaded as the engine sees them.
class ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveTorch()) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
    const std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) +
                            "/tests/python/wanda_reference.py " + dir.path() + " > " + dir.path() + "/log.txt 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(dir.path() + "/log.txt");
    auto loaded = LoadFromBytes(ReadAll(dir.path() + "/model.pt"));
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    model = loaded.value();
    std::istringstream shape_text(ReadAll(dir.path() + "/shape.txt"));
    std::vector<int64_t> shape;
    for (int64_t s; shape_text >> s;) shape.push_back(s);
    ASSERT_EQ(shape.size(), 3u);
    auto raw = ReadBytes(dir.path() + "/calibration.f32");
    ASSERT_EQ(raw.size(), static_cast<size_t>(shape[0] * shape[1] * shape[2] * 4));
    calibration = Dataset{torch::from_blob(raw.data(), shape, torch::kFloat32).clone(),
                          torch::zeros({shape[0]}, torch::kLong)};
    task = NewImageClassification({shape[1], shape[2]});  // float samples [5, 16]: the task only feeds them
    layout = InferLayout(model, *task);
    ASSERT_EQ(layout.layers.size(), 2u);
  }
  testing::TempDir dir;
  torch::jit::Module model;
  Dataset calibration;
  std::unique_ptr<LearningTask> task;
  ModelLayout layout;
};

TEST_F(ReferenceTest, WandaMasksMatchAReferenceWrittenFromThePaperUnstructuredAndTwoOfFour) {
  auto& m = model;
  auto norms = CalibrateInputNorms(m, layout, *task, calibration, /*batches=*/4, /*batch_size=*/16);
  ASSERT_TRUE(norms.ok()) << norms.status().ToString();
  EXPECT_EQ(norms->samples, 64);
  ASSERT_EQ(norms->norms.size(), 2u) << "both linears calibrated through the graph hooks";
  std::vector<std::string> magnitude_only;
  auto scores = WandaScores(m, layout, norms.value(), &magnitude_only);
  ASSERT_TRUE(scores.ok());
  EXPECT_TRUE(magnitude_only.empty());
  PlanOptions o;
  o.per_row = true;
  auto unstructured = PlanMasks(layout, scores.value(), 0.5, o, 0, 0, {});
  auto nm = PlanMasks(layout, scores.value(), 0.5, PlanOptions{}, 2, 4, {});
  ASSERT_TRUE(unstructured.ok() && nm.ok());
  const std::vector<std::string> index{"0", "2"};
  for (size_t i = 0; i < 2; ++i) {
    const std::string& w = layout.layers[i].weight;
    SCOPED_TRACE(w);
    const std::vector<std::pair<std::string, const Masks*>> patterns{{"unstructured", &unstructured.value()},
                                                                     {"2of4", &nm.value()}};
    for (const auto& [pattern, masks] : patterns) {
      auto want = ReadBytes(dir.path() + "/" + index[i] + "." + pattern + ".u8");
      auto got = masks->at(w).to(torch::kUInt8).contiguous();
      ASSERT_EQ(want.size(), static_cast<size_t>(got.numel())) << pattern;
      int64_t differ = 0;
      for (int64_t k = 0; k < got.numel(); ++k) differ += got.data_ptr<uint8_t>()[k] != want[k];
      EXPECT_EQ(differ, 0) << pattern << ": masks differ in " << differ << " of " << got.numel() << " weights";
      EXPECT_NEAR(got.to(torch::kFloat).mean().item<double>(), 0.5, 1e-9) << pattern;
    }
  }
  // Magnitude alone chooses differently on these scaled features: the norms matter.
  auto l1 = WeightScores(m, layout, Criterion::kL1, nullptr, 0);
  ASSERT_TRUE(l1.ok());
  auto magnitude = PlanMasks(layout, l1.value(), 0.5, o, 0, 0, {});
  ASSERT_TRUE(magnitude.ok());
  EXPECT_FALSE(torch::equal(magnitude->at(layout.layers[0].weight), unstructured->at(layout.layers[0].weight)));
}

// SparseGPT against the same reference: the Hessians gathered by the graph hooks, the masks and
// the reconstructed weights agree with the paper's algorithm written in Python (blocks of 8
// columns so several blocks and their cross-block updates are exercised; dead ReLU inputs).
TEST_F(ReferenceTest, SparseGptWeightsAndMasksMatchAReferenceWrittenFromThePaper) {
  auto& m = model;
  auto grams = CalibrateInputGrams(m, layout, *task, calibration, 4, 16);
  ASSERT_TRUE(grams.ok()) << grams.status().ToString();
  ASSERT_EQ(grams->grams.size(), 2u);
  const std::vector<std::string> index{"0", "2"};
  for (size_t i = 0; i < 2; ++i) {
    const std::string& w = layout.layers[i].weight;
    for (const auto& [pattern, n, mm] : std::vector<std::tuple<std::string, int, int>>{{"unstructured", 0, 0}, {"2of4", 2, 4}}) {
      SCOPED_TRACE(w + " " + pattern);
      auto got = SparseGpt(GetTensor(m, w), grams->grams.at(w), 0.5, n, mm, /*block=*/8);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      auto want_bytes = ReadBytes(dir.path() + "/" + index[i] + ".sparsegpt." + pattern + ".f64");
      auto want = torch::from_blob(want_bytes.data(), got->weight.sizes(), torch::kFloat64).clone();
      auto mine = got->weight.to(torch::kFloat64);
      const double diff = (mine - want).abs().max().item<double>(), scale = want.abs().max().item<double>();
      EXPECT_LT(diff, 1e-5 * scale) << "max |difference| " << diff << " (weights up to " << scale << ")";
      auto want_mask = ReadBytes(dir.path() + "/" + index[i] + ".sparsegpt." + pattern + ".u8");
      auto mask = got->mask.to(torch::kUInt8).contiguous();
      int64_t differ = 0;
      for (int64_t k = 0; k < mask.numel(); ++k) differ += mask.data_ptr<uint8_t>()[k] != want_mask[k];
      EXPECT_EQ(differ, 0) << "masks differ in " << differ << " of " << mask.numel();
      EXPECT_NEAR(got->mask.mean().item<double>(), 0.5, 1e-9);
      EXPECT_EQ(mine.mul(1 - got->mask.to(torch::kFloat64)).abs().sum().item<double>(), 0.0) << "pruned weights are zero";
      EXPECT_GT(got->relative_error, 0.0);
      EXPECT_LT(got->relative_error, 1.0);
      EXPECT_DOUBLE_EQ(got->damp, 0.01) << "positive definite at the first dampening";
    }
  }
  // Reconstruction beats plain masking: the same mask without the update loses more of W X.
  const std::string& w0 = layout.layers[0].weight;
  auto sg = SparseGpt(GetTensor(m, w0), grams->grams.at(w0), 0.5, 0, 0, 8).value();
  auto W = GetTensor(m, w0).to(torch::kFloat64), H = grams->grams.at(w0);
  auto masked = W * sg.mask.to(torch::kFloat64);
  auto err = [&](const torch::Tensor& v) {
    auto d = W - v;
    return (d.matmul(H) * d).sum().item<double>() / (W.matmul(H) * W).sum().item<double>();
  };
  EXPECT_LT(sg.relative_error, err(masked));
  EXPECT_NEAR(sg.relative_error, err(sg.weight.to(torch::kFloat64)), 1e-9);
  // A Hessian that is only semi-definite (rank 1: one calibration token) does not factor at a
  // negligible dampening; it is raised until it does, and the value used is recorded.
  auto x = torch::randn({1, 16}, torch::kFloat64) + 3.0;
  auto rank1 = x.t().matmul(x);
  auto semi = SparseGpt(torch::randn({4, 16}), rank1, 0.5, 0, 0, 8, /*damp=*/1e-30);
  ASSERT_TRUE(semi.ok()) << semi.status().ToString();
  EXPECT_GT(semi->damp, 1e-30) << "raised from the requested dampening";
  EXPECT_LE(semi->damp, 1.0 + 1e-9);
}

}  // namespace
}  // namespace prunelab::worker
