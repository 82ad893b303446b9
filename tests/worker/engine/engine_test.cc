// The LibTorch engine: pruning primitives against hand-computed references, channel
// pruning shapes and function, and the real executor on a small Fashion-MNIST subset.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "common/base/hash.h"
#include "tests/status_matchers.h"
#include "worker/engine/bench/bench_runner.h"
#include "worker/engine/torch_executor.h"
#include "worker/engine/bench/forms.h"
#include "worker/engine/prune/importance.h"
#include "worker/engine/data/fashion_mnist.h"
#include "worker/loadgen/latency_stats.h"
#include "worker/engine/model/zoo.h"
#include "worker/engine/prune/pruning.h"
#include "worker/engine/train/training.h"
#include "worker/engine/model/zoo.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

std::vector<float> Values(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kFloat32);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

TEST(PruningTest, L1UnstructuredMaskRemovesSmallestMagnitudes) {
  auto w = torch::tensor({1.0f, -5.0f, 0.5f, 3.0f, -2.0f, 4.0f});
  EXPECT_EQ(Values(L1UnstructuredMask(w, 0.5)), (std::vector<float>{0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(Values(L1UnstructuredMask(w, 0.0)), (std::vector<float>{1, 1, 1, 1, 1, 1}));
  // round(0.8 * 6) = 5: only the largest magnitude (-5) survives
  EXPECT_EQ(Values(L1UnstructuredMask(w, 0.8)), (std::vector<float>{0, 1, 0, 0, 0, 0}));
  // Ties break by index, deterministically.
  EXPECT_EQ(Values(L1UnstructuredMask(torch::ones({4}), 0.5)), (std::vector<float>{0, 0, 1, 1}));
  // Shape preserved for conv weights.
  auto m = L1UnstructuredMask(torch::randn({8, 4, 3, 3}), 0.75);
  EXPECT_EQ(m.sizes(), (std::vector<int64_t>{8, 4, 3, 3}));
  EXPECT_EQ(m.sum().item<float>(), 72.0f);  // 288 * 0.25 kept
}

TEST(ImportanceTest, CriteriaScoresAndMasksMatchHandComputedReferences) {
  auto m = BuildFashionCnn(1);
  ModelLayout one;
  one.layers = {{"fc2", "fc2_w"}};
  torch::NoGradGuard g;
  auto w = torch::zeros({10, 128});
  w[0][0] = 1.0; w[0][1] = -2.0; w[0][2] = 3.0; w[0][3] = -0.5;
  SetTensor(m, "fc2_w", w);
  Scores grads{{"fc2_w", torch::zeros({10, 128})}};
  grads["fc2_w"][0][0] = 0.5; grads["fc2_w"][0][1] = 0.1; grads["fc2_w"][0][2] = 0.2; grads["fc2_w"][0][3] = 4.0;
  auto row = [](const Scores& s) { return Values(s.at("fc2_w")[0].slice(0, 0, 4)); };
  EXPECT_EQ(row(WeightScores(m, one, Criterion::kL1, nullptr, 0).value()), (std::vector<float>{1, 2, 3, 0.5}));
  EXPECT_EQ(row(WeightScores(m, one, Criterion::kL2, nullptr, 0).value()), (std::vector<float>{1, 4, 9, 0.25}));
  EXPECT_EQ(row(WeightScores(m, one, Criterion::kGradient, &grads, 0).value()), (std::vector<float>{0.5, 0.1, 0.2, 4}));
  auto taylor = WeightScores(m, one, Criterion::kTaylor, &grads, 0).value();
  EXPECT_EQ(row(taylor), (std::vector<float>{0.5, 0.2, 0.6, 2}));
  // Half of these four by Taylor score: drop 0.2 (w=-2) and 0.5 (w=1).
  EXPECT_EQ(Values(MaskFromScores(taylor.at("fc2_w")[0].slice(0, 0, 4), 0.5)), (std::vector<float>{0, 0, 1, 1}));
  EXPECT_TRUE(IsError(WeightScores(m, one, Criterion::kTaylor, nullptr, 0), Status::Code::kInternal, "gradient-based criterion without gradients"));
  auto r1 = WeightScores(m, one, Criterion::kRandom, nullptr, 7).value().at("fc2_w");
  auto r2 = WeightScores(m, one, Criterion::kRandom, nullptr, 7).value().at("fc2_w");
  auto r3 = WeightScores(m, one, Criterion::kRandom, nullptr, 8).value().at("fc2_w");
  EXPECT_TRUE(torch::equal(r1, r2));
  EXPECT_FALSE(torch::equal(r1, r3));
  EXPECT_TRUE(IsError(ParseCriterion("hessian"), Status::Code::kInvalidArgument, "criterion 'hessian' not implemented"));
}

TEST(ImportanceTest, L1AndL2RankStructuresDifferently) {
  // channel a: [3, 0] -> l1 3, l2 9; channel b: [2, 2] -> l1 4, l2 8
  auto w = torch::tensor({3.0f, 0.0f, 2.0f, 2.0f}).view({2, 1, 1, 2});
  EXPECT_EQ(ChannelsToKeep(ChannelScores(w.abs()), 0.5)[0].item<int64_t>(), 1);
  EXPECT_EQ(ChannelsToKeep(ChannelScores(w.square()), 0.5)[0].item<int64_t>(), 0);
}

TEST(ImportanceTest, NmMasksKeepExactlyNPerGroupOfM) {
  auto row = torch::tensor({1.0f, 5.0f, 2.0f, 4.0f, 8.0f, 7.0f, 6.0f, 0.5f}).view({1, 8});
  EXPECT_EQ(Values(NmMask(row, 2, 4).value()), (std::vector<float>{0, 1, 0, 1, 1, 1, 0, 0}));
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}, std::pair{1, 4}}) {
    auto scores = torch::rand({16, 8, 3, 3});  // rows of 72 = conv kernels flattened
    auto mask = NmMask(scores, n, m).value();
    EXPECT_EQ(mask.sizes(), scores.sizes());
    auto per_group = mask.reshape({16, 72 / m, m}).sum(2);
    EXPECT_TRUE(torch::all(per_group == n).item<bool>()) << n << ":" << m;
  }
  EXPECT_TRUE(IsError(NmMask(torch::rand({4, 9}), 2, 4), Status::Code::kInvalidArgument, "row length 9 is not a multiple of M=4")) << "9 inputs cannot form groups of 4";
  EXPECT_TRUE(IsError(NmMask(torch::rand({4, 8}), 4, 4), Status::Code::kInvalidArgument, "N:M needs 0 < N < M, got 4:4"));
}

TEST(PruningTest, L1ChannelsToKeepRanksByFilterNorm) {
  // Per-output-channel L1 norms: 3, 1, 5, 2
  auto w = torch::tensor({1.0f, -2.0f, 0.5f, 0.5f, -5.0f, 0.0f, 1.0f, 1.0f}).view({4, 1, 1, 2});
  auto keep = L1ChannelsToKeep(w, 0.5);
  EXPECT_EQ(keep.sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(keep[0].item<int64_t>(), 0);
  EXPECT_EQ(keep[1].item<int64_t>(), 2);
  EXPECT_EQ(L1ChannelsToKeep(w, 0.99).size(0), 1) << "at least one channel always survives";
}

torch::jit::Module TrainedLookingCnn() {
  auto m = BuildFashionCnn(3);
  torch::NoGradGuard g;
  // Non-trivial batch-norm statistics so the equivalence test means something.
  for (const char* bn : {"bn1", "bn2"}) {
    std::string b = bn;
    GetTensor(m, b + "_mean").uniform_(-0.5, 0.5);
    GetTensor(m, b + "_var").uniform_(0.5, 2.0);
    GetTensor(m, b + "_w").uniform_(0.5, 1.5);
    GetTensor(m, b + "_b").uniform_(-0.2, 0.2);
  }
  m.eval();
  return m;
}

TEST(PruningTest, ChannelPruningShrinksEveryCoupledTensor) {
  auto m = TrainedLookingCnn();
  const auto& layout = FashionCnnLayout();
  int64_t before = CountParameters(m);
  RemoveStructures(m, layout, L1ChannelSelection(m, layout, 0.5));
  EXPECT_EQ(GetTensor(m, "conv1_w").sizes(), (std::vector<int64_t>{16, 1, 3, 3}));
  EXPECT_EQ(GetTensor(m, "bn1_mean").sizes(), (std::vector<int64_t>{16}));
  EXPECT_EQ(GetTensor(m, "conv2_w").sizes(), (std::vector<int64_t>{32, 16, 3, 3}));
  EXPECT_EQ(GetTensor(m, "bn2_var").sizes(), (std::vector<int64_t>{32}));
  EXPECT_EQ(GetTensor(m, "fc1_w").sizes(), (std::vector<int64_t>{64, 32 * 49}));
  EXPECT_EQ(GetTensor(m, "fc1_b").sizes(), (std::vector<int64_t>{64}));
  EXPECT_EQ(GetTensor(m, "fc2_w").sizes(), (std::vector<int64_t>{10, 64}));
  EXPECT_LT(CountParameters(m), before / 2 + 2000);
  torch::NoGradGuard g;
  auto out = m.forward({torch::randn({2, 1, 28, 28})}).toTensor();
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(PruningTest, ChannelPrunedModelEqualsModelWithThoseChannelsZeroed) {
  const auto& layout = FashionCnnLayout();
  for (double sparsity : {0.25, 0.5, 0.8}) {
    auto base = TrainedLookingCnn();
    auto keep = L1ChannelSelection(base, layout, sparsity);
    auto pruned = CloneModule(base);
    RemoveStructures(pruned, layout, keep);
    auto masked = CloneModule(base);
    ZeroStructures(masked, layout, keep);
    torch::NoGradGuard g;
    auto x = torch::randn({8, 1, 28, 28});
    auto a = pruned.forward({x}).toTensor();
    auto b = masked.forward({x}).toTensor();
    EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-5)) << "sparsity " << sparsity << " max diff "
                                                   << (a - b).abs().max().item<float>();
    auto full = base.forward({x}).toTensor();
    EXPECT_FALSE(torch::allclose(a, full, 1e-4, 1e-5)) << "pruning must change the function";
  }
}

Dataset Synthetic(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  Dataset d;
  d.labels = torch::randint(0, 10, {n}, torch::kInt64);
  // Class-dependent brightness so there is something to learn.
  d.inputs = torch::randn({n, 1, 28, 28}) * 0.5 + d.labels.to(torch::kFloat32).view({n, 1, 1, 1}) / 5.0;
  return d;
}

TEST(TrainingTest, MasksStayZeroThroughFineTuningAndSeedsAreDeterministic) {
  const auto& layout = FashionCnnLayout();
  auto data = Synthetic(256, 1);
  auto run = [&]() {
    auto m = BuildFashionCnn(11);
    Masks masks = L1UnstructuredMasks(m, layout, 0.7);
    ApplyMasks(m, masks);
    TrainOptions o;
    o.epochs = 1;
    o.batch_size = 32;
    o.learning_rate = 0.05;
    o.seed = 5;
    o.masks = &masks;
    EXPECT_TRUE(Train(m, *ClassificationFor(data), data, o).ok());
    return m;
  };
  auto a = run();
  auto b = run();
  int64_t dense = PrunableWeights(a, layout);
  EXPECT_NEAR(AchievedSparsity(a, layout, dense), 0.7, 0.01);
  for (const auto& name : layout.WeightParams())
    EXPECT_TRUE(torch::equal(GetTensor(a, name), GetTensor(b, name))) << name << " differs between identical runs";
}

// The distillation loss by hand on two samples of three classes: alpha 0 is cross-entropy,
// alpha 1 is T^2 times the batch-mean KL divergence of the softened distributions, zero when
// student and teacher agree; in between the blend.
TEST(TrainingTest, DistillationLossMatchesItsDefinitionOnSmallTensors) {
  auto s = torch::tensor({{2.0f, 0.5f, -1.0f}, {0.1f, 0.2f, 0.3f}});
  auto t = torch::tensor({{1.0f, 1.5f, -0.5f}, {0.0f, 2.0f, 0.0f}});
  auto y = torch::tensor({0, 2}, torch::kInt64);
  const double T = 2.0;
  double ce = 0, kl = 0;
  for (int i = 0; i < 2; ++i) {
    auto ls = torch::log_softmax(s[i], 0);
    ce -= ls[y[i].item<int64_t>()].item<double>() / 2;
    auto ps = torch::softmax(s[i] / T, 0), pt = torch::softmax(t[i] / T, 0);
    for (int k = 0; k < 3; ++k) {
      double p = pt[k].item<double>();
      kl += p * (std::log(p) - std::log(ps[k].item<double>())) / 2;
    }
  }
  EXPECT_NEAR(ClassificationDistillationLoss(s, t, y, T, 0.0).item<double>(), ce, 1e-6);
  EXPECT_NEAR(ClassificationDistillationLoss(s, t, y, T, 1.0).item<double>(), T * T * kl, 1e-6);
  EXPECT_NEAR(ClassificationDistillationLoss(s, t, y, T, 0.25).item<double>(), 0.25 * T * T * kl + 0.75 * ce, 1e-6);
  EXPECT_NEAR(ClassificationDistillationLoss(s, s, y, T, 1.0).item<double>(), 0.0, 1e-7) << "nothing to learn from oneself";
  // Gradients reach the student only.
  auto sg = s.clone().requires_grad_(true);
  auto tg = t.clone().requires_grad_(true);
  ClassificationDistillationLoss(sg, tg, y, T, 0.5).backward();
  EXPECT_TRUE(sg.grad().defined());
  EXPECT_FALSE(tg.grad().defined());
}

TEST(TrainingTest, FineTuningWithATeacherMovesTheStudentTowardsIt) {
  auto data = Synthetic(256, 3);
  auto teacher = BuildFashionCnn(21);
  TrainOptions base;
  base.epochs = 2;
  base.batch_size = 32;
  base.seed = 2;
  ASSERT_TRUE(Train(teacher, *ClassificationFor(data), data, base).ok());
  teacher.eval();
  auto gap = [&](torch::jit::Module& m) {
    torch::NoGradGuard g;
    m.eval();
    auto x = data.inputs.slice(0, 0, 64);
    return (torch::softmax(m.forward({x}).toTensor(), 1) - torch::softmax(teacher.forward({x}).toTensor(), 1))
        .abs().mean().item<double>();
  };
  auto plain = BuildFashionCnn(5), taught = BuildFashionCnn(5);
  TrainOptions o;
  o.epochs = 1;
  o.batch_size = 32;
  o.seed = 4;
  ASSERT_TRUE(Train(plain, *ClassificationFor(data), data, o).ok());
  o.teacher = &teacher;
  o.temperature = 4;
  o.alpha = 0.9;
  ASSERT_TRUE(Train(taught, *ClassificationFor(data), data, o).ok());
  EXPECT_LT(gap(taught), gap(plain)) << "the distilled student is closer to the teacher's outputs";
}

// training.precision bf16: autocast to bfloat16 with channels-last weights while training; the
// model learns, its weights stay fp32 and contiguous afterwards. Where the CPU lacks bf16 the
// run is refused naming the setting.
TEST(TrainingTest, Bf16TrainingLearnsAndLeavesFp32ContiguousWeights) {
  auto data = Synthetic(512, 6);
  auto m = BuildFashionCnn(8);
  TrainOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.seed = 3;
  o.bf16 = true;
  std::string why;
  Status st = Train(m, *ClassificationFor(data), data, o);
  if (!CpuHasBf16(&why)) {
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("training.precision bf16"), std::string::npos) << st.ToString();
    GTEST_SKIP() << "this CPU has no bf16: " << why;
  }
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (const auto& p : m.parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(p.is_contiguous());
  }
  EXPECT_GT(ClassificationFor(data)->Evaluate(m, data).accuracy, 0.3) << "chance is 0.1";
}

TEST(TrainingTest, DivergenceIsReportedNotThrown) {
  auto m = BuildFashionCnn(1);
  auto data = Synthetic(64, 2);
  data.inputs[0].fill_(std::numeric_limits<float>::infinity());
  TrainOptions o;
  o.batch_size = 64;
  Status st = Train(m, *ClassificationFor(data), data, o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("diverged"), std::string::npos) << st.ToString();
}

TEST(ModelTest, SaveLoadRoundTripKeepsFunction) {
  auto m = TrainedLookingCnn();
  RemoveStructures(m, FashionCnnLayout(), L1ChannelSelection(m, FashionCnnLayout(), 0.5));
  auto bytes = SaveToBytes(m);
  auto loaded = LoadFromBytes(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  torch::NoGradGuard g;
  auto x = torch::randn({3, 1, 28, 28});
  loaded->eval();
  EXPECT_TRUE(torch::allclose(m.forward({x}).toTensor(), loaded->forward({x}).toTensor()));
  EXPECT_TRUE(IsError(LoadFromBytes("not a model"), Status::Code::kCorruption, "cannot load TorchScript module"));
}

std::string Idx(uint32_t magic, std::vector<uint32_t> dims, const std::string& payload) {
  std::string s;
  auto be = [&](uint32_t v) { for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff)); };
  be(magic);
  for (auto d : dims) be(d);
  return s + payload;
}

TEST(DatasetTest, ParsesIdxAndRejectsBrokenFiles) {
  std::string pixels(3 * 28 * 28, '\0');
  pixels[0] = static_cast<char>(255);
  auto d = ParseIdx(Idx(0x803, {3, 28, 28}, pixels), Idx(0x801, {3}, std::string("\x01\x02\x09", 3)), 0);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->labels[2].item<int64_t>(), 9);
  EXPECT_NEAR(d->inputs[0][0][0][0].item<float>(), (1.0 - kFashionMnistMean) / kFashionMnistStd, 1e-5);
  EXPECT_TRUE(IsError(ParseIdx(Idx(0x801, {3, 28, 28}, pixels), Idx(0x801, {3}, "abc"), 0), Status::Code::kCorruption, "image file is not an IDX3 ubyte file"));
  EXPECT_TRUE(IsError(ParseIdx(Idx(0x803, {3, 28, 28}, pixels.substr(10)), Idx(0x801, {3}, "abc"), 0), Status::Code::kCorruption, "IDX file shorter than its header says"));
  auto missing = LoadFashionMnist("/nonexistent", true, 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("dataset-fashion-mnist"), std::string::npos);
}

TEST(LatencyStatsTest, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  auto s = Summarize(v);
  EXPECT_EQ(s.count, 100u);
  EXPECT_DOUBLE_EQ(s.p50_ms, 50);
  EXPECT_DOUBLE_EQ(s.p90_ms, 90);
  EXPECT_DOUBLE_EQ(s.p99_ms, 99);
  EXPECT_DOUBLE_EQ(s.mean_ms, 50.5);
  EXPECT_DOUBLE_EQ(Summarize({7}).p99_ms, 7);
}

TEST(FormsTest, CsrFormComputesWhatTheDenseModuleComputes) {
  auto m = TrainedLookingCnn();
  ApplyMasks(m, L1UnstructuredMasks(m, FashionCnnLayout(), 0.9));
  CsrCnn csr(m);
  torch::NoGradGuard g;
  for (int64_t batch : {1, 8}) {
    auto x = torch::randn({batch, 1, 28, 28});
    auto dense = m.forward({x}).toTensor();
    auto sparse = csr.Forward(x);
    EXPECT_TRUE(torch::allclose(dense, sparse, 1e-4, 1e-4)) << "batch " << batch << " max diff "
                                                            << (dense - sparse).abs().max().item<float>();
  }
  EXPECT_EQ(CandidateForms(true), (std::vector<std::string>{"dense", "frozen", "csr"}));
  EXPECT_EQ(CandidateForms(false), (std::vector<std::string>{"dense", "frozen"}));
  Dataset d = Synthetic(16, 3);
  EXPECT_TRUE(IsError(MakeSut("bsr", m, d), Status::Code::kInvalidArgument, "unknown execution form 'bsr'"));
}

TEST(BenchRunnerTest, MeasuresFormsScenariosAndInterleavedSpeedup) {
  ConfigureTorchThreads(1);
  auto dense = TrainedLookingCnn();
  auto variant = CloneModule(dense);
  ApplyMasks(variant, L1UnstructuredMasks(variant, FashionCnnLayout(), 0.9));
  Dataset samples = Synthetic(64, 9);
  BenchRequest req;
  req.variant = &variant;
  req.baseline = &dense;
  req.has_unstructured_zeros = true;
  req.samples = &samples;
  req.config.scenarios = {"single_stream", "multi_stream", "server", "offline"};
  req.config.warmup_queries = 2;
  req.config.min_queries = 50;
  req.config.min_duration_s = 0.02;
  req.config.offline_batch_size = 16;
  req.config.offline_min_samples = 64;
  req.config.offline_min_duration_s = 0.02;
  req.config.server_latency_bound_ms = 1000;  // generous: this test checks plumbing, not speed
  req.config.ab_rounds = 3;
  std::vector<std::string> phases;
  req.on_phase = [&](const std::string& p) { phases.push_back(p); };
  TrialResult r;
  ASSERT_TRUE(RunBenchmarks(req, &r).ok());
  EXPECT_TRUE(r.deployable_form == "dense" || r.deployable_form == "frozen" || r.deployable_form == "csr");
  EXPECT_GT(r.latency_p90_ms, 0);
  EXPECT_LE(r.latency_p50_ms, r.latency_p90_ms);
  EXPECT_LE(r.latency_p90_ms, r.latency_p99_ms);
  EXPECT_GT(r.multistream_p99_ms, 0);
  EXPECT_GT(r.server_max_qps, 0);
  EXPECT_GT(r.throughput_sps, 0);
  EXPECT_GT(r.peak_rss_bytes, 0u);
  EXPECT_GT(r.speedup_p90, 0);
  EXPECT_LE(r.speedup_min, r.speedup_p90);
  EXPECT_GE(r.speedup_max, r.speedup_p90);
  auto j = nlohmann::json::parse(r.benchmark_json);
  ASSERT_EQ(j["forms"].size(), 3u);
  int chosen = 0;
  for (const auto& f : j["forms"]) chosen += f["chosen"].get<bool>();
  EXPECT_EQ(chosen, 1);
  ASSERT_EQ(j["scenarios"].size(), 4u);
  for (const auto& s : j["scenarios"]) {
    EXPECT_TRUE(s["result"] == "VALID" || s["result"] == "INVALID");
    EXPECT_NE(s["summary"].get<std::string>().find("Result is"), std::string::npos);
  }
  EXPECT_EQ(j["scenarios"][1]["samples_per_query"], 8);
  EXPECT_EQ(j["ab"]["rounds"].size(), 3u);
  EXPECT_FALSE(j["server_search"]["probes"].empty());
  // The row's figures are the recorded runs' own, not merely positive: single-stream from the
  // chosen form's run, offline throughput from the offline run, multi-stream p99 from its run,
  // the server QPS the search's best, and the speedup the median of the A/B rounds' ratios.
  std::string chosen_form;
  for (const auto& f : j["forms"])
    if (f["chosen"].get<bool>()) chosen_form = f["form"].get<std::string>();
  EXPECT_EQ(r.deployable_form, chosen_form);
  std::map<std::string, nlohmann::json> by;
  for (const auto& sc : j["scenarios"]) by[sc["scenario"].get<std::string>()] = sc;
  ASSERT_EQ(by.size(), 4u);
  EXPECT_DOUBLE_EQ(r.latency_p90_ms, by["single_stream"]["latency"]["p90_ms"].get<double>());
  EXPECT_DOUBLE_EQ(r.latency_p50_ms, by["single_stream"]["latency"]["p50_ms"].get<double>());
  EXPECT_EQ(r.queries, by["single_stream"]["queries"].get<uint64_t>());
  EXPECT_DOUBLE_EQ(r.multistream_p99_ms, by["multi_stream"]["latency"]["p99_ms"].get<double>());
  EXPECT_DOUBLE_EQ(r.throughput_sps, by["offline"]["samples_per_s"].get<double>());
  EXPECT_DOUBLE_EQ(r.server_max_qps, j["server_search"]["best_qps"].get<double>());
  std::vector<double> ratios;
  for (const auto& round : j["ab"]["rounds"]) {
    const double ratio = round["ratio_p90"].get<double>();
    EXPECT_NEAR(ratio, round["baseline_p90_ms"].get<double>() / round["variant_p90_ms"].get<double>(), 1e-9);
    ratios.push_back(ratio);
  }
  std::sort(ratios.begin(), ratios.end());
  EXPECT_DOUBLE_EQ(r.speedup_p90, ratios[1]) << "the median of 3 rounds";
  EXPECT_DOUBLE_EQ(r.speedup_min, ratios.front());
  EXPECT_DOUBLE_EQ(r.speedup_max, ratios.back());
  // VALID overall only when every scenario is and the interference verdict is clean.
  bool every = j["interference"]["verdict"] == "clean";
  for (const auto& [name, sc] : by) every &= sc["result"] == "VALID";
  EXPECT_EQ(r.bench_valid, every);
}

TEST(BenchRunnerTest, MlperfProfileAppliesMlperfMinimums) {
  BenchmarkConfig cfg;
  cfg.profile = "mlperf";
  EXPECT_EQ(SettingsFor(Scenario::kSingleStream, cfg, 1).min_queries, 1024u);
  EXPECT_EQ(SettingsFor(Scenario::kMultiStream, cfg, 1).min_queries, 662u);
  EXPECT_EQ(SettingsFor(Scenario::kMultiStream, cfg, 1).samples_per_query, 8u);
  EXPECT_EQ(SettingsFor(Scenario::kOffline, cfg, 1).min_queries, 24576u);
  EXPECT_EQ(SettingsFor(Scenario::kServer, cfg, 1).min_queries, 270336u);
  EXPECT_DOUBLE_EQ(SettingsFor(Scenario::kOffline, cfg, 1).min_duration_s, 600);
  EXPECT_GE(SettingsFor(Scenario::kOffline, cfg, 1).max_duration_s, 600);
  cfg.profile = "lab";
  cfg.min_queries = 77;
  EXPECT_EQ(SettingsFor(Scenario::kSingleStream, cfg, 1).min_queries, 77u);
}

TEST(ImportanceTest, GradientCalibrationLeavesTheModelUnchanged) {
  auto m = TrainedLookingCnn();
  auto before = CloneModule(m);
  auto data = Synthetic(128, 4);
  auto grads = AccumulateAbsGradients(m, FashionCnnLayout(), *ClassificationFor(data), data, 4, 32);
  ASSERT_EQ(grads.size(), 4u);
  for (const auto& [name, gsum] : grads) {
    EXPECT_GE(gsum.min().item<float>(), 0.0f) << name;
    EXPECT_GT(gsum.sum().item<float>(), 0.0f) << name;
    EXPECT_TRUE(torch::equal(GetTensor(m, name), GetTensor(before, name))) << name;
  }
  EXPECT_TRUE(torch::equal(GetTensor(m, "bn1_mean"), GetTensor(before, "bn1_mean"))) << "eval mode: stats untouched";
}

// The real executor on real Fashion-MNIST (small subsets): train, then prune a variant.
TEST(TorchExecutorTest, TrainsAndPrunesOnRealFashionMnist) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST missing: run cluster/install-deps.sh (package dataset-fashion-mnist)";
  ConfigureTorchThreads(1);
  auto exec = NewTorchExecutor();
  Task t;
  t.sweep_id = "sw-test";
  t.model = "cnn";
  t.dataset.path = kFashionDir;
  t.dataset.train_subset = 2000;
  t.dataset.test_subset = 1000;
  t.training.epochs = 1;
  t.training.batch_size = 64;
  t.benchmark.warmup_queries = 5;
  t.benchmark.min_queries = 30;
  t.benchmark.min_duration_s = 0.05;
  t.benchmark.offline_min_duration_s = 0.05;
  t.benchmark.ab_rounds = 2;
  Task train = t;
  train.task_id = "train";
  train.kind = TaskKind::kTrainBaseline;
  ExecutionContext ctx;
  std::vector<std::string> phases;
  ctx.on_progress = [&](const std::string& phase, double) {
    if (phases.empty() || phases.back() != phase) phases.push_back(phase);
    return true;
  };
  auto out = exec->Execute(train, ctx);
  ASSERT_TRUE(out.result.ok) << out.result.error;
  EXPECT_GT(out.result.accuracy, 0.5) << "2000 samples x 1 epoch should beat chance by far";
  EXPECT_EQ(out.result.artifact_hash, ContentHash(out.artifact));
  EXPECT_EQ(phases.front(), "loading data");

  std::string artifact = out.artifact;
  ctx.fetch_artifact = [&](const std::string& h) -> StatusOr<std::string> {
    if (h != ContentHash(artifact)) return Status::NotFound(h);
    return artifact;
  };
  Task trial = t;
  trial.task_id = "t001";
  trial.kind = TaskKind::kPruneTrial;
  trial.trial.criterion = "l1";
  trial.trial.granularity = "channel";
  trial.trial.schedule = "one_shot";
  trial.trial.sparsity = 0.5;
  trial.trial.finetune_epochs = 1;
  trial.trial.finetune_learning_rate = 0.01;
  trial.baseline_artifact = out.result.artifact_hash;
  auto pruned = exec->Execute(trial, ctx);
  ASSERT_TRUE(pruned.result.ok) << pruned.result.error;
  // Half of every structure group removed: a layer between two pruned groups keeps a quarter.
  std::map<std::string, double> want{{"conv1", 0.5}, {"conv2", 0.75}, {"fc1", 0.75}, {"fc2", 0.5}};
  ASSERT_EQ(pruned.result.layers.size(), 4u);
  for (const auto& l : pruned.result.layers)
    EXPECT_DOUBLE_EQ(1.0 - static_cast<double>(l.nonzero) / l.dense, want[l.name]) << l.name;
  EXPECT_NEAR(pruned.result.achieved_sparsity, 0.749, 0.002);
  EXPECT_LT(pruned.result.params, out.result.params);
  EXPECT_LT(pruned.result.model_bytes, out.result.model_bytes);
  EXPECT_EQ(pruned.result.per_class_accuracy.size(), 10u);
  EXPECT_DOUBLE_EQ(pruned.result.baseline_accuracy, out.result.accuracy) << "same model, same test set";
  ASSERT_GE(pruned.result.worst_class, 0);
  EXPECT_DOUBLE_EQ(pruned.result.worst_class_drop,
                   out.result.per_class_accuracy[pruned.result.worst_class] -
                       pruned.result.per_class_accuracy[pruned.result.worst_class]);
  for (size_t k = 0; k < 10; ++k)
    EXPECT_LE(out.result.per_class_accuracy[k] - pruned.result.per_class_accuracy[k], pruned.result.worst_class_drop + 1e-12);
  ASSERT_EQ(pruned.result.artifact_hash, ContentHash(pruned.artifact));

  // The variant's benchmark task on a target: the variant against the baseline.
  std::string variant = pruned.artifact;
  ExecutionContext bctx = ctx;
  bctx.fetch_artifact = [&](const std::string& h) -> StatusOr<std::string> {
    if (h == ContentHash(variant)) return variant;
    if (h == ContentHash(artifact)) return artifact;
    return Status::NotFound(h);
  };
  Task bench = trial;
  bench.task_id = "t001@local";
  bench.kind = TaskKind::kBenchmarkVariant;
  bench.target = "local";
  bench.depends_on = "t001";
  bench.variant_artifact = pruned.result.artifact_hash;
  auto timed = exec->Execute(bench, bctx);
  ASSERT_TRUE(timed.result.ok) << timed.result.error;
  EXPECT_GT(timed.result.latency_p90_ms, 0);
  EXPECT_GE(timed.result.queries, 30u);
  EXPECT_GT(timed.result.throughput_sps, 0);
  EXPECT_NE(timed.result.deployable_form, "csr") << "channel pruning leaves no zeros for CSR";
  EXPECT_GT(timed.result.speedup_p90, 0) << "A/B against the baseline ran";
  EXPECT_FALSE(timed.result.benchmark_json.empty());
  EXPECT_EQ(timed.result.params, pruned.result.params) << "it timed the variant";
  bench.variant_artifact = "0000";
  auto missing = exec->Execute(bench, bctx);
  EXPECT_FALSE(missing.result.ok);
  EXPECT_NE(missing.result.error.find("variant 0000"), std::string::npos) << missing.result.error;

  // Same task, same seed, same machine: identical masks, so identical accuracy.
  auto again = exec->Execute(trial, ctx);
  ASSERT_TRUE(again.result.ok) << again.result.error;
  EXPECT_EQ(again.result.accuracy, pruned.result.accuracy);
  EXPECT_EQ(again.result.per_class_accuracy, pruned.result.per_class_accuracy);
  EXPECT_EQ(again.result.achieved_sparsity, pruned.result.achieved_sparsity);

  trial.trial.criterion = "taylor";
  auto taylor = exec->Execute(trial, ctx);
  ASSERT_TRUE(taylor.result.ok) << taylor.result.error;
  EXPECT_NEAR(taylor.result.achieved_sparsity, 0.749, 0.002);

  trial.trial.criterion = "l2";
  trial.trial.granularity = "2:4";
  auto nm = exec->Execute(trial, ctx);
  ASSERT_TRUE(nm.result.ok) << nm.result.error;
  EXPECT_NEAR(nm.result.achieved_sparsity, 0.5, 0.01) << "every layer but the 9-input first conv is 2:4";

  trial.trial.criterion = "l1";
  trial.trial.granularity = "unstructured";
  auto masked = exec->Execute(trial, ctx);
  ASSERT_TRUE(masked.result.ok) << masked.result.error;
  EXPECT_NEAR(masked.result.achieved_sparsity, 0.5, 0.01);
  EXPECT_EQ(masked.result.params, out.result.params) << "unstructured keeps dense storage";

  // A trial that cannot run is a failed result with a reason, not an exception.
  Task broken = trial;
  broken.dataset.path = "/nonexistent";
  auto failed = exec->Execute(broken, ctx);
  EXPECT_FALSE(failed.result.ok);
  EXPECT_NE(failed.result.error.find("Fashion-MNIST not found"), std::string::npos) << failed.result.error;
  broken = trial;
  broken.baseline_artifact = "0000";
  failed = exec->Execute(broken, ctx);
  EXPECT_FALSE(failed.result.ok);
  EXPECT_NE(failed.result.error.find("baseline"), std::string::npos);
}

}  // namespace
}  // namespace prunelab::worker
