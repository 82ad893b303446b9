// Wanda against an independent reference written from the paper (tests/python/wanda_reference.py):
// the engine's masks, from input norms gathered by hooks in the model's graph, are identical.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

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

TEST(WandaTest, MasksMatchAReferenceWrittenFromThePaperUnstructuredAndTwoOfFour) {
  if (!HaveTorch()) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  const std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/tests/python/wanda_reference.py " +
                          dir.path() + " > " + dir.path() + "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(dir.path() + "/log.txt");
  auto m = LoadFromBytes(ReadAll(dir.path() + "/model.pt"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::istringstream shape_text(ReadAll(dir.path() + "/shape.txt"));
  std::vector<int64_t> shape;
  for (int64_t s; shape_text >> s;) shape.push_back(s);
  ASSERT_EQ(shape.size(), 3u);
  auto raw = ReadBytes(dir.path() + "/calibration.f32");
  ASSERT_EQ(raw.size(), static_cast<size_t>(shape[0] * shape[1] * shape[2] * 4));
  Dataset calibration{torch::from_blob(raw.data(), shape, torch::kFloat32).clone(), torch::zeros({shape[0]}, torch::kLong)};
  auto task = NewImageClassification({shape[1], shape[2]});  // float samples [5, 16]: the task only feeds them
  auto layout = InferLayout(m.value(), *task);
  ASSERT_EQ(layout.layers.size(), 2u);
  auto norms = CalibrateInputNorms(m.value(), layout, *task, calibration, /*batches=*/4, /*batch_size=*/16);
  ASSERT_TRUE(norms.ok()) << norms.status().ToString();
  EXPECT_EQ(norms->samples, 64);
  ASSERT_EQ(norms->norms.size(), 2u) << "both linears calibrated through the graph hooks";
  std::vector<std::string> magnitude_only;
  auto scores = WandaScores(m.value(), layout, norms.value(), &magnitude_only);
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
  auto l1 = WeightScores(m.value(), layout, Criterion::kL1, nullptr, 0);
  ASSERT_TRUE(l1.ok());
  auto magnitude = PlanMasks(layout, l1.value(), 0.5, o, 0, 0, {});
  ASSERT_TRUE(magnitude.ok());
  EXPECT_FALSE(torch::equal(magnitude->at(layout.layers[0].weight), unstructured->at(layout.layers[0].weight)));
}

}  // namespace
}  // namespace prunelab::worker
