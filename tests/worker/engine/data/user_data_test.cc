// Users' own data: NumPy arrays and image folders (PNG and JPEG), resized and normalized as
// the model takes them; bad data refused at submit and at load, naming the file; a baseline
// trained end to end on a folder dataset made from Fashion-MNIST images.
#include <torch/torch.h>
#include <gtest/gtest.h>

#include <stb/stb_image_write.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/base/npy.h"
#include "tests/status_matchers.h"
#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "worker/engine/torch_executor.h"
#include "worker/engine/data/user_data.h"
#include "worker/engine/model/fold.h"
#include "worker/engine/model/model.h"
#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

using prunelab::testing::IsError;

namespace fs = std::filesystem;
const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

// A .npy file of `t` (C order, little-endian), as numpy.save writes it.
void SaveNpy(const std::string& path, const torch::Tensor& t) {
  std::string descr = t.scalar_type() == torch::kUInt8 ? "|u1" : t.scalar_type() == torch::kInt64 ? "<i8" : "<f4";
  std::string shape = "(";
  for (int64_t d : t.sizes()) shape += std::to_string(d) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 2);
  else shape.resize(shape.size() - 1);
  shape += t.dim() == 1 ? ",)" : ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out << header;
  auto c = t.contiguous();
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

DatasetConfig Config(const std::string& name, const std::string& path) {
  DatasetConfig c;
  c.name = name;
  c.path = path;
  return c;
}

TEST(NpyTest, ParsesHeadersAndRefusesWhatItCannotRead) {
  testing::TempDir dir;
  SaveNpy(dir.path() + "/a.npy", torch::zeros({5, 3, 2}, torch::kUInt8));
  std::ifstream in(dir.path() + "/a.npy", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto h = ParseNpyHeader(bytes, "a.npy");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->dtype, "u1");
  EXPECT_EQ(h->shape, (std::vector<int64_t>{5, 3, 2}));
  EXPECT_TRUE(CheckNpySize(h.value(), bytes.size(), "a.npy").ok());
  EXPECT_TRUE(IsError(CheckNpySize(h.value(), bytes.size() - 1, "a.npy"), Status::Code::kInvalidArgument, "a.npy"));
  EXPECT_FALSE(ParseNpyHeader("PK\x03\x04 not numpy", "b.npy").ok());
  std::string fortran = bytes;
  fortran.replace(fortran.find("False"), 5, "True ");
  auto f = ParseNpyHeader(fortran, "c.npy");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("Fortran"), std::string::npos);
}

TEST(UserDataTest, NpyArraysInEitherLayoutAreResizedAndNormalized) {
  testing::TempDir dir;
  // train: uint8 N x H x W x C, all pixels 255 in channel 0; test: float32 N x C x H x W.
  auto train = torch::zeros({6, 8, 8, 3}, torch::kUInt8);
  train.select(3, 0).fill_(255);
  SaveNpy(dir.path() + "/train_images.npy", train);
  SaveNpy(dir.path() + "/train_labels.npy", torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64));
  SaveNpy(dir.path() + "/test_images.npy", torch::full({4, 3, 8, 8}, 0.5f));
  SaveNpy(dir.path() + "/test_labels.npy", torch::tensor({2, 1, 0, 1}, torch::kInt64));
  auto cfg = Config("npy", dir.path());
  cfg.mean = {0.5, 0.5, 0.5};
  cfg.std = {0.25, 0.25, 0.25};
  ASSERT_TRUE(CheckDatasetFiles(cfg).ok()) << CheckDatasetFiles(cfg).ToString();
  auto d = LoadUserDataset(cfg, true, 0, {3, 16, 16});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->inputs.sizes(), (std::vector<int64_t>{6, 3, 16, 16}));
  EXPECT_EQ(d->classes, 3);
  EXPECT_NEAR(d->inputs.select(1, 0).mean().item<double>(), (1.0 - 0.5) / 0.25, 1e-5);
  EXPECT_NEAR(d->inputs.select(1, 1).mean().item<double>(), (0.0 - 0.5) / 0.25, 1e-5);
  auto grey = LoadUserDataset(Config("npy", dir.path()), false, 2, {1, 8, 8});
  ASSERT_TRUE(grey.ok()) << grey.status().ToString();
  EXPECT_EQ(grey->inputs.sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
  EXPECT_NEAR(grey->inputs.mean().item<double>(), 0.5, 1e-5);

  // A label out of dataset.classes' range, and counts that disagree, name the file.
  cfg.class_names = {"a", "b"};
  auto out_of_range = LoadUserDataset(cfg, true, 0, {3, 8, 8});
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_NE(out_of_range.status().message().find("train_labels.npy"), std::string::npos) << out_of_range.status().ToString();
  EXPECT_NE(out_of_range.status().message().find("out of range"), std::string::npos);
  SaveNpy(dir.path() + "/test_labels.npy", torch::tensor({2, 1, 0}, torch::kInt64));
  auto mismatch = CheckDatasetFiles(Config("npy", dir.path()));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.message().find("4 images"), std::string::npos) << mismatch.ToString();
  fs::remove(dir.path() + "/test_labels.npy");
  auto missing = CheckDatasetFiles(Config("npy", dir.path()));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("test_labels.npy"), std::string::npos) << missing.ToString();
}

// export --fold-preprocessing: a model wrapped by FoldPreprocessing, given the raw pixels,
// sees exactly what the worker's data loading made of them (scaling, gray -> RGB, a resize
// that enlarges one side and shrinks the other, mean/std).
TEST(UserDataTest, FoldedPreprocessingDoesWhatTheWorkerDidToTheData) {
  testing::TempDir dir;
  torch::manual_seed(4);
  auto raw = torch::randint(0, 256, {5, 10, 12, 1}, torch::kUInt8);  // N x H x W x C, gray
  SaveNpy(dir.path() + "/train_images.npy", raw);
  SaveNpy(dir.path() + "/train_labels.npy", torch::tensor({0, 1, 0, 1, 0}, torch::kInt64));
  SaveNpy(dir.path() + "/test_images.npy", raw);
  SaveNpy(dir.path() + "/test_labels.npy", torch::tensor({0, 1, 0, 1, 0}, torch::kInt64));
  auto cfg = Config("npy", dir.path());
  cfg.mean = {0.4, 0.5, 0.6};
  cfg.std = {0.2, 0.3, 0.25};
  const std::vector<int64_t> shape{3, 16, 8};
  auto d = LoadUserDataset(cfg, true, 0, shape);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  torch::jit::Module identity("Identity");
  identity.define("def forward(self, x: Tensor) -> Tensor:\n    return x\n");
  auto folded = FoldPreprocessing(SaveToBytes(identity), {shape, cfg.mean, cfg.std});
  ASSERT_TRUE(folded.ok()) << folded.status().ToString();
  auto m = LoadFromBytes(folded.value());
  ASSERT_TRUE(m.ok());
  torch::NoGradGuard g;
  auto got = m->forward({raw.permute({0, 3, 1, 2})}).toTensor();
  ASSERT_EQ(got.sizes(), d->inputs.sizes());
  EXPECT_LT((got - d->inputs).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(IsError(FoldPreprocessing(SaveToBytes(identity), {shape, {0.1, 0.2}, {}}), Status::Code::kInvalidArgument, "mean has 2")) << "2 means for 3 channels";
}

// Writes n images per class into root/split/class/ as PNG (even) and JPEG (odd), from
// Fashion-MNIST when present (class = its label), else from noise.
void WriteFolder(const std::string& root, const std::vector<int>& labels, int per_class, bool train) {
  const std::string split = root + (train ? "/train" : "/test");
  torch::Tensor images, ys;
  auto d = LoadFashionMnist(kFashionDir, train, 6000);
  if (d.ok()) {
    images = (d->inputs * kFashionMnistStd + kFashionMnistMean).mul(255).clamp(0, 255).to(torch::kUInt8);
    ys = d->labels;
  }
  for (int label : labels) {
    std::string dir = split + "/class_" + std::to_string(label);
    fs::create_directories(dir);
    int written = 0;
    for (int64_t i = 0; written < per_class; ++i) {
      torch::Tensor img;
      if (images.defined()) {
        if (ys[i].item<int64_t>() != label) continue;
        img = images[i][0].contiguous();
      } else {
        img = torch::randint(0, 255, {28, 28}, torch::kUInt8);
      }
      std::string path = dir + "/" + std::to_string(written) + (written % 2 ? ".jpg" : ".png");
      if (written % 2) stbi_write_jpg(path.c_str(), 28, 28, 1, img.data_ptr(), 95);
      else stbi_write_png(path.c_str(), 28, 28, 1, img.data_ptr(), 28);
      ++written;
    }
  }
}

TEST(UserDataTest, ImageFoldersDecodePngAndJpegAndRefuseBrokenFiles) {
  testing::TempDir dir;
  WriteFolder(dir.path(), {0, 1, 7}, 10, true);
  WriteFolder(dir.path(), {0, 1, 7}, 4, false);
  auto cfg = Config("folder", dir.path());
  ASSERT_TRUE(CheckDatasetFiles(cfg).ok()) << CheckDatasetFiles(cfg).ToString();
  auto classes = FolderClasses(dir.path());
  ASSERT_TRUE(classes.ok());
  EXPECT_EQ(classes.value(), (std::vector<std::string>{"class_0", "class_1", "class_7"}));
  auto d = LoadUserDataset(cfg, true, 6, {3, 32, 32});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->inputs.sizes(), (std::vector<int64_t>{6, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(d->labels, torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64))) << "a subset takes classes in turn";
  auto test = LoadUserDataset(cfg, false, 0, {1, 28, 28});
  ASSERT_TRUE(test.ok()) << test.status().ToString();
  EXPECT_EQ(test->size(), 12);

  // An undecodable image fails the load naming it; a test class train/ lacks is refused at submit.
  std::ofstream(dir.path() + "/train/class_1/broken.png") << "not a png";
  auto broken = LoadUserDataset(cfg, true, 0, {1, 28, 28});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("broken.png"), std::string::npos) << broken.status().ToString();
  fs::create_directories(dir.path() + "/test/class_9");
  std::ofstream(dir.path() + "/test/class_9/x.png") << "x";
  auto extra = CheckDatasetFiles(cfg);
  ASSERT_FALSE(extra.ok());
  EXPECT_NE(extra.message().find("class_9"), std::string::npos) << extra.ToString();
}

TEST(UserDataTest, SpecNamesTheFormatsAndNormalization) {
  auto ok = ParseSpec("name: n\nmodel: cnn\ndataset: {name: folder, path: /data/x, mean: [0.5], std: [0.25], classes: [a, b]}\n"
                      "sweep: {criterion: [l1], granularity: [unstructured], sparsity: [0.5]}\ntargets: [local]\n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->dataset.name, "folder");
  EXPECT_EQ(ok->dataset.std, (std::vector<double>{0.25}));
  EXPECT_EQ(ok->dataset.class_names, (std::vector<std::string>{"a", "b"}));
  auto bad = ParseSpec("name: n\nmodel: cnn\ndataset: {name: csv, std: [0]}\n"
                       "sweep: {criterion: [l1], granularity: [unstructured], sparsity: [0.5]}\ntargets: [local]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("dataset.name"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("npy"), std::string::npos) << "names the allowed formats";
}

TEST(UserDataTest, BaselineTrainsOnAnImageFolderWithItsOwnClassCount) {
  if (!fs::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "no dataset";
  testing::TempDir dir;
  std::string model = dir.path() + "/model.pt";
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/examples/user-model/make_model.py " + model +
                    " > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  std::ifstream in(model, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WriteFolder(dir.path() + "/data", {0, 1, 7}, 100, true);
  WriteFolder(dir.path() + "/data", {0, 1, 7}, 30, false);
  Task t;
  t.sweep_id = "sw-data";
  t.task_id = "train";
  t.kind = TaskKind::kTrainBaseline;
  t.model = "torchscript";
  t.model_artifact = "user";
  t.input_shape = {1, 28, 28};
  t.dataset = Config("folder", dir.path() + "/data");
  t.dataset.mean = {0.286};
  t.dataset.std = {0.353};
  t.training.epochs = 2;
  t.training.batch_size = 32;
  t.training.learning_rate = 0.05;
  ExecutionContext ctx;
  ctx.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return bytes; };
  auto ex = NewTorchExecutor();
  auto out = ex->Execute(t, ctx);
  ASSERT_TRUE(out.result.ok) << out.result.error;
  EXPECT_EQ(out.result.per_class_accuracy.size(), 3u) << "the number of classes comes from the data";
  EXPECT_GT(out.result.accuracy, 0.6) << "three well-separated Fashion-MNIST classes";
  EXPECT_EQ(out.result.class_names, (std::vector<std::string>{"class_0", "class_1", "class_7"}));
  EXPECT_NE(out.result.preprocessing.find("resized bilinearly to 1x28x28"), std::string::npos) << out.result.preprocessing;

  // Labels beyond the model's outputs: refused before training, saying what to change.
  fs::rename(dir.path() + "/data/train/class_7", dir.path() + "/data/train/class_z");
  for (int k = 2; k < 12; ++k) fs::create_directories(dir.path() + "/data/train/extra_" + std::to_string(k));
  for (int k = 2; k < 12; ++k)
    fs::copy(dir.path() + "/data/train/class_0/0.png", dir.path() + "/data/train/extra_" + std::to_string(k) + "/0.png");
  t.dataset.train_subset = 40;
  auto many = ex->Execute(t, ctx);
  EXPECT_FALSE(many.result.ok);
  EXPECT_NE(many.result.error.find("13 classes"), std::string::npos) << many.result.error;
}

}  // namespace
}  // namespace prunelab::worker
