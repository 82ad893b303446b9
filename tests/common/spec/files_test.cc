#include "common/spec/files.h"
#include "tests/status_matchers.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"

namespace prunelab {
namespace {

using prunelab::testing::IsError;

TEST(FilesTest, OnlyRegularFilesWithinTheLimitAreRead) {
  testing::TempDir dir;
  const std::string d = dir.path();
  std::ofstream(d + "/ok.yaml") << "name: x\n";
  auto ok = ReadRegularFile(d + "/ok.yaml", 100, "spec file");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok.value(), "name: x\n");
  // A FIFO would block a plain open() forever: refused at once, named.
  ASSERT_EQ(mkfifo((d + "/fifo").c_str(), 0600), 0);
  auto fifo = ReadRegularFile(d + "/fifo", 100, "model.torchscript");
  ASSERT_FALSE(fifo.ok());
  EXPECT_NE(fifo.status().message().find("is a FIFO"), std::string::npos) << fifo.status().message();
  auto device = ReadRegularFile("/dev/zero", 100, "model.torchscript");
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.status().message().find("is a device"), std::string::npos) << device.status().message();
  auto directory = ReadRegularFile(d, 100, "spec file");
  EXPECT_NE(directory.status().message().find("is a directory"), std::string::npos) << directory.status().message();
  std::filesystem::create_symlink(d + "/gone", d + "/dangling");
  auto dangling = ReadRegularFile(d + "/dangling", 100, "model.torchscript");
  EXPECT_EQ(dangling.status().code(), Status::Code::kNotFound);
  EXPECT_NE(dangling.status().message().find("a symlink to a file that does not exist"), std::string::npos)
      << dangling.status().message();
  auto big = ReadRegularFile(d + "/ok.yaml", 4, "spec file");
  EXPECT_NE(big.status().message().find("over the limit of 4 bytes"), std::string::npos) << big.status().message();
}

TEST(FilesTest, SpecTextMustBeUtf8AndTheErrorGivesLineAndColumn) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/bad.yaml") << "name: x\n# caf\xFF\n";
  auto bad = ReadSpecText(dir.path() + "/bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2, column 6"), std::string::npos) << bad.status().message();
}

TEST(FilesTest, TorchScriptFilesAreZipArchives) {
  EXPECT_TRUE(CheckTorchScriptBytes(std::string("PK\x03\x04rest", 8), "m").ok());
  auto pickle = CheckTorchScriptBytes("\x80\x02}q\x00", "model.torchscript 'net.pt'");
  ASSERT_FALSE(pickle.ok());
  EXPECT_NE(pickle.message().find("model.torchscript 'net.pt' is not a TorchScript file"), std::string::npos);
  EXPECT_NE(pickle.message().find("torch.jit.save"), std::string::npos);
  EXPECT_TRUE(IsError(CheckTorchScriptBytes("", "m"), Status::Code::kInvalidArgument, "m"));
}

TEST(FilesTest, DatasetFilesNeedReadableIdxOrGzipHeaders) {
  testing::TempDir dir;
  DatasetConfig cfg;
  cfg.path = dir.path();
  auto none = CheckDatasetFiles(cfg);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.message().find("no train-images-idx3-ubyte(.gz)"), std::string::npos) << none.message();
  for (const char* f : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"}) std::ofstream(dir.path() + "/" + f) << std::string("\0\0\x08\x03", 4);
  for (const char* f : {"train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"}) std::ofstream(dir.path() + "/" + f) << std::string("\0\0\x08\x01", 4);
  EXPECT_TRUE(CheckDatasetFiles(cfg).ok());
  std::ofstream(dir.path() + "/t10k-labels-idx1-ubyte") << "hello";
  auto wrong = CheckDatasetFiles(cfg);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("neither gzip nor an IDX file"), std::string::npos) << wrong.message();
  DatasetConfig real;  // Debian's dataset-fashion-mnist, when installed
  if (std::filesystem::exists(real.path)) EXPECT_TRUE(CheckDatasetFiles(real).ok()) << CheckDatasetFiles(real).message();
}

}  // namespace
// A language model's data is checked before a sweep is submitted: the corpus folder and its
// files, the token files of both splits, the user's tokenizer; each error names the field.
TEST(FilesTest, LanguageModelDataIsCheckedBeforeSubmittingAndTheErrorNamesTheField) {
  testing::TempDir dir;
  DatasetConfig text;
  text.task = "causal_lm";
  text.name = "text";
  text.path = dir.path() + "/missing";
  EXPECT_TRUE(IsError(CheckDatasetFiles(text), Status::Code::kNotFound, "dataset.path: '" + text.path + "' is not a directory"));
  text.path = dir.path() + "/corpus";
  std::filesystem::create_directories(text.path);
  EXPECT_TRUE(IsError(CheckDatasetFiles(text), Status::Code::kNotFound, "holds no files (name text: UTF-8 text files)"));
  std::ofstream(text.path + "/a.txt") << "some text\n";
  EXPECT_TRUE(CheckDatasetFiles(text).ok());
  text.tokenizer = dir.path() + "/none.model";
  EXPECT_TRUE(IsError(CheckDatasetFiles(text), Status::Code::kNotFound, "dataset.tokenizer:"));
  DatasetConfig tokens = text;
  tokens.name = "tokens";
  tokens.tokenizer.clear();
  tokens.path = dir.path() + "/tok";
  std::filesystem::create_directories(tokens.path);
  std::ofstream(tokens.path + "/train.bin") << "ab";
  EXPECT_TRUE(IsError(CheckDatasetFiles(tokens), Status::Code::kNotFound, "dataset.path: no val.bin or val.npy in"));
  std::ofstream(tokens.path + "/val.npy") << "x";
  EXPECT_TRUE(CheckDatasetFiles(tokens).ok());
}

}  // namespace prunelab
