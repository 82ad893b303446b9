// Users' real architectures: torchvision classifiers scripted by bench/torchvision_models.py
// (random init) are followed by the dependency graph, pruned structurally and checked
// against the original with the removed structures zeroed; one goes through the executor
// on Fashion-MNIST, iteratively. Skipped, with the reason, when python3-torchvision is
// missing (cluster/install-deps.sh installs it).
#include <torch/torch.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "worker/engine/torch_executor.h"
#include "worker/engine/bench/forms.h"
#include "worker/engine/model/user_model.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/prune/plan.h"
#include "worker/engine/prune/pruning.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

// Scripts `models` into dir (one .pt each); false when torchvision cannot be imported.
bool Script(const std::string& dir, const std::string& models, const std::string& extra = "") {
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/bench/torchvision_models.py --out " + dir +
                    " --models " + models + " " + extra + " > " + dir + "/log.txt 2>&1";
  return std::system(cmd.c_str()) == 0;
}
bool HaveTorchvision() { return std::system("/usr/bin/python3 -c 'import torchvision' > /dev/null 2>&1") == 0; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(TorchvisionTest, EachFamilyPrunesStructurallyAndComputesWhatTheZeroedOriginalDoes) {
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  const std::vector<std::string> models = {"resnet18", "mobilenet_v2", "densenet121", "shufflenet_v2_x0_5",
                                           "convnext_tiny", "vit_b_16", "swin_t"};
  std::string list;
  for (const auto& m : models) list += (list.empty() ? "" : ",") + m;
  ASSERT_TRUE(Script(dir.path(), list)) << ReadAll(dir.path() + "/log.txt");
  for (const auto& name : models) {
    SCOPED_TRACE(name);
    auto loaded = LoadFromBytes(ReadAll(dir.path() + "/" + name + ".pt"));
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    torch::jit::Module dense = loaded.value();
    dense.eval();
    auto layout = InferLayout(dense, *NewImageClassification({3, 32, 32}));
    ASSERT_TRUE(layout.structured_error.empty()) << layout.structured_error;
    int prunable = 0;
    for (const auto& g : layout.groups) prunable += g.blocked.empty();
    EXPECT_GT(prunable, 0);
    if (name == "mobilenet_v2") EXPECT_FALSE(layout.depthwise.empty()) << "depthwise convolutions are followed";
    auto keep = L1ChannelSelection(dense, layout, 0.3);
    auto zeroed = CloneModule(dense);
    ZeroStructures(zeroed, layout, keep);
    auto pruned = CloneModule(dense);
    RemoveStructures(pruned, layout, keep);
    EXPECT_LT(CountParameters(pruned), CountParameters(dense));
    torch::manual_seed(3);
    auto x = torch::randn({2, 3, 32, 32});
    double err = -1;
    Status st = CheckStructuredVariant(zeroed, pruned, {x}, 1e-3, &err);
    EXPECT_TRUE(st.ok()) << st.ToString();
    // Pruning changed the function (the check is not comparing a model with itself).
    torch::NoGradGuard g;
    auto d = dense.forward({x}).toTensor();
    auto p = pruned.forward({x}).toTensor();
    EXPECT_GT((d - p).abs().max().item<double>(), 1e-4 * d.abs().max().item<double>());
    // The variant survives serialization (its rewritten graph included).
    auto again = LoadFromBytes(SaveToBytes(pruned));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(torch::allclose(again->forward({x}).toTensor(), p, 1e-5, 1e-5));
    // Unstructured and 2:4 masks on the same model.
    auto scores = WeightScores(dense, layout, Criterion::kL1, nullptr, 0);
    ASSERT_TRUE(scores.ok());
    for (int m : {0, 4}) {
      auto masks = PlanMasks(layout, scores.value(), 0.5, PlanOptions{}, m ? 2 : 0, m, {});
      ASSERT_TRUE(masks.ok()) << masks.status().ToString();
      auto v = CloneModule(dense);
      ApplyMasks(v, masks.value());
      EXPECT_TRUE(v.forward({x}).toTensor().isfinite().all().item<bool>());
    }
  }
}

// Whole heads of attention: ViT's nn.MultiheadAttention (12 layers of 12 heads) and Swin's
// window attention, v1 and v2 (12 blocks of 3 to 24 heads), each get a head group; keeping every other
// head, num_heads follows, the q/k/v rows and output columns of each removed head are gone,
// and the variant equals the zeroed original. With every head kept, the replacement forward
// computes what the original does (shifted windows and position bias included).
TEST(TorchvisionTest, AttentionHeadsAreRemovedWholeInVitAndSwin) {
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  ASSERT_TRUE(Script(dir.path(), "vit_b_16,swin_t,swin_v2_t")) << ReadAll(dir.path() + "/log.txt");
  for (const std::string name : {"vit_b_16", "swin_t", "swin_v2_t"}) {
    SCOPED_TRACE(name);
    torch::jit::Module dense = LoadFromBytes(ReadAll(dir.path() + "/" + name + ".pt")).value();
    dense.eval();
    auto layout = InferLayout(dense, *NewImageClassification({3, 32, 32}));
    std::map<std::string, int64_t> heads;
    for (const auto& g : layout.groups)
      if (g.kind == "head") {
        EXPECT_TRUE(g.blocked.empty()) << g.name << ": " << g.blocked;
        heads[g.name] = g.structures;
      }
    EXPECT_EQ(heads.size(), 12u) << "one head group per attention";
    EXPECT_EQ(layout.attention.size(), 12u);
    torch::manual_seed(3);
    auto x = torch::randn({2, 3, 32, 32});
    torch::NoGradGuard no_grad;
    Keep all, half;
    for (const auto& [g, n] : heads) {
      all[g] = torch::arange(n);
      half[g] = torch::arange(0, n, 2);
    }
    auto same = CloneModule(dense);
    RemoveStructures(same, layout, all);
    auto d = dense.forward({x}).toTensor();
    EXPECT_LT((same.forward({x}).toTensor() - d).abs().max().item<double>(), 1e-4 * d.abs().max().item<double>())
        << "the replacement attention computes the original's";
    auto zeroed = CloneModule(dense);
    ZeroStructures(zeroed, layout, half);
    auto pruned = CloneModule(dense);
    RemoveStructures(pruned, layout, half);
    for (const auto& [path, hd] : layout.attention) {
      torch::jit::Module a = pruned;
      std::stringstream parts(path);
      for (std::string part; std::getline(parts, part, '.');) a = a.attr(part).toModule();
      const int64_t left = (heads[path] + 1) / 2;
      EXPECT_EQ(a.attr("num_heads").toInt(), left) << path;
      if (name == "vit_b_16") {
        EXPECT_EQ(hd, 64);
        EXPECT_EQ(GetTensor(pruned, path + ".in_proj_weight").sizes(), (std::vector<int64_t>{3 * 384, 768}));
        EXPECT_EQ(GetTensor(pruned, path + ".out_proj.weight").sizes(), (std::vector<int64_t>{768, 384}));
      } else {
        EXPECT_EQ(hd, 32);
        EXPECT_EQ(GetTensor(pruned, path + ".qkv.weight").size(0), 3 * left * hd);
        if (name == "swin_t") EXPECT_EQ(GetTensor(pruned, path + ".relative_position_bias_table").size(1), left);
        else EXPECT_EQ(GetTensor(pruned, path + ".logit_scale").size(0), left);
      }
    }
    double err = -1;
    Status st = CheckStructuredVariant(zeroed, pruned, {x}, 1e-3, &err);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto again = LoadFromBytes(SaveToBytes(pruned));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_TRUE(torch::allclose(again->forward({x}).toTensor(), pruned.forward({x}).toTensor(), 1e-5, 1e-5));
    // Iterative rounds trace the pruned model again: its heads are found again.
    auto next = InferLayout(pruned, *NewImageClassification({3, 32, 32}));
    for (const auto& g : next.groups)
      if (g.kind == "head") EXPECT_EQ(g.structures, (heads[g.name] + 1) / 2) << g.name;
  }
}

// A user's own attention, sequence-first, called with a boolean causal attn_mask, a
// key_padding_mask and need_weights: the replacement agrees with PyTorch's with every head
// kept, and with half the heads removed equals the zeroed original.
TEST(TorchvisionTest, UserAttentionWithMasksKeepsItsMeaningWhenHeadsAreRemoved) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/att.pt";
  const std::string py = R"(
import sys, torch
from torch import nn
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(28, 32)
        self.att = nn.MultiheadAttention(32, 4)
        self.fc = nn.Linear(32, 10)
    def forward(self, x):
        t = self.emb(x[:, 0]).transpose(0, 1)
        L = t.size(0)
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
        pad = torch.zeros(t.size(1), L, dtype=torch.bool)
        pad[:, L - 3:] = True
        o, w = self.att(t, t, t, key_padding_mask=pad, need_weights=True, attn_mask=causal)
        assert w is not None
        return self.fc(o.mean(0)) + w.sum(2).mean()
torch.manual_seed(0)
torch.jit.save(torch.jit.script(M()), sys.argv[1])
)";
  std::ofstream(dir.path() + "/make.py") << py;
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir.path() + "/make.py " + path + " > " + dir.path() + "/log.txt 2>&1").c_str()), 0)
      << ReadAll(dir.path() + "/log.txt");
  torch::jit::Module dense = LoadFromBytes(ReadAll(path)).value();
  dense.eval();
  auto layout = InferLayout(dense, *NewImageClassification({1, 28, 28}));
  const StructureGroup* g = layout.Group("att");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->kind, "head");
  EXPECT_TRUE(g->blocked.empty()) << g->blocked;
  torch::manual_seed(5);
  auto x = torch::randn({3, 1, 28, 28});
  torch::NoGradGuard no_grad;
  auto same = CloneModule(dense);
  RemoveStructures(same, layout, Keep{{"att", torch::arange(4)}});
  auto d = dense.forward({x}).toTensor();
  EXPECT_LT((same.forward({x}).toTensor() - d).abs().max().item<double>(), 1e-5 * d.abs().max().item<double>());
  Keep keep{{"att", torch::tensor({1, 2}, torch::kInt64)}};
  auto zeroed = CloneModule(dense);
  ZeroStructures(zeroed, layout, keep);
  auto pruned = CloneModule(dense);
  RemoveStructures(pruned, layout, keep);
  EXPECT_EQ(pruned.attr("att").toModule().attr("num_heads").toInt(), 2);
  Status st = CheckStructuredVariant(zeroed, pruned, {x}, 1e-4, nullptr);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_GT((pruned.forward({x}).toTensor() - d).abs().max().item<double>(), 1e-4 * d.abs().max().item<double>())
      << "removing heads changed the function";
}

TEST(TorchvisionTest, ExecutorPrunesAndFineTunesMobilenetOnFashionMnistIteratively) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no dataset";
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  ASSERT_TRUE(Script(dir.path(), "mobilenet_v2", "--channels 1 --image 28")) << ReadAll(dir.path() + "/log.txt");
  std::string bytes = ReadAll(dir.path() + "/mobilenet_v2.pt");
  Task t;
  t.sweep_id = "sw-tv";
  t.task_id = "t001@local";
  t.kind = TaskKind::kPruneTrial;
  t.model = "torchscript";
  t.model_artifact = "tv";
  t.baseline_artifact = "tv";
  t.input_shape = {1, 28, 28};
  t.dataset.path = kFashionDir;
  t.dataset.train_subset = 256;
  t.dataset.test_subset = 128;
  t.training.batch_size = 64;
  t.training.learning_rate = 0.01;
  t.trial.criterion = "l1";
  t.trial.granularity = "structured";
  t.trial.schedule = "iterative";
  t.trial.rounds = 2;
  t.trial.sparsity = 0.4;
  t.trial.finetune_epochs = 0.5;
  ExecutionContext ctx;
  std::vector<std::string> phases;
  ctx.on_progress = [&](const std::string& phase, double) {
    phases.push_back(phase);
    return true;
  };
  ctx.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return bytes; };
  auto ex = NewTorchExecutor();
  auto out = ex->Execute(t, ctx);
  ASSERT_TRUE(out.result.ok) << out.result.error;
  EXPECT_LT(out.result.params, out.result.params_before);
  ASSERT_EQ(out.result.intermediates.size(), 1u);
  EXPECT_LT(out.result.params, out.result.intermediates[0].params) << "round 2 prunes further";
  bool summary = false;
  for (const auto& p : phases) summary |= p.rfind("structured: pruning", 0) == 0;
  EXPECT_TRUE(summary) << "the progress line says how many groups are pruned";
  auto variant = LoadFromBytes(out.artifact);
  ASSERT_TRUE(variant.ok()) << variant.status().ToString();
  torch::NoGradGuard g;
  variant->eval();
  EXPECT_EQ(variant->forward({torch::randn({2, 1, 28, 28})}).toTensor().sizes(), (std::vector<int64_t>{2, 10}));
}

// AlexNet at 64x64 reaches adaptive_avg_pool2d(6x6) with a 1x1 map: MKL-DNN (the frozen
// form) refuses that size. The form is reported unavailable; the plain module still runs.
TEST(TorchvisionTest, AFormAModelCannotTakeIsReportedNotFatal) {
  if (!HaveTorchvision()) GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  ASSERT_TRUE(Script(dir.path(), "alexnet")) << ReadAll(dir.path() + "/log.txt");
  auto m = LoadFromBytes(ReadAll(dir.path() + "/alexnet.pt"));
  ASSERT_TRUE(m.ok());
  Dataset pool;
  pool.inputs = torch::randn({4, 3, 64, 64});
  pool.labels = torch::zeros({4}, torch::kInt64);
  auto frozen = MakeSut("frozen", m.value(), pool);
  ASSERT_FALSE(frozen.ok());
  EXPECT_NE(frozen.status().message().find("divisible"), std::string::npos) << frozen.status().ToString();
  auto dense = MakeSut("dense", m.value(), pool);
  ASSERT_TRUE(dense.ok()) << dense.status().ToString();
  dense.value()->RunQuery({0, 1});
}

}  // namespace
}  // namespace prunelab::worker
