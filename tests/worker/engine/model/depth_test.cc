// Depth pruning: residual blocks found in zoo, hand-written and torchvision models, removed
// whole with shapes kept, each variant equal to the original whose removed branches output
// zero; block importance on cases with a known answer; a zoo ResNet through the executor.
#include <torch/torch.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/base/hash.h"
#include "tests/status_matchers.h"
#include "common/codec/records.h"
#include "common/spec/zoo_names.h"
#include "worker/engine/torch_executor.h"
#include "worker/engine/model/depth.h"
#include "worker/engine/model/zoo.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

std::vector<std::string> Names(const std::vector<DepthBlock>& blocks) {
  std::vector<std::string> out;
  for (const auto& b : blocks) out.push_back(b.name);
  return out;
}

// h0 = relu(x W0); a: h1 = h0 + relu(h0 Wa); b: h2 = h1 + (relu(h1 Wb1)) Wb2; also a sum of
// two equal branches (no shortcut) and a bias add, which are not blocks; logits = h2 Wh.
torch::jit::Module HandWritten() {
  torch::jit::Module m("__torch__.prunelab_test.Residual");
  m.register_attribute("training", c10::BoolType::get(), false);
  torch::manual_seed(5);
  for (auto [name, rows, cols] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"stem_w", 8, 4}, {"a_w", 8, 8}, {"b_w1", 16, 8}, {"b_w2", 8, 16}, {"p_w", 8, 8}, {"q_w", 8, 8}, {"head_w", 3, 8}})
    m.register_parameter(name, torch::randn({rows, cols}) * 0.5, false);
  m.register_parameter("bias", torch::randn({8}), false);
  m.define(R"JIT(
def forward(self, x: Tensor) -> Tensor:
    h = torch.relu(torch.linear(x, self.stem_w))
    h = h + torch.relu(torch.linear(h, self.a_w))
    h = h + torch.linear(torch.relu(torch.linear(h, self.b_w1)), self.b_w2)
    z = torch.linear(h, self.p_w) + torch.linear(h, self.q_w)
    z = z + self.bias
    return torch.linear(z, self.head_w)
)JIT");
  return m;
}

torch::Tensor Reference(const torch::jit::Module& m, const torch::Tensor& x, bool a, bool b) {
  auto t = [&](const char* n) { return m.attr(n).toTensor(); };
  auto h = torch::relu(torch::linear(x, t("stem_w")));
  if (a) h = h + torch::relu(torch::linear(h, t("a_w")));
  if (b) h = h + torch::linear(torch::relu(torch::linear(h, t("b_w1"))), t("b_w2"));
  auto z = torch::linear(h, t("p_w")) + torch::linear(h, t("q_w")) + t("bias");
  return torch::linear(z, t("head_w"));
}

TEST(DepthTest, HandWrittenBlocksAreFoundAndRemovedWhole) {
  auto m = HandWritten();
  auto blocks = FindDepthBlocks(m, *NewImageClassification({4}));
  ASSERT_TRUE(blocks.ok()) << blocks.status().ToString();
  // The two-branch sum of equal weight and the bias add are not blocks.
  ASSERT_EQ(Names(blocks.value()), (std::vector<std::string>{"a_w", "b_w"}));
  EXPECT_EQ(blocks->at(0).shortcut, "identity");
  EXPECT_EQ(blocks->at(1).weights, 16 * 8 * 2);
  torch::NoGradGuard g;
  auto x = torch::randn({5, 4});
  EXPECT_TRUE(torch::allclose(m.forward({x}).toTensor(), Reference(m, x, true, true), 1e-5, 1e-5));
  for (auto [remove, a, b] : std::vector<std::tuple<std::set<std::string>, bool, bool>>{
           {{"a_w"}, false, true}, {{"b_w"}, true, false}, {{"a_w", "b_w"}, false, false}}) {
    auto v = RemoveDepthBlocks(m, *NewImageClassification({4}), remove);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_TRUE(torch::allclose(v->forward({x}).toTensor(), Reference(m, x, a, b), 1e-5, 1e-5));
    EXPECT_EQ(v->attr("a_w").toTensor().numel(), a ? 64 : 0) << "a removed block's tensors are emptied";
    EXPECT_EQ(v->attr("b_w1").toTensor().numel(), b ? 128 : 0);
    auto again = LoadFromBytes(SaveToBytes(v.value()));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(Names(FindDepthBlocks(again.value(), *NewImageClassification({4})).value()).size(), size_t(a) + size_t(b));
  }
  EXPECT_TRUE(IsError(RemoveDepthBlocks(m, *NewImageClassification({4}), {"nope"}), Status::Code::kInvalidArgument, "depth: no block 'nope' in this model"));
}

TEST(DepthTest, ImportanceIsZeroForABlockThatChangesNothing) {
  auto m = HandWritten();
  // Block a contributes nothing (its weights are zero: relu(0) = 0); block b does.
  m.setattr("a_w", torch::zeros({8, 8}));
  Dataset d{torch::randn({64, 4}), torch::randint(0, 3, {64})};
  auto blocks = FindDepthBlocks(m, *NewImageClassification({4})).value();
  auto loss = DepthImportance(m, *NewImageClassification({4}), blocks, "loss", d, 4, 16, 0);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_NEAR(loss->at(0), 0.0, 1e-9);
  EXPECT_GT(std::abs(loss->at(1)), 1e-4);
  auto angular = DepthImportance(m, *NewImageClassification({4}), blocks, "angular", d, 4, 16, 0);
  ASSERT_TRUE(angular.ok()) << angular.status().ToString();
  EXPECT_NEAR(angular->at(0), 0.0, 1e-6) << "output = input";
  EXPECT_GT(angular->at(1), 1e-3);
  EXPECT_LE(angular->at(1), 1.0);
  auto r1 = DepthImportance(m, *NewImageClassification({4}), blocks, "random", d, 4, 16, 7), r2 = DepthImportance(m, *NewImageClassification({4}), blocks, "random", d, 4, 16, 7);
  EXPECT_EQ(r1.value(), r2.value()) << "seeded";
  EXPECT_TRUE(IsError(DepthImportance(m, *NewImageClassification({4}), blocks, "l1", d, 4, 16, 0), Status::Code::kInvalidArgument, "criterion 'l1' does not rank blocks"));
}

TEST(DepthTest, ZooResnetAndVitBlocksMatchTheSpecNames) {
  for (const std::string model : {"mlp", "cnn", "resnet", "vit"}) {
    SCOPED_TRACE(model);
    auto built = BuildZooModel(model, 1);
    ASSERT_TRUE(built.ok());
    torch::jit::Module m = built->module;
    m.eval();
    auto blocks = FindDepthBlocks(m, *NewImageClassification({1, 28, 28}));
    ASSERT_TRUE(blocks.ok()) << blocks.status().ToString();
    EXPECT_EQ(Names(blocks.value()), ZooBlockNames(model));
    if (model == "resnet") {
      EXPECT_EQ(blocks->at(0).shortcut, "identity");
      EXPECT_EQ(blocks->at(1).shortcut, "projection") << "b2 keeps its strided 1x1 shortcut";
    }
    if (model == "vit") EXPECT_EQ(blocks->at(0).branches, 2) << "a transformer layer: attention and MLP";
    if (blocks->empty()) continue;
    // Removing a block equals the original whose branch outputs zero (its last norm / last
    // linear zeroed).
    auto zeroed = CloneModule(m);
    const std::string last = blocks->back().name;
    for (const char* t : model == "resnet" ? std::vector<const char*>{"b3b_bn_w", "b3b_bn_b"}
                                           : std::vector<const char*>{"b1_o_w", "b1_o_b", "b1_fc2_w", "b1_fc2_b"})
      zeroed.setattr(t, torch::zeros_like(zeroed.attr(t).toTensor()));
    auto v = RemoveDepthBlocks(m, *NewImageClassification({1, 28, 28}), {last});
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    v->eval();
    torch::NoGradGuard g;
    auto x = torch::randn({3, 1, 28, 28});
    auto want = zeroed.forward({x}).toTensor(), got = v->forward({x}).toTensor();
    // resnet's b3 has a projection shortcut: without its branch the block outputs
    // relu(shortcut), as the zeroed original computes.
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max().item<double>();
    EXPECT_GT((m.forward({x}).toTensor() - got).abs().max().item<double>(), 1e-6) << "the block did something";
    EXPECT_LT(CountParameters(v.value()), CountParameters(m));
  }
}

TEST(DepthTest, TorchvisionBlocksAndTransformerLayersAreRemovedWhole) {
  if (std::system("/usr/bin/python3 -c 'import torchvision' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/bench/torchvision_models.py --out " +
                    dir.path() + " --models resnet18,mobilenet_v2,convnext_tiny,vit_b_16,swin_t > " + dir.path() +
                    "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  // name -> (blocks, first block, a branch's last tensors to zero in the reference)
  struct Want {
    size_t blocks;
    std::string first;
    std::vector<std::string> zero;  // of the last block removed below
  };
  const std::map<std::string, Want> want{
      {"resnet18", {8, "m.layer1.0", {"m.layer1.1.bn2.weight", "m.layer1.1.bn2.bias"}}},
      {"mobilenet_v2", {10, "m.features.3.conv", {"m.features.5.conv.3.weight", "m.features.5.conv.3.bias"}}},
      {"convnext_tiny", {18, "m.features.1.0", {"m.features.1.1.layer_scale"}}},
      {"vit_b_16",
       {12, "m.encoder.layers.encoder_layer_0",
        {"m.encoder.layers.encoder_layer_1.self_attention.out_proj.weight",
         "m.encoder.layers.encoder_layer_1.self_attention.out_proj.bias", "m.encoder.layers.encoder_layer_1.mlp.3.weight",
         "m.encoder.layers.encoder_layer_1.mlp.3.bias"}}},
      {"swin_t", {12, "m.features.1.0", {"m.features.1.1.attn.proj.weight", "m.features.1.1.attn.proj.bias",
                                          "m.features.1.1.mlp.3.weight", "m.features.1.1.mlp.3.bias"}}}};
  for (const auto& [name, w] : want) {
    SCOPED_TRACE(name);
    std::ifstream in(dir.path() + "/" + name + ".pt", std::ios::binary);
    auto dense = LoadFromBytes(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
    ASSERT_TRUE(dense.ok());
    dense->eval();
    auto blocks = FindDepthBlocks(dense.value(), *NewImageClassification({3, 32, 32}));
    ASSERT_TRUE(blocks.ok()) << blocks.status().ToString();
    ASSERT_EQ(blocks->size(), w.blocks) << ::testing::PrintToString(Names(blocks.value()));
    EXPECT_EQ(blocks->front().name, w.first);
    // The second block of the list removed: equal to the original with its branch zeroed.
    const std::string second = blocks->at(1).name;
    auto v = RemoveDepthBlocks(dense.value(), *NewImageClassification({3, 32, 32}), {second});
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    v->eval();
    auto zeroed = CloneModule(dense.value());
    for (const auto& t : w.zero) SetTensor(zeroed, t, torch::zeros_like(GetTensor(zeroed, t)));
    torch::NoGradGuard g;
    torch::manual_seed(2);
    auto x = torch::randn({2, 3, 32, 32});
    auto want_out = zeroed.forward({x}).toTensor(), got = v->forward({x}).toTensor();
    EXPECT_TRUE(torch::allclose(got, want_out, 1e-4, 1e-4)) << (got - want_out).abs().max().item<double>();
    EXPECT_GT((dense->forward({x}).toTensor() - got).abs().max().item<double>(), 1e-5) << "the block did something";
    EXPECT_LT(CountParameters(v.value()), CountParameters(dense.value()));
    // Half of the blocks, every other one.
    std::set<std::string> half;
    for (size_t i = 0; i < blocks->size(); i += 2) half.insert(blocks->at(i).name);
    auto h = RemoveDepthBlocks(dense.value(), *NewImageClassification({3, 32, 32}), half);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    EXPECT_EQ(FindDepthBlocks(h.value(), *NewImageClassification({3, 32, 32}))->size(), blocks->size() - half.size());
  }
}

TEST(DepthTest, ExecutorRemovesZooResnetBlocksAndRecordsThem) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST missing: run cluster/install-deps.sh (package dataset-fashion-mnist)";
  ConfigureTorchThreads(1);
  auto exec = NewTorchExecutor();
  Task t;
  t.sweep_id = "sw-depth";
  t.model = "resnet";
  t.dataset.path = kFashionDir;
  t.dataset.train_subset = 2048;
  t.dataset.test_subset = 500;
  t.training.epochs = 1;
  t.training.batch_size = 64;
  Task train = t;
  train.task_id = "train";
  train.kind = TaskKind::kTrainBaseline;
  ExecutionContext ctx;
  auto base = exec->Execute(train, ctx);
  ASSERT_TRUE(base.result.ok) << base.result.error;
  std::string artifact = base.artifact;
  ctx.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return artifact; };
  Task trial = t;
  trial.task_id = "t001";
  trial.kind = TaskKind::kPruneTrial;
  trial.trial.criterion = "loss";
  trial.trial.granularity = "depth";
  trial.trial.schedule = "iterative";
  trial.trial.rounds = 2;
  trial.trial.curve = "linear";
  trial.trial.sparsity = 0.66;  // 2 of 3 blocks: one per round
  trial.trial.finetune_epochs = 1;
  trial.trial.calibration_batches = 2;
  trial.trial.exclude = {"b3"};
  trial.baseline_artifact = base.result.artifact_hash;
  auto pruned = exec->Execute(trial, ctx);
  ASSERT_TRUE(pruned.result.ok) << pruned.result.error;
  auto cfg = ParseJson(pruned.result.trial_json);
  ASSERT_TRUE(cfg.ok());
  const auto& depth = cfg.value()["depth"];
  std::set<std::string> removed = depth["removed"].get<std::set<std::string>>();
  EXPECT_EQ(removed, (std::set<std::string>{"b1", "b2"})) << "b3 is excluded";
  ASSERT_EQ(depth["importance"].size(), 2u) << "ranked again each round";
  EXPECT_EQ(depth["importance"][0].size(), 2u);
  EXPECT_EQ(depth["importance"][1].size(), 1u);
  ASSERT_EQ(pruned.result.intermediates.size(), 1u);
  for (const auto& l : pruned.result.layers) {
    const bool gone = l.name.rfind("b1", 0) == 0 || l.name.rfind("b2a", 0) == 0 || l.name.rfind("b2b", 0) == 0;
    EXPECT_EQ(l.total == 0, gone) << l.name;
  }
  EXPECT_GT(pruned.result.achieved_sparsity, 0.1);
  EXPECT_LT(pruned.result.params, base.result.params);
  // Two of three blocks gone from a model trained for one epoch on 2048 images: far below the
  // dense model (0.60 when written), far above chance (0.10).
  EXPECT_GT(pruned.result.accuracy, 0.25) << "fine-tuned after each round (dense: " << base.result.accuracy << ")";
  EXPECT_EQ(pruned.result.artifact_hash, ContentHash(pruned.artifact));

  // Limits: a fraction that removes no block, and a weight criterion.
  trial.trial.schedule = "one_shot";
  trial.trial.rounds = 1;
  trial.trial.sparsity = 0.1;
  auto none = exec->Execute(trial, ctx);
  EXPECT_FALSE(none.result.ok);
  EXPECT_NE(none.result.error.find("removes none"), std::string::npos) << none.result.error;
  trial.trial.sparsity = 0.5;
  trial.trial.criterion = "l1";
  auto l1 = exec->Execute(trial, ctx);
  EXPECT_FALSE(l1.result.ok);
  EXPECT_NE(l1.result.error.find("loss, angular or random"), std::string::npos) << l1.result.error;
}

}  // namespace
}  // namespace prunelab::worker
