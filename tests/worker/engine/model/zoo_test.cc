// The pruning engine across the model zoo and users' TorchScript modules: layouts, structural
// removal that preserves function, activation criteria, plans (global scope, exclusions,
// overrides, width rounding), schedules, and the real executor's iterative rounds and export.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/codec/records.h"
#include "tests/status_matchers.h"
#include "common/spec/spec.h"
#include "common/spec/zoo_names.h"
#include "worker/engine/torch_executor.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/prune/pruning.h"
#include "worker/engine/train/training.h"
#include "worker/engine/model/user_model.h"
#include "tests/worker/engine/user_modules.h"
#include "worker/engine/model/depth.h"
#include "worker/engine/model/zoo.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

std::vector<float> Values(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kFloat32);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Non-trivial norm statistics so equivalence checks mean something.
void Randomize(torch::jit::Module& m) {
  torch::NoGradGuard g;
  for (const auto& b : m.named_buffers()) {
    if (b.name.find("_mean") != std::string::npos) b.value.uniform_(-0.5, 0.5);
    if (b.name.find("_var") != std::string::npos) b.value.uniform_(0.5, 2.0);
  }
  for (const auto& p : m.named_parameters())
    if (p.value.dim() == 1) p.value.uniform_(-0.5, 1.0);
  m.eval();
}

TEST(ZooTest, LayoutsMatchTheNamesSpecsAreCheckedAgainst) {
  for (const auto& name : ZooModelNames()) {
    auto l = ZooLayout(name);
    ASSERT_TRUE(l.ok()) << name;
    std::vector<std::string> layers, groups;
    for (const auto& x : l->layers) layers.push_back(x.name);
    for (const auto& g : l->groups) groups.push_back(g.name);
    EXPECT_EQ(layers, ZooLayerNames(name)) << name;
    EXPECT_EQ(groups, ZooGroupNames(name)) << name;
  }
  EXPECT_TRUE(IsError(BuildZooModel("lenet", 1), Status::Code::kInvalidArgument, "model 'lenet' is not in the zoo"));
}

// The sample a zoo model takes: a 28x28 image, or (gpt) 16 token ids below 64.
const SampleSpec kGptSample{at::kLong, {16}, 64};
at::Tensor ZooInput(const std::string& name, int64_t batch) {
  return name == "gpt" ? torch::randint(0, kGptSample.vocabulary, {batch, kGptSample.shape[0]}, torch::kLong)
                       : torch::randn({batch, 1, 28, 28});
}

TEST(ZooTest, StructuredRemovalEqualsZeroingForEveryModel) {
  for (const auto& name : ZooModelNames()) {
    for (double sparsity : {0.25, 0.5}) {
      auto built = BuildZooModel(name, 3, name == "gpt" ? kGptSample : SampleSpec{});
      ASSERT_TRUE(built.ok());
      auto& base = built->module;
      Randomize(base);
      const auto& layout = built->layout;
      auto keep = L1ChannelSelection(base, layout, sparsity);
      auto pruned = base.deepcopy();
      RemoveStructures(pruned, layout, keep);
      auto zeroed = base.deepcopy();
      ZeroStructures(zeroed, layout, keep);
      torch::NoGradGuard g;
      auto x = ZooInput(name, 4);
      auto a = pruned.forward({x}).toTensor();
      auto b = zeroed.forward({x}).toTensor();
      const std::vector<int64_t> want = name == "gpt" ? std::vector<int64_t>{4, 16, 64} : std::vector<int64_t>{4, 10};
      ASSERT_EQ(a.sizes(), want) << name;
      EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-4)) << name << " at " << sparsity << ": max diff "
                                                     << (a - b).abs().max().item<float>();
      EXPECT_LT(CountParameters(pruned), CountParameters(base)) << name;
      // Every group now has exactly the kept number of structures in every tensor it slices.
      for (const auto& grp : layout.groups)
        for (const auto& s : grp.slices)
          EXPECT_EQ(GetTensor(pruned, s.param).size(s.dim), keep.at(grp.name).size(0) * s.block)
              << name << " " << grp.name << " " << s.param;
    }
  }
}

TEST(ZooTest, ResidualGroupsAndAttentionHeadsStayConsistent) {
  auto resnet = BuildZooModel("resnet", 1).value();
  Keep keep{{"res1", torch::tensor({0, 3, 5, 9}, torch::kInt64)}};
  RemoveStructures(resnet.module, resnet.layout, keep);
  // Both producers into the stream and every reader of it shrink together.
  EXPECT_EQ(GetTensor(resnet.module, "stem_w").size(0), 4);
  EXPECT_EQ(GetTensor(resnet.module, "b1b_w").size(0), 4);
  EXPECT_EQ(GetTensor(resnet.module, "b1a_w").size(1), 4);
  EXPECT_EQ(GetTensor(resnet.module, "b2a_w").size(1), 4);
  EXPECT_EQ(GetTensor(resnet.module, "b2s_w").size(1), 4);
  resnet.module.eval();
  torch::NoGradGuard g;
  EXPECT_EQ(resnet.module.forward({torch::randn({2, 1, 28, 28})}).toTensor().size(1), 10);

  auto vit = BuildZooModel("vit", 1).value();
  RemoveStructures(vit.module, vit.layout, {{"b0_heads", torch::tensor({1, 3}, torch::kInt64)}});
  EXPECT_EQ(GetTensor(vit.module, "b0_q_w").size(0), 32);  // 2 heads x 16
  EXPECT_EQ(GetTensor(vit.module, "b0_v_b").size(0), 32);
  EXPECT_EQ(GetTensor(vit.module, "b0_o_w").size(1), 32);
  vit.module.eval();
  EXPECT_EQ(vit.module.forward({torch::randn({2, 1, 28, 28})}).toTensor().size(1), 10);
  auto acts = vit.module.get_method("probe")({torch::randn({2, 1, 28, 28})}).toTensorVector();
  ASSERT_EQ(acts.size(), vit.layout.groups.size());
  EXPECT_EQ(acts[0].size(1), 2) << "the probe sees the two remaining heads";

  // The zoo decoder: heads leave q, k, v and o together, head_dim stays, the tied embedding
  // and the causal mask are untouched: position t never sees t + 1.
  auto gpt = BuildZooModel("gpt", 1, kGptSample).value();
  RemoveStructures(gpt.module, gpt.layout, {{"b2_heads", torch::tensor({0, 2, 3}, torch::kInt64)}});
  EXPECT_EQ(GetTensor(gpt.module, "b2_k_w").size(0), 3 * kGptHeadDim);
  EXPECT_EQ(GetTensor(gpt.module, "b2_o_w").size(1), 3 * kGptHeadDim);
  EXPECT_EQ(GetTensor(gpt.module, "wte").size(1), kGptWidth);
  gpt.module.eval();
  auto ids = ZooInput("gpt", 2);
  auto logits = gpt.module.forward({ids}).toTensor();
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 16, 64}));
  auto changed = ids.clone();
  changed.select(1, 15).fill_(7);
  auto again = gpt.module.forward({changed}).toTensor();
  EXPECT_TRUE(torch::allclose(logits.narrow(1, 0, 15), again.narrow(1, 0, 15), 1e-5, 1e-6))
      << "causal: the last token changes no earlier position";
  auto gacts = gpt.module.get_method("probe")({ids}).toTensorVector();
  ASSERT_EQ(gacts.size(), gpt.layout.groups.size());
  EXPECT_EQ(gacts[4].size(1), 3) << "b2's probe sees its three remaining heads";
}

// The generation contract: prefill of a prompt then one decode step per token gives the
// logits forward() gives on the whole sequence, for the dense decoder, with heads and neurons
// removed, and with whole layers removed; the cache shrinks with the heads.
TEST(ZooTest, TheDecodersCacheAgreesWithItsForwardBeforeAndAfterPruning) {
  auto built = BuildZooModel("gpt", 4, kGptSample).value();
  torch::jit::Module dense = built.module;
  dense.eval();
  auto heads = CloneModule(dense);
  RemoveStructures(heads, built.layout,
                   {{"b0_heads", torch::tensor({1, 2}, torch::kInt64)}, {"b1_heads", torch::tensor({0, 3}, torch::kInt64)},
                    {"b3_mlp", torch::arange(0, kGptMlp, 2, torch::kInt64)}});
  heads.eval();
  auto depth = RemoveDepthBlocks(dense, *NewCausalLanguageModeling(16, 64), {"b1", "b2"});
  ASSERT_TRUE(depth.ok()) << depth.status().ToString();
  depth->eval();
  torch::NoGradGuard g;
  auto ids = ZooInput("gpt", 2);
  auto cache_bytes = [](const std::vector<at::Tensor>& c) {
    int64_t n = 0;
    for (const auto& t : c) n += t.numel() * t.element_size();
    return n;
  };
  std::map<std::string, int64_t> bytes;
  for (auto [name, m] : std::vector<std::pair<std::string, torch::jit::Module*>>{
           {"dense", &dense}, {"heads", &heads}, {"depth", &depth.value()}}) {
    SCOPED_TRACE(name);
    auto full = m->forward({ids}).toTensor();
    auto pre = m->get_method("prefill")({ids.narrow(1, 0, 10)}).toTuple();
    auto logits = pre->elements()[0].toTensor();
    EXPECT_TRUE(torch::allclose(logits, full.narrow(1, 0, 10), 1e-4, 1e-5));
    auto cache = pre->elements()[1].toTensorVector();
    ASSERT_EQ(cache.size(), 2u * kGptLayers);
    bytes[name] = cache_bytes(cache);
    for (int64_t t = 10; t < 16; ++t) {
      auto step = m->get_method("decode")({ids.narrow(1, t, 1), cache}).toTuple();
      auto next = step->elements()[0].toTensor();
      EXPECT_TRUE(torch::allclose(next.select(1, 0), full.select(1, t), 1e-4, 1e-5))
          << "position " << t << ": max diff " << (next.select(1, 0) - full.select(1, t)).abs().max().item<double>();
      cache = step->elements()[1].toTensorVector();
    }
  }
  EXPECT_EQ(bytes["heads"] * 4, bytes["dense"] * 3) << "12 of 16 heads left (2 + 2 + 4 + 4)";
  EXPECT_EQ(bytes["depth"] * 2, bytes["dense"]) << "half the layers, half the cache";
}

TEST(ImportanceTest, ActivationAndApozMatchHandComputedReferences) {
  auto mlp = BuildZooModel("mlp", 1).value();
  {
    torch::NoGradGuard g;
    auto w = torch::zeros({256, 784});
    w[0].fill_(1.0);  // neuron 0 outputs relu(sum x) = 784 on an all-ones image
    SetTensor(mlp.module, "fc1_w", w);
    auto b = torch::zeros({256});
    b[1] = 2.0;   // neuron 1 outputs a constant 2
    b[2] = -1.0;  // neuron 2 is always zero after ReLU
    SetTensor(mlp.module, "fc1_b", b);
  }
  Dataset d{torch::ones({8, 1, 28, 28}), torch::zeros({8}, torch::kInt64)};
  auto act = ActivationScores(mlp.module, mlp.layout, *ClassificationFor(d), d, 2, 4, /*apoz=*/false);
  ASSERT_TRUE(act.ok()) << act.status().ToString();
  EXPECT_EQ(Values(act->at("fc1").slice(0, 0, 3)), (std::vector<float>{784, 2, 0}));
  auto apoz = ActivationScores(mlp.module, mlp.layout, *ClassificationFor(d), d, 2, 4, /*apoz=*/true);
  EXPECT_EQ(Values(apoz->at("fc1").slice(0, 0, 3)), (std::vector<float>{1, 1, 0}));
  // Keeping 2 of the first 3 by activation keeps neurons 0 and 1.
  EXPECT_EQ(Values(ChannelsToKeep(act->at("fc1").slice(0, 0, 3), 0.34).to(torch::kFloat32)), (std::vector<float>{0, 1}));
}

ModelLayout TwoLayers() {
  ModelLayout l;
  l.layers = {{"a", "a_w"}, {"b", "b_w"}};
  return l;
}

TEST(PlanTest, GlobalScopeRanksAcrossLayersAndKeepsTheMinimum) {
  std::map<std::string, torch::Tensor> scores{{"a_w", torch::tensor({1.f, 2.f, 3.f, 4.f})},
                                              {"b_w", torch::tensor({10.f, 20.f, 30.f, 40.f})}};
  PlanOptions layer;
  auto ml = PlanMasks(TwoLayers(), scores, 0.5, layer, 0, 0, {}).value();
  EXPECT_EQ(Values(ml["a_w"]), (std::vector<float>{0, 0, 1, 1}));
  EXPECT_EQ(Values(ml["b_w"]), (std::vector<float>{0, 0, 1, 1}));
  PlanOptions global;
  global.scope = "global";
  global.min_keep = 0.25;
  // 4 kept in all: a's best (reserved), b's best (reserved), then 30 and 20 globally.
  auto mg = PlanMasks(TwoLayers(), scores, 0.5, global, 0, 0, {}).value();
  EXPECT_EQ(Values(mg["a_w"]), (std::vector<float>{0, 0, 0, 1}));
  EXPECT_EQ(Values(mg["b_w"]), (std::vector<float>{0, 1, 1, 1}));
  global.min_keep = 0;
  auto m0 = PlanMasks(TwoLayers(), scores, 0.5, global, 0, 0, {}).value();
  EXPECT_EQ(Values(m0["a_w"]), (std::vector<float>{0, 0, 0, 0}));
}

TEST(PlanTest, ExclusionsOverridesAndAchievedSparsityPerLayer) {
  auto cnn = BuildZooModel("cnn", 2).value();
  TrialConfig tc;
  tc.exclude = {"first", "last"};
  tc.overrides = {{"fc1", 0.9}};
  auto o = MakePlanOptions(tc, cnn.layout, false);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  auto scores = WeightScores(cnn.module, cnn.layout, Criterion::kL1, nullptr, 0).value();
  auto masks = PlanMasks(cnn.layout, scores, 0.6, o.value(), 0, 0, {}).value();
  EXPECT_EQ(masks.count("conv1_w"), 0u);
  EXPECT_EQ(masks.count("fc2_w"), 0u);
  auto dense = cnn.module.deepcopy();
  ApplyMasks(cnn.module, masks);
  for (const auto& st : LayerStats(cnn.module, dense, cnn.layout)) {
    double s = 1.0 - static_cast<double>(st.nonzero) / st.dense;
    double want = st.name == "fc1" ? 0.9 : st.name == "conv2" ? 0.6 : 0.0;
    EXPECT_NEAR(s, want, 1.0 / st.dense) << st.name;
  }
  tc.exclude = {"conv7"};
  auto bad = MakePlanOptions(tc, cnn.layout, false);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("pruning.exclude: 'conv7'"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("conv2"), std::string::npos) << "lists the layers";
}

TEST(PlanTest, GlobalUnstructuredReachesTheRequestedOverallSparsity) {
  auto cnn = BuildZooModel("cnn", 4).value();
  PlanOptions o;
  o.scope = "global";
  auto scores = WeightScores(cnn.module, cnn.layout, Criterion::kL1, nullptr, 0).value();
  auto masks = PlanMasks(cnn.layout, scores, 0.8, o, 0, 0, {}).value();
  int64_t dense = PrunableWeights(cnn.module, cnn.layout);
  ApplyMasks(cnn.module, masks);
  EXPECT_NEAR(AchievedSparsity(cnn.module, cnn.layout, dense), 0.8, 1e-4);
}

TEST(PlanTest, GlobalStructuredKeepsTheMinimumPerGroupAndTheTotal) {
  ModelLayout l;
  l.groups = {{"a", "neuron", {{"a_w", 0, 1, true}}, {"a"}, ""}, {"b", "neuron", {{"b_w", 0, 1, true}}, {"b"}, ""}};
  // a: one strong unit among weak ones; b: units close to their mean.
  std::map<std::string, torch::Tensor> gs{{"a", torch::tensor({1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 9.f})},
                                          {"b", torch::tensor({4.f, 3.f, 5.f, 4.f, 4.f, 5.f, 3.f, 4.f})}};
  std::map<std::string, int64_t> original{{"a", 8}, {"b", 8}};
  PlanOptions o;
  o.scope = "global";
  o.min_keep = 0.25;  // 2 of 8 per group
  auto keep = PlanStructures(l, gs, original, 0.5, o).value();
  EXPECT_EQ(keep["a"].size(0) + keep["b"].size(0), 8) << "half of all 16 structures";
  EXPECT_GE(keep["a"].size(0), 2);
  EXPECT_GE(keep["b"].size(0), 2);
  // Normalized by the group mean, a's strong unit (9 / 2 = 4.5) outranks every unit of b (<= 1.25).
  EXPECT_EQ(Values(keep["a"].to(torch::kFloat32)).back(), 7.0f);
  EXPECT_EQ(keep["b"].size(0), 6) << "b's units are all close to its mean, a's weak ones far below";
}

TEST(PlanTest, KeptWidthsRoundToAMultiple) {
  EXPECT_EQ(KeptWidth(64, 0.3, 1, 64), 45);
  EXPECT_EQ(KeptWidth(64, 0.3, 8, 64), 48);
  EXPECT_EQ(KeptWidth(64, 0.97, 8, 64), 8) << "at least one multiple";
  EXPECT_EQ(KeptWidth(10, 0.5, 16, 10), 10) << "never more than there is";
  auto cnn = BuildZooModel("cnn", 5).value();
  PlanOptions o;
  o.round_to = 8;
  std::map<std::string, torch::Tensor> gs;
  std::map<std::string, int64_t> original;
  for (const auto& g : cnn.layout.groups) {
    gs[g.name] = GroupScores(cnn.module, g, {});
    original[g.name] = cnn.layout.Structures(cnn.module, g);
  }
  auto keep = PlanStructures(cnn.layout, gs, original, 0.3, o).value();
  for (const auto& [name, k] : keep) EXPECT_EQ(k.size(0) % 8, 0) << name << " keeps " << k.size(0);
}

TEST(PlanTest, SchedulesReachTheTargetOnTheLastRound) {
  for (const char* curve : {"linear", "cubic"}) {
    double prev = 0;
    for (uint32_t r = 1; r <= 5; ++r) {
      double s = ScheduledSparsity(0.9, r, 5, curve);
      EXPECT_GT(s, prev) << curve;
      prev = s;
    }
    EXPECT_DOUBLE_EQ(prev, 0.9) << curve;
  }
  EXPECT_NEAR(ScheduledSparsity(0.9, 1, 5, "linear"), 0.18, 1e-12);
  EXPECT_NEAR(ScheduledSparsity(0.9, 1, 5, "cubic"), 0.9 * (1 - 0.512), 1e-12) << "cubic prunes fastest early";
}

using prunelab::testing::UserLinear;

// plain: fc1 -> fc2 -> out; residual: h + relu(fc2(h)); cat: out reads cat([h, h]);
// norm: layer_norm over fc2's outputs (and over fc1's: "allnorm").
torch::jit::Module UserMlp(const std::string& kind) {
  torch::jit::Module m("__torch__.user.Net");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_module("fc1", UserLinear(64, 784));
  m.register_module("fc2", UserLinear(64, 64));
  m.register_module("out", UserLinear(10, kind == "cat" ? 128 : 64));
  std::string first = kind == "allnorm" ? "    h = torch.layer_norm(torch.relu(self.fc1.forward(torch.flatten(x, 1))), [64])\n"
                                        : "    h = torch.relu(self.fc1.forward(torch.flatten(x, 1)))\n";
  std::string body = kind == "residual" ? "    h = h + torch.relu(self.fc2.forward(h))\n"
                     : kind == "shared"  ? "    h = torch.relu(self.fc2.forward(torch.relu(self.fc2.forward(h))))\n"
                     : (kind == "norm" || kind == "allnorm") ? "    h = torch.layer_norm(torch.relu(self.fc2.forward(h)), [64])\n"
                                                              : "    h = torch.relu(self.fc2.forward(h))\n";
  std::string ret = kind == "cat" ? "    return self.out.forward(torch.cat([h, h], 1))\n" : "    return self.out.forward(h)\n";
  m.define("def forward(self, x):\n" + first + body + ret);
  return m;
}

// Prunes `layout`'s groups at `sparsity` and checks the variant against the zeroed original.
void ExpectPrunedEqualsZeroed(torch::jit::Module& m, const ModelLayout& layout, double sparsity) {
  auto keep = L1ChannelSelection(m, layout, sparsity);
  ASSERT_FALSE(keep.empty());
  auto zeroed = CloneModule(m);
  ZeroStructures(zeroed, layout, keep);
  RemoveStructures(m, layout, keep);
  double err = -1;
  Status st = CheckStructuredVariant(zeroed, m, {torch::randn({3, 1, 28, 28})}, 1e-5, &err);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_GE(err, 0);
}

TEST(UserModelTest, FollowsTheGraphOrNamesTheOpThatStopsIt) {
  auto m = UserMlp("plain");
  auto layout = InferLayout(m, *NewImageClassification({1, 28, 28}));
  ASSERT_EQ(layout.layers.size(), 3u);
  EXPECT_EQ(layout.layers[0].weight, "fc1.weight");
  EXPECT_TRUE(layout.structured_error.empty()) << layout.structured_error;
  ASSERT_EQ(layout.groups.size(), 2u);
  for (const auto& g : layout.groups) EXPECT_TRUE(g.blocked.empty()) << g.blocked;
  ExpectPrunedEqualsZeroed(m, layout, 0.5);
  EXPECT_EQ(GetTensor(m, "fc2.weight").sizes(), (std::vector<int64_t>{32, 32}));

  // A residual add couples fc1's and fc2's outputs: one group, pruned together, same function.
  auto r = UserMlp("residual");
  auto rl = InferLayout(r, *NewImageClassification({1, 28, 28}));
  ASSERT_EQ(rl.groups.size(), 1u);
  EXPECT_EQ(rl.groups[0].kind, "residual");
  EXPECT_EQ(rl.groups[0].layers, (std::vector<std::string>{"fc1", "fc2"}));
  ExpectPrunedEqualsZeroed(r, rl, 0.25);
  EXPECT_EQ(GetTensor(r, "fc2.weight").sizes(), (std::vector<int64_t>{48, 48}));

  // cat([h, h]): the consumer loses both copies of every removed channel.
  auto c = UserMlp("cat");
  auto cl = InferLayout(c, *NewImageClassification({1, 28, 28}));
  ASSERT_EQ(cl.groups.size(), 2u);
  ExpectPrunedEqualsZeroed(c, cl, 0.5);
  EXPECT_EQ(GetTensor(c, "out.weight").sizes(), (std::vector<int64_t>{10, 64}));

  // A layer called twice (shared weights) reads and writes the same channels both times.
  auto sh = UserMlp("shared");
  auto shl = InferLayout(sh, *NewImageClassification({1, 28, 28}));
  ExpectPrunedEqualsZeroed(sh, shl, 0.5);
  EXPECT_EQ(GetTensor(sh, "fc2.weight").sizes(), (std::vector<int64_t>{32, 32}));

  // layer_norm over fc2's outputs: that group is blocked, naming the op and the layer; fc1's
  // group still prunes; masks still work.
  auto n = UserMlp("norm");
  auto nl = InferLayout(n, *NewImageClassification({1, 28, 28}));
  ASSERT_EQ(nl.groups.size(), 2u);
  EXPECT_TRUE(nl.groups[0].blocked.empty()) << nl.groups[0].blocked;
  EXPECT_NE(nl.groups[1].blocked.find("aten::layer_norm"), std::string::npos) << nl.groups[1].blocked;
  EXPECT_NE(nl.groups[1].blocked.find("'fc2'"), std::string::npos) << nl.groups[1].blocked;
  EXPECT_EQ(L1UnstructuredMasks(n, nl, 0.5).size(), 3u);
  ExpectPrunedEqualsZeroed(n, nl, 0.5);
  EXPECT_EQ(GetTensor(n, "fc2.weight").sizes(), (std::vector<int64_t>{64, 32}));
}

TEST(UserModelTest, TheCheckRejectsAVariantThatComputesSomethingElse) {
  auto m = UserMlp("plain");
  auto layout = InferLayout(m, *NewImageClassification({1, 28, 28}));
  auto keep = L1ChannelSelection(m, layout, 0.5);
  auto zeroed = CloneModule(m);
  ZeroStructures(zeroed, layout, keep);
  RemoveStructures(m, layout, keep);
  {
    torch::NoGradGuard g;
    GetTensor(m, "fc2.weight").mul_(1.01);  // what a wrongly coupled slice would do
  }
  double err = 0;
  Status st = CheckStructuredVariant(zeroed, m, {torch::randn({3, 1, 28, 28})}, 1e-3, &err);
  EXPECT_FALSE(st.ok());
  EXPECT_GT(err, 1e-3);
  EXPECT_NE(st.message().find("differs from the original"), std::string::npos) << st.ToString();
  // A variant that no longer runs is a failed check, not an exception.
  SetTensor(m, "out.weight", torch::randn({10, 17}));
  st = CheckStructuredVariant(zeroed, m, {torch::randn({3, 1, 28, 28})}, 1e-3, &err);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not run"), std::string::npos) << st.ToString();
}

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

Task TinyTask(const std::string& model, const std::string& granularity, const std::string& schedule) {
  Task t;
  t.sweep_id = "sw-test";
  t.task_id = "t001@local";
  t.model = model;
  t.dataset.path = kFashionDir;
  t.dataset.train_subset = 512;
  t.dataset.test_subset = 256;
  t.training.epochs = 1;
  t.training.batch_size = 64;
  t.training.learning_rate = model == "vit" ? 0.01 : 0.05;
  t.trial.criterion = "l1";
  t.trial.granularity = granularity;
  t.trial.schedule = schedule;
  t.trial.sparsity = 0.75;
  t.trial.finetune_epochs = 0.5;
  t.benchmark.scenarios = {"single_stream"};
  t.benchmark.warmup_queries = 2;
  t.benchmark.min_queries = 10;
  t.benchmark.min_duration_s = 0;
  t.benchmark.ab_rounds = 1;
  return t;
}

// A prune task on a baseline freshly trained by the real executor, and a context serving
// that baseline. Artifact names key the worker's baseline-accuracy cache: one per model.
struct Prepared {
  Task task;
  ExecutionContext ctx;
};
Prepared Prepare(TrialExecutor& ex, const std::string& model, const std::string& granularity,
                 const std::string& schedule) {
  Task t = TinyTask(model, granularity, schedule);
  t.kind = TaskKind::kTrainBaseline;
  t.task_id = "train";
  auto out = ex.Execute(t, {});
  EXPECT_TRUE(out.result.ok) << out.result.error;
  t.kind = TaskKind::kPruneTrial;
  t.task_id = "t001@local";
  t.baseline_artifact = model + "-baseline";
  ExecutionContext ctx;
  ctx.fetch_artifact = [bytes = out.artifact](const std::string&) -> StatusOr<std::string> { return bytes; };
  return {t, ctx};
}

TEST(TorchExecutorTest, EveryZooModelTrainsPrunesStructurallyAndExports) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no dataset";
  auto ex = NewTorchExecutor();
  for (const auto& model : ZooModelNames()) {
    if (model == "gpt") continue;  // a language model: TheZooDecoderTrainsPrunesAndIsScoredByPerplexity
    auto [t, ctx] = Prepare(*ex, model, "structured", "one_shot");
    t.trial.sparsity = 0.5;
    auto out = ex->Execute(t, ctx);
    ASSERT_TRUE(out.result.ok) << model << ": " << out.result.error;
    EXPECT_LT(out.result.params, out.result.params_before) << model;
    EXPECT_EQ(out.result.layers.size(), ZooLayerNames(model).size()) << model;
    EXPECT_EQ(out.result.latency_p90_ms, 0) << model << ": timing is the benchmark task's";
    ASSERT_FALSE(out.artifact.empty());
    // Its benchmark task (any machine of a target) times the variant against the baseline.
    auto base_bytes = ctx.fetch_artifact(t.baseline_artifact).value();
    Task bench = t;
    bench.kind = TaskKind::kBenchmarkVariant;
    bench.variant_artifact = out.result.artifact_hash;
    ExecutionContext bctx;
    bctx.fetch_artifact = [&](const std::string& h) -> StatusOr<std::string> {
      return h == out.result.artifact_hash ? out.artifact : base_bytes;
    };
    auto timed = ex->Execute(bench, bctx);
    ASSERT_TRUE(timed.result.ok) << model << ": " << timed.result.error;
    EXPECT_GT(timed.result.latency_p90_ms, 0) << model;
    EXPECT_GT(timed.result.speedup_p90, 0) << model << ": A/B against the baseline";
    EXPECT_EQ(timed.result.params, out.result.params) << model << ": it timed the variant";
    // The exported variant reloads and scores the same.
    auto loaded = LoadFromBytes(out.artifact);
    ASSERT_TRUE(loaded.ok());
    Task eval = t;
    eval.kind = TaskKind::kEvaluateBaseline;
    eval.baseline_artifact = model + "-variant";
    ExecutionContext ctx2;
    ctx2.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return out.artifact; };
    auto again = ex->Execute(eval, ctx2);
    ASSERT_TRUE(again.result.ok) << again.result.error;
    EXPECT_DOUBLE_EQ(again.result.accuracy, out.result.accuracy) << model;
  }
}

TEST(TorchExecutorTest, IterativeRoundsBecomeRowsAndReachTheTarget) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no dataset";
  auto ex = NewTorchExecutor();
  auto [t, ctx] = Prepare(*ex, "mlp", "unstructured", "iterative");
  t.trial.rounds = 3;
  t.trial.curve = "cubic";
  t.trial.rewind = 0;  // lottery ticket: back to the initialization each round
  t.trial.sparsity = 0.9;
  auto out = ex->Execute(t, ctx);
  ASSERT_TRUE(out.result.ok) << out.result.error;
  ASSERT_EQ(out.result.intermediates.size(), 2u);
  EXPECT_EQ(out.result.intermediates[0].round, 1u);
  EXPECT_LT(out.result.intermediates[0].achieved_sparsity, out.result.intermediates[1].achieved_sparsity);
  EXPECT_LT(out.result.intermediates[1].achieved_sparsity, out.result.achieved_sparsity);
  EXPECT_NEAR(out.result.achieved_sparsity, 0.9, 0.002);
  EXPECT_EQ(out.result.round, 3u);
  EXPECT_FALSE(out.artifact.empty()) << "the final variant goes to its benchmark tasks";
  EXPECT_EQ(out.result.intermediates[0].latency_p90_ms, 0) << "intermediate rounds are not benchmarked";

  // Structured iterative: widths shrink every round and land on the target.
  Task st = t;
  st.trial.granularity = "structured";
  st.trial.rounds = 2;
  st.trial.sparsity = 0.5;
  st.trial.rewind = 0.25;  // replay a quarter of the baseline's training for the rewind point
  auto so = ex->Execute(st, ctx);
  ASSERT_TRUE(so.result.ok) << so.result.error;
  ASSERT_EQ(so.result.intermediates.size(), 1u);
  ASSERT_EQ(so.result.layers.size(), 3u);
  EXPECT_EQ(so.result.layers[0].total, 128u * 784u) << "fc1 keeps 128 of 256 neurons";
  EXPECT_EQ(so.result.layers[1].total, 64u * 128u);
  EXPECT_GT(so.result.intermediates[0].layers[0].total, so.result.layers[0].total);

  // Sensitivity: one layer alone, evaluated, not fine-tuned or benchmarked.
  Task s = t;
  s.trial.schedule = "sensitivity";
  s.trial.layer = "fc2";
  s.trial.rewind = -1;
  s.trial.sparsity = 0.5;
  auto sens = ex->Execute(s, ctx);
  ASSERT_TRUE(sens.result.ok) << sens.result.error;
  for (const auto& l : sens.result.layers)
    EXPECT_EQ(l.nonzero < l.dense, l.name == "fc2") << l.name;
  EXPECT_EQ(sens.result.latency_p90_ms, 0);
  EXPECT_EQ(sens.result.train_seconds, 0);
}

TEST(TorchExecutorTest, ActivationCriterionAndUnsupportedStructuresFailTheTrialWithAReason) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no dataset";
  auto ex = NewTorchExecutor();
  auto [t, ctx] = Prepare(*ex, "cnn", "structured", "one_shot");
  t.trial.criterion = "apoz";
  t.trial.finetune_epochs = 0;
  auto out = ex->Execute(t, ctx);
  ASSERT_TRUE(out.result.ok) << out.result.error;
  EXPECT_LT(out.result.params, out.result.params_before);

  // A user model whose every group is normalized over: structured fails naming the op; N:M works.
  std::string user = SaveToBytes(UserMlp("allnorm"));
  Task u = TinyTask("torchscript", "structured", "one_shot");
  u.model_artifact = "user";
  u.input_shape = {1, 28, 28};
  u.kind = TaskKind::kPruneTrial;
  u.baseline_artifact = "user";
  u.trial.finetune_epochs = 0;
  ExecutionContext uctx;
  uctx.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return user; };
  auto fail = ex->Execute(u, uctx);
  EXPECT_FALSE(fail.result.ok);
  EXPECT_NE(fail.result.error.find("aten::layer_norm"), std::string::npos) << fail.result.error;
  u.trial.granularity = "2:4";
  auto nm = ex->Execute(u, uctx);
  ASSERT_TRUE(nm.result.ok) << nm.result.error;
  EXPECT_NEAR(nm.result.achieved_sparsity, 0.5, 0.01);
}

// The shipped example's model, scripted by Python (torch.jit.script of nn.Sequential blocks):
// structured pruning follows its graph and every execution form runs it.
TEST(TorchExecutorTest, PythonScriptedModelPrunesStructurallyAndBenchmarks) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no dataset";
  testing::TempDir dir;
  std::string path = dir.path() + "/model.pt";
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/examples/user-model/make_model.py " + path +
                    " > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto ex = NewTorchExecutor();
  Task u = TinyTask("torchscript", "structured", "one_shot");
  u.model_artifact = "python-model";
  u.input_shape = {1, 28, 28};
  u.kind = TaskKind::kPruneTrial;
  u.baseline_artifact = "python-model";
  ExecutionContext ctx;
  ctx.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return bytes; };
  auto out = ex->Execute(u, ctx);
  ASSERT_TRUE(out.result.ok) << out.result.error;
  EXPECT_LT(out.result.params, out.result.params_before);
  Task bench = u;
  bench.kind = TaskKind::kBenchmarkVariant;
  bench.variant_artifact = out.result.artifact_hash;
  ctx.fetch_artifact = [&](const std::string& h) -> StatusOr<std::string> {
    return h == out.result.artifact_hash ? out.artifact : bytes;
  };
  auto timed = ex->Execute(bench, ctx);
  ASSERT_TRUE(timed.result.ok) << timed.result.error;
  auto detail = nlohmann::json::parse(timed.result.benchmark_json);
  for (const auto& f : detail["forms"]) EXPECT_FALSE(f.contains("error")) << f.dump();
}


// Language modeling through the real executor: token files in nanoGPT's format (a stream where
// the next id mostly follows from the last: learnable), the zoo decoder trained with AdamW and
// scored by perplexity, then whole heads and MLP neurons removed (with distillation) and whole
// layers removed; every row says perplexity and the variants are smaller.
TEST(TorchExecutorTest, TheZooDecoderTrainsPrunesAndIsScoredByPerplexity) {
  testing::TempDir dir;
  std::mt19937 rng(5);
  auto write = [&](const std::string& name, int n) {
    std::vector<uint16_t> ids(n);
    uint16_t x = 0;
    for (auto& id : ids) {
      x = rng() % 10 ? static_cast<uint16_t>((3 * x + 1) % 32) : static_cast<uint16_t>(rng() % 32);
      id = x;
    }
    std::ofstream(dir.path() + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(ids.size() * 2));
  };
  write("train.bin", 12000);
  write("val.bin", 2000);
  Task t;
  t.sweep_id = "sw-lm";
  t.task_id = "train";
  t.kind = TaskKind::kTrainBaseline;
  t.model = "gpt";
  t.dataset.task = "causal_lm";
  t.dataset.name = "tokens";
  t.dataset.path = dir.path();
  t.dataset.vocab_size = 32;
  t.dataset.sequence_length = 16;
  t.dataset.train_subset = 400;
  t.dataset.test_subset = 60;
  t.training.epochs = 2;
  t.training.batch_size = 16;
  t.training.optimizer = "adamw";
  t.training.learning_rate = 3e-3;
  t.training.weight_decay = 0.1;
  t.trial.criterion = "l2";
  t.trial.granularity = "structured";
  t.trial.schedule = "one_shot";
  t.trial.sparsity = 0.5;
  t.trial.finetune_epochs = 0.5;
  t.trial.finetune_learning_rate = 1e-3;
  t.trial.distill_temperature = 2;
  t.trial.distill_alpha = 0.5;
  t.trial.calibration_batches = 2;
  auto ex = NewTorchExecutor();
  auto base = ex->Execute(t, {});
  ASSERT_TRUE(base.result.ok) << base.result.error;
  EXPECT_EQ(base.result.metric, "perplexity");
  EXPECT_GT(base.result.perplexity, 1.0);
  EXPECT_LT(base.result.perplexity, 12.0) << "a 32-id stream that mostly follows (3x + 1) mod 32: far below guessing (32)";
  EXPECT_NE(base.result.preprocessing.find("windows of 16 ids"), std::string::npos) << base.result.preprocessing;
  ExecutionContext ctx;
  ctx.fetch_artifact = [bytes = base.artifact](const std::string&) -> StatusOr<std::string> { return bytes; };
  t.kind = TaskKind::kPruneTrial;
  t.task_id = "t001";
  t.baseline_artifact = "gpt-lm-baseline";
  auto heads = ex->Execute(t, ctx);
  ASSERT_TRUE(heads.result.ok) << heads.result.error;
  EXPECT_EQ(heads.result.metric, "perplexity");
  EXPECT_DOUBLE_EQ(heads.result.baseline_perplexity, base.result.perplexity);
  EXPECT_LT(heads.result.params, heads.result.params_before);
  EXPECT_LT(heads.result.perplexity, 2 * base.result.perplexity) << "recovered by distillation";
  auto pruned = LoadFromBytes(heads.artifact);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(GetTensor(pruned.value(), "b0_q_w").size(0), 2 * kGptHeadDim) << "half of the 4 heads";
  EXPECT_EQ(GetTensor(pruned.value(), "b0_fc1_w").size(0), kGptMlp / 2);
  t.task_id = "t002";
  t.trial.criterion = "angular";
  t.trial.granularity = "depth";
  t.trial.distill_temperature = 0;
  auto depth = ex->Execute(t, ctx);
  ASSERT_TRUE(depth.result.ok) << depth.result.error;
  EXPECT_EQ(depth.result.metric, "perplexity");
  EXPECT_GT(depth.result.perplexity, 1.0);
  auto config = nlohmann::json::parse(depth.result.trial_json);
  EXPECT_EQ(config["depth"]["removed"].size(), 2u) << config.dump();
  // The calibrated criteria, one-shot without fine-tuning: every linear layer of the decoder is
  // calibrated through the graph hooks; SparseGPT records each layer's reconstruction.
  t.trial.finetune_epochs = 0;
  t.trial.granularity = "2:4";
  for (const char* criterion : {"wanda", "sparsegpt"}) {
    SCOPED_TRACE(criterion);
    t.task_id = std::string("t-") + criterion;
    t.trial.criterion = criterion;
    auto r = ex->Execute(t, ctx);
    ASSERT_TRUE(r.result.ok) << r.result.error;
    EXPECT_NEAR(r.result.achieved_sparsity, 0.5, 1e-9);
    EXPECT_GT(r.result.perplexity, 1.0);
    auto c = nlohmann::json::parse(r.result.trial_json);
    ASSERT_TRUE(c.contains(criterion)) << c.dump();
    EXPECT_EQ(c[criterion]["calibration_samples"], 2 * 16) << "calibration_batches x batch_size";
    EXPECT_TRUE(c[criterion]["scored_by_magnitude"].empty()) << c.dump();
    if (std::string(criterion) == "sparsegpt") {
      ASSERT_EQ(c["sparsegpt"]["layers"].size(), ZooLayerNames("gpt").size());
      for (const auto& l : c["sparsegpt"]["layers"]) EXPECT_LT(l["relative_error"].get<double>(), 1.0) << l.dump();
    }
  }
  t.trial.granularity = "structured";
  t.task_id = "t-refused";
  auto refused = ex->Execute(t, ctx);
  EXPECT_FALSE(refused.result.ok);
  EXPECT_NE(refused.result.error.find("criterion 'sparsegpt' prunes and reconstructs single weights"), std::string::npos)
      << refused.result.error;
}

}  // namespace
}  // namespace prunelab::worker
