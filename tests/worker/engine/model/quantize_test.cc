// int8 quantization: zoo models trained briefly on Fashion-MNIST keep their accuracy within
// a tolerance once quantized (static: convolutions with their batch norms folded, linears;
// dynamic: linears), shrink, run on the engine chosen; a torchvision ResNet quantizes too; a module
// with nothing to quantize is an error that says so.
#include <torch/torch.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "worker/engine/data/fashion_mnist.h"
#include "tests/status_matchers.h"
#include "worker/engine/model/quantize.h"
#include "worker/engine/model/zoo.h"
#include "worker/engine/train/training.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

TEST(QuantizeTest, ZooModelsKeepTheirAccuracyWithinATolerance) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST missing: run cluster/install-deps.sh (package dataset-fashion-mnist)";
  at::set_num_threads(1);
  auto train = LoadFashionMnist(kFashionDir, true, 3000);
  auto test = LoadFashionMnist(kFashionDir, false, 1000);
  ASSERT_TRUE(train.ok() && test.ok());
  struct Case {
    std::string model, mode;
    int64_t quantized, folded;
  };
  for (const Case& c : std::vector<Case>{{"cnn", "int8", 4, 2}, {"resnet", "int8", 10, 9}, {"mlp", "int8", 3, 0}, {"mlp", "int8_dynamic", 3, 0}}) {
    SCOPED_TRACE(c.model + " " + c.mode);
    auto built = BuildZooModel(c.model, 1);
    ASSERT_TRUE(built.ok());
    torch::jit::Module m = built->module;
    TrainOptions o;
    o.epochs = 1;
    ASSERT_TRUE(Train(m, *ClassificationFor(train.value()), train.value(), o).ok());
    m.eval();
    const double fp32 = ClassificationFor(test.value())->Evaluate(m, test.value()).accuracy;
    QuantizeReport r;
    auto q = QuantizeInt8(m, c.mode, *ClassificationFor(train.value()), train.value(), 4, 64, &r);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    EXPECT_EQ(r.quantized_ops, c.quantized);
    EXPECT_EQ(r.float_ops, 0);
    EXPECT_EQ(r.folded_batch_norms, c.folded);
    EXPECT_EQ(r.engine, "onednn") << "x86 with oneDNN (Debian's LibTorch has onednn and qnnpack)";
    EXPECT_EQ(r.calibration_samples, c.mode == "int8" ? 256 : 0) << "dynamic: nothing to calibrate";
    const double int8 = ClassificationFor(test.value())->Evaluate(q.value(), test.value()).accuracy;
    EXPECT_GT(fp32, 0.6);
    EXPECT_NEAR(int8, fp32, 0.02) << "fp32 " << fp32 << ", int8 " << int8;
    EXPECT_LT(SaveToBytes(q.value()).size(), SaveToBytes(m).size() * 0.5) << "int8 weights, float ones dropped";
    // It survives serialization, as a variant must.
    auto again = LoadFromBytes(SaveToBytes(q.value()));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_DOUBLE_EQ(ClassificationFor(test.value())->Evaluate(again.value(), test.value()).accuracy, int8);
  }
}

TEST(QuantizeTest, ATorchvisionResnetQuantizesAndAModelWithoutLayersIsRefused) {
  if (std::system("/usr/bin/python3 -c 'import torchvision' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-torchvision is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/bench/torchvision_models.py --out " +
                    dir.path() + " --models resnet18 > " + dir.path() + "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(dir.path() + "/resnet18.pt", std::ios::binary);
  auto m = LoadFromBytes(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  ASSERT_TRUE(m.ok());
  m->eval();
  Dataset calib{torch::randn({32, 3, 32, 32}), torch::zeros({32}, torch::kInt64)};
  QuantizeReport r;
  auto q = QuantizeInt8(m.value(), "int8", *ClassificationFor(calib), calib, 2, 16, &r);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(r.quantized_ops, 21) << "20 convolutions and the classifier";
  EXPECT_EQ(r.folded_batch_norms, 20);
  torch::NoGradGuard g;
  auto x = calib.inputs.slice(0, 0, 8);
  auto want = m->forward({x}).toTensor(), got = q->forward({x}).toTensor();
  // Same function up to int8 rounding: the logits agree to a fraction of their spread.
  EXPECT_LT((got - want).abs().mean().item<double>(), 0.25 * want.std().item<double>());

  torch::jit::Module plain("__torch__.prunelab_test.Plain");
  plain.register_attribute("training", c10::BoolType::get(), false);
  plain.define("def forward(self, x: Tensor) -> Tensor:\n    return torch.flatten(x, 1)[:, :10] * 2.0\n");
  auto none = QuantizeInt8(plain, "int8", *ClassificationFor(calib), calib, 1, 8, nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no convolution or linear layer was quantized"), std::string::npos)
      << none.status().message();
  EXPECT_TRUE(IsError(QuantizeInt8(m.value(), "int4", *ClassificationFor(calib), calib, 1, 8, nullptr), Status::Code::kInvalidArgument, "quantize: 'int4' (allowed: none, int8, int8_dynamic)"));
  // Dynamic int8 takes linear layers only: of a ResNet just the classifier.
  QuantizeReport d;
  auto dyn = QuantizeInt8(m.value(), "int8_dynamic", *ClassificationFor(calib), calib, 1, 8, &d);
  ASSERT_TRUE(dyn.ok()) << dyn.status().ToString();
  EXPECT_EQ(d.quantized_ops, 1);
  EXPECT_EQ(d.float_ops, 20) << "the convolutions stay float";
}

}  // namespace
}  // namespace prunelab::worker
