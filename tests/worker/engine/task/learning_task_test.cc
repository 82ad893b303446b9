// The task seam: image classification keeps the engine's numbers, and a model that takes
// token ids is traced, structurally analysed, pruned and trained through the seam.
#include "worker/engine/task/learning_task.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "worker/engine/model/user_model.h"
#include "tests/worker/engine/user_modules.h"
#include "worker/engine/prune/pruning.h"
#include "worker/engine/train/training.h"

namespace prunelab::worker {
namespace {

constexpr int64_t kVocabulary = 50, kLength = 12, kWidth = 16, kHidden = 24, kClasses = 4;

using prunelab::testing::UserLinear;

// A bag-of-embeddings text classifier, the way users write one: ids -> embedding -> mean over
// the tokens -> hidden layer -> class scores.
torch::jit::Module TokenClassifier() {
  torch::manual_seed(3);
  torch::jit::Module emb("__torch__.user.Embedding");
  emb.register_parameter("weight", torch::randn({kVocabulary, kWidth}), false);
  torch::jit::Module m("__torch__.user.BagOfWords");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_module("emb", emb);
  m.register_module("fc1", UserLinear(kHidden, kWidth));
  m.register_module("out", UserLinear(kClasses, kHidden));
  m.define(
      "def forward(self, ids):\n"
      "    h = torch.embedding(self.emb.weight, ids).mean(1)\n"
      "    return self.out.forward(torch.relu(self.fc1.forward(h)))\n");
  return m;
}

// Token sequences whose class is which quarter of the vocabulary most of their ids come from.
Dataset TokenData(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Dataset d;
  d.labels = torch::randint(0, kClasses, {n}, gen, torch::kLong);
  auto own = d.labels.view({n, 1}) * (kVocabulary / kClasses) +
             torch::randint(0, kVocabulary / kClasses, {n, kLength}, gen, torch::kLong);
  auto noise = torch::randint(0, kVocabulary, {n, kLength}, gen, torch::kLong);
  d.inputs = torch::where(torch::rand({n, kLength}, gen) < 0.75, own, noise);
  d.classes = kClasses;
  return d;
}

TEST(ImageClassificationTest, SamplesBatchesAndExampleInputsFollowTheSampleShape) {
  auto task = NewImageClassification({1, 28, 28});
  EXPECT_EQ(task->Name(), "image_classification");
  EXPECT_EQ(task->Sample().dtype, at::kFloat);
  EXPECT_EQ(task->Metric().name, "accuracy");
  EXPECT_TRUE(task->Metric().maximize);
  auto in = task->ExampleInputs(3, at::make_generator<at::CPUGeneratorImpl>(7));
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].toTensor().sizes(), (std::vector<int64_t>{3, 1, 28, 28}));
  // The same generator seed gives the same inputs (checks must not depend on the global one).
  auto again = task->ExampleInputs(3, at::make_generator<at::CPUGeneratorImpl>(7));
  EXPECT_TRUE(in[0].toTensor().equal(again[0].toTensor()));

  Dataset d{torch::arange(5 * 4, torch::kFloat32).view({5, 1, 2, 2}), torch::tensor({0, 1, 2, 1, 0}), 3};
  auto b = task->Gather(d, torch::tensor({4, 1}));
  EXPECT_TRUE(b.inputs[0].toTensor().equal(d.inputs.index_select(0, torch::tensor({4, 1}))));
  EXPECT_TRUE(b.targets.equal(torch::tensor({0, 1})));
  auto r = task->Range(d, 1, 3);
  EXPECT_TRUE(r.targets.equal(torch::tensor({1, 2})));
}

TEST(ImageClassificationTest, EvaluateCountsPerClassAsTheEngineAlwaysDid) {
  // A "model" that predicts the class stored in the first pixel: per-class figures by hand.
  torch::jit::Module m("__torch__.user.Oracle");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define(
      "def forward(self, x):\n"
      "    return torch.index_select(torch.eye(3), 0, x.flatten(1)[:, 0].long())\n");
  Dataset d{torch::tensor({0.f, 1.f, 2.f, 2.f, 1.f, 0.f}).view({6, 1, 1, 1}), torch::tensor({0, 1, 2, 1, 1, 2}), 3};
  auto task = NewImageClassification({1, 1, 1});
  Evaluation e = task->Evaluate(m, d);
  EXPECT_DOUBLE_EQ(e.accuracy, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(e.quality, e.accuracy);
  EXPECT_EQ(e.seen, (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(e.predicted, (std::vector<int64_t>{2, 2, 2}));
  ASSERT_EQ(e.per_class.size(), 3u);
  EXPECT_DOUBLE_EQ(e.per_class[0], 1.0);
  EXPECT_DOUBLE_EQ(e.per_class[1], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(e.per_class[2], 0.5);
  // The loss is cross-entropy; the sum is the mean times the batch.
  auto logits = torch::randn({4, 3}), y = torch::tensor({0, 2, 1, 1});
  EXPECT_NEAR(task->Loss(logits, y, LossReduction::kSum).item<double>(),
              4 * task->Loss(logits, y).item<double>(), 1e-5);
  EXPECT_NEAR(task->Loss(logits, y).item<double>(), torch::nn::functional::cross_entropy(logits, y).item<double>(),
              1e-7);
}

TEST(ImageClassificationTest, CheckOutputsNamesWhatTheModelReturned) {
  torch::jit::Module m("__torch__.user.Two");
  m.register_attribute("training", c10::BoolType::get(), false);
  m.define("def forward(self, x):\n    return x.flatten(1)[:, :2]\n");
  Dataset d{torch::randn({4, 1, 2, 2}), torch::tensor({0, 1, 2, 3}), 4};
  Status st = NewImageClassification({1, 2, 2})->CheckOutputs(m, d);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("the dataset has 4 classes"), std::string::npos) << st.ToString();
  Dataset empty{torch::zeros({0, 1, 2, 2}), torch::zeros({0}, torch::kLong), 4};
  st = NewImageClassification({1, 2, 2})->CheckOutputs(m, empty);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("no samples"), std::string::npos) << st.ToString();
}

TEST(TokenTaskTest, ExampleInputsAreTokenIdsBelowTheVocabulary) {
  auto task = NewTokenClassification(kLength, kVocabulary);
  EXPECT_EQ(task->Sample().dtype, at::kLong);
  auto in = task->ExampleInputs(64)[0].toTensor();
  EXPECT_EQ(in.scalar_type(), at::kLong);
  EXPECT_EQ(in.sizes(), (std::vector<int64_t>{64, kLength}));
  EXPECT_GE(in.min().item<int64_t>(), 0);
  EXPECT_LT(in.max().item<int64_t>(), kVocabulary);
  // Data decides the task for programs that start from data.
  auto from_data = ClassificationFor(TokenData(8, 1));
  EXPECT_EQ(from_data->Sample().dtype, at::kLong);
  EXPECT_EQ(from_data->Sample().shape, (std::vector<int64_t>{kLength}));
}

TEST(TokenTaskTest, ATokenIdModelIsTracedAndStructurallyAnalysedThroughTheSeam) {
  auto m = TokenClassifier();
  // Fed float samples of the same shape (what the engine fed every model before the seam), the
  // model does not run, and the check says so.
  {
    auto zeroed = CloneModule(m);
    Status st = CheckStructuredVariant(zeroed, m, NewImageClassification({kLength})->ExampleInputs(2), 1e-5, nullptr);
    EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
    EXPECT_NE(st.message().find("did not run"), std::string::npos) << st.ToString();
  }

  auto task = NewTokenClassification(kLength, kVocabulary);
  auto layout = InferLayout(m, *task);
  EXPECT_TRUE(layout.structured_error.empty()) << layout.structured_error;
  EXPECT_EQ(layout.input_shape, (std::vector<int64_t>{kLength}));
  // The embedding's width (its weight's columns, read by fc1's columns) and fc1's neurons are
  // structures; the class scores are the model's output and never one.
  ASSERT_EQ(layout.groups.size(), 2u);
  EXPECT_EQ(layout.groups[0].name, "emb");
  EXPECT_EQ(layout.groups[1].name, "fc1");
  for (const auto& g : layout.groups) {
    EXPECT_TRUE(g.blocked.empty()) << g.name << ": " << g.blocked;
    EXPECT_EQ(layout.Structures(m, g), g.name == "emb" ? kWidth : kHidden);
  }

  auto keep = L1ChannelSelection(m, layout, 0.5);
  auto zeroed = CloneModule(m);
  ZeroStructures(zeroed, layout, keep);
  RemoveStructures(m, layout, keep);
  EXPECT_EQ(GetTensor(m, "emb.weight").sizes(), (std::vector<int64_t>{kVocabulary, kWidth / 2}));
  EXPECT_EQ(GetTensor(m, "fc1.weight").sizes(), (std::vector<int64_t>{kHidden / 2, kWidth / 2}));
  EXPECT_EQ(GetTensor(m, "out.weight").sizes(), (std::vector<int64_t>{kClasses, kHidden / 2}));
  double err = -1;
  Status st = CheckStructuredVariant(zeroed, m, task->ExampleInputs(8, at::make_generator<at::CPUGeneratorImpl>(1)),
                                     1e-5, &err);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_GE(err, 0);
  EXPECT_LE(err, 1e-5);
}

TEST(TokenTaskTest, ATokenIdModelTrainsAndIsEvaluatedThroughTheSeam) {
  auto m = TokenClassifier();
  Dataset train = TokenData(512, 11), test = TokenData(256, 12);
  auto task = ClassificationFor(train);
  ASSERT_TRUE(task->CheckOutputs(m, train).ok());
  const double before = task->Evaluate(m, test).accuracy;
  TrainOptions o;
  o.epochs = 8;
  o.batch_size = 32;
  o.learning_rate = 0.1;
  Status st = Train(m, *task, train, o);
  ASSERT_TRUE(st.ok()) << st.ToString();
  Evaluation after = task->Evaluate(m, test);
  // Three quarters of each sequence's ids point at its class: a trained bag of words is far
  // above chance (0.25) and above where it started.
  EXPECT_GT(after.accuracy, 0.8) << "before training: " << before;
  EXPECT_GT(after.accuracy, before);
  EXPECT_EQ(after.per_class.size(), static_cast<size_t>(kClasses));
  int64_t seen = 0;
  for (int64_t s : after.seen) seen += s;
  EXPECT_EQ(seen, test.size());
}

}  // namespace
}  // namespace prunelab::worker
