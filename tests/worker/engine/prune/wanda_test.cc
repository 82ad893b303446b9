// Wanda against an independent reference written from the paper (tests/python/wanda_reference.py):
// the engine's masks, from input norms gathered by hooks in the model's graph, are identical.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include "tests/test_util.h"
#include "worker/engine/model/model.h"
#include "worker/engine/model/user_model.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/prune/pruning.h"

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

// `activation` importance through the graph hooks (models without a probe()): each hidden
// neuron scores the energy it feeds the layer that reads it — here exactly the sum over every
// calibration position of its ReLU output squared, computed directly from the weights.
TEST_F(ReferenceTest, ActivationImportanceIsTheEnergyEachStructureFeedsItsConsumers) {
  ASSERT_EQ(layout.groups.size(), 1u) << "the 32 hidden neurons (the output layer is never a group)";
  std::vector<std::string> magnitude_only;
  int64_t samples = 0;
  auto copy = model.clone();
  const int n = static_cast<int>(calibration.size());
  auto scores = HookedActivationScores(copy, layout, *task, calibration, 1, n, &magnitude_only, &samples);
  ASSERT_TRUE(scores.ok()) << scores.status().ToString();
  EXPECT_TRUE(magnitude_only.empty());
  EXPECT_EQ(samples, n);
  torch::NoGradGuard g;
  auto first = model.attr("0").toModule();
  auto hidden = torch::relu(torch::linear(calibration.inputs.reshape({-1, 16}), first.attr("weight").toTensor(),
                                          first.attr("bias").toTensor()));
  const auto expected = hidden.pow(2).sum(0);
  const auto got = scores->at(layout.groups[0].name);
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5)) << got << "\n" << expected;
  // A neuron that never fires ranks lowest however large its weights.
  auto dead = std::get<1>(expected.min(0)).item<int64_t>();
  EXPECT_EQ(std::get<1>(got.min(0)).item<int64_t>(), dead);
}

// A group the calibration reaches through none of its consumers (here: its consumer slice
// taken out of the layout) is scored by weight magnitude, and the result names it.
TEST_F(ReferenceTest, AGroupNoCalibratedLayerReadsIsScoredByMagnitudeAndNamed) {
  ModelLayout unread = layout;
  auto& slices = unread.groups.at(0).slices;
  slices.erase(std::remove_if(slices.begin(), slices.end(), [](const Slice& s) { return !s.score; }), slices.end());
  std::vector<std::string> magnitude_only;
  auto copy = model.clone();
  auto scores = HookedActivationScores(copy, unread, *task, calibration, 1, static_cast<int>(calibration.size()),
                                       &magnitude_only, nullptr);
  ASSERT_TRUE(scores.ok()) << scores.status().ToString();
  EXPECT_EQ(magnitude_only, std::vector<std::string>{unread.groups[0].name});
  EXPECT_TRUE(torch::equal(scores->at(unread.groups[0].name), GroupScores(model, unread.groups[0], {})));
}

// Both criteria run sequentially, as the papers: the second layer is calibrated on what the
// first outputs once pruned (and, for SparseGPT, reconstructed); the reference does the same.
TEST_F(ReferenceTest, WandaMasksMatchAReferenceWrittenFromThePaperUnstructuredAndTwoOfFour) {
  for (const auto& [pattern, n, mm] : std::vector<std::tuple<std::string, int, int>>{{"unstructured", 0, 0}, {"2of4", 2, 4}}) {
    SCOPED_TRACE(pattern);
    torch::jit::Module copy = CloneModule(model);
    PlanOptions o;
    o.per_row = true;
    auto done = PruneSequentially(copy, layout, *task, calibration, 4, 16, /*sparsegpt=*/false, 0.5, o, n, mm, {});
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    EXPECT_EQ(done->samples, 64);
    ASSERT_EQ(done->layers.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const std::string& w = layout.layers[i].weight;
      EXPECT_FALSE(done->layers[i].magnitude) << w << ": calibrated through the graph hooks";
      auto want = ReadBytes(dir.path() + "/" + std::vector<std::string>{"0", "2"}[i] + "." + pattern + ".u8");
      auto got = done->masks.at(w).to(torch::kUInt8).contiguous();
      ASSERT_EQ(want.size(), static_cast<size_t>(got.numel()));
      int64_t differ = 0;
      for (int64_t k = 0; k < got.numel(); ++k) differ += got.data_ptr<uint8_t>()[k] != want[k];
      EXPECT_EQ(differ, 0) << w << ": masks differ in " << differ << " of " << got.numel() << " weights";
      EXPECT_NEAR(got.to(torch::kFloat).mean().item<double>(), 0.5, 1e-9);
      EXPECT_EQ(GetTensor(copy, w).mul(1 - done->masks.at(w)).abs().sum().item<double>(), 0.0) << "pruned in place";
    }
  }
  // Magnitude alone chooses differently on these scaled features: the norms matter.
  auto norms = CalibrateInputNorms(model, layout, *task, calibration, 4, 16);
  ASSERT_TRUE(norms.ok());
  PlanOptions o;
  o.per_row = true;
  auto l1 = WeightScores(model, layout, Criterion::kL1, nullptr, 0);
  auto wanda = WandaScores(model, layout, norms.value(), nullptr);
  ASSERT_TRUE(l1.ok() && wanda.ok());
  auto a = PlanMasks(layout, l1.value(), 0.5, o, 0, 0, {}), b = PlanMasks(layout, wanda.value(), 0.5, o, 0, 0, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(torch::equal(a->at(layout.layers[0].weight), b->at(layout.layers[0].weight)));
}

TEST_F(ReferenceTest, SparseGptWeightsAndMasksMatchAReferenceWrittenFromThePaper) {
  for (const auto& [pattern, n, mm] : std::vector<std::tuple<std::string, int, int>>{{"unstructured", 0, 0}, {"2of4", 2, 4}}) {
    SCOPED_TRACE(pattern);
    torch::jit::Module copy = CloneModule(model);
    auto done = PruneSequentially(copy, layout, *task, calibration, 4, 16, /*sparsegpt=*/true, 0.5, PlanOptions{}, n, mm,
                                  {}, /*block=*/8);
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    ASSERT_EQ(done->layers.size(), 2u);
    EXPECT_EQ(done->peak_statistic_bytes, 32 * 32 * 8) << "one layer's Hessian at a time: the larger, 32 x 32 float64";
    for (size_t i = 0; i < 2; ++i) {
      const std::string& w = layout.layers[i].weight;
      SCOPED_TRACE(w);
      const std::string base = dir.path() + "/" + std::vector<std::string>{"0", "2"}[i] + ".sparsegpt." + pattern;
      auto want_bytes = ReadBytes(base + ".f64");
      auto mine = GetTensor(copy, w).to(torch::kFloat64);
      ASSERT_EQ(want_bytes.size(), static_cast<size_t>(mine.numel() * 8));
      auto want = torch::from_blob(want_bytes.data(), mine.sizes(), torch::kFloat64).clone();
      const double diff = (mine - want).abs().max().item<double>(), scale = want.abs().max().item<double>();
      EXPECT_LT(diff, 1e-5 * scale) << "max |difference| " << diff << " (weights up to " << scale << ")";
      auto want_mask = ReadBytes(base + ".u8");
      auto mask = done->masks.at(w).to(torch::kUInt8).contiguous();
      int64_t differ = 0;
      for (int64_t k = 0; k < mask.numel(); ++k) differ += mask.data_ptr<uint8_t>()[k] != want_mask[k];
      EXPECT_EQ(differ, 0) << "masks differ in " << differ << " of " << mask.numel();
      EXPECT_NEAR(done->masks.at(w).mean().item<double>(), 0.5, 1e-9);
      EXPECT_EQ(mine.mul(1 - done->masks.at(w).to(torch::kFloat64)).abs().sum().item<double>(), 0.0);
      EXPECT_GT(done->layers[i].relative_error, 0.0);
      EXPECT_LT(done->layers[i].relative_error, 1.0);
      EXPECT_DOUBLE_EQ(done->layers[i].damp, 0.01) << "positive definite at the first dampening";
    }
  }
  // Reconstruction beats plain masking: the same mask without the update loses more of W X.
  auto grams = CalibrateInputGrams(model, layout, *task, calibration, 4, 16);
  ASSERT_TRUE(grams.ok());
  const std::string& w0 = layout.layers[0].weight;
  auto sg = SparseGpt(GetTensor(model, w0), grams->grams.at(w0), 0.5, 0, 0, 8).value();
  auto W = GetTensor(model, w0).to(torch::kFloat64), H = grams->grams.at(w0);
  auto err = [&](const torch::Tensor& v) {
    auto d = W - v;
    return (d.matmul(H) * d).sum().item<double>() / (W.matmul(H) * W).sum().item<double>();
  };
  EXPECT_LT(sg.relative_error, err(W * sg.mask.to(torch::kFloat64)));
  EXPECT_NEAR(sg.relative_error, err(sg.weight.to(torch::kFloat64)), 1e-9);
  // A Hessian that is only semi-definite (rank 1: one calibration token) does not factor at a
  // negligible dampening; it is raised until it does, and the value used is recorded.
  auto x = torch::randn({1, 16}, torch::kFloat64) + 3.0;
  auto semi = SparseGpt(torch::randn({4, 16}), x.t().matmul(x), 0.5, 0, 0, 8, /*damp=*/1e-30);
  ASSERT_TRUE(semi.ok()) << semi.status().ToString();
  EXPECT_GT(semi->damp, 1e-30) << "raised from the requested dampening";
  EXPECT_LE(semi->damp, 1.0 + 1e-9);
}

}  // namespace
}  // namespace prunelab::worker
