// Raw text for language modeling: corpus directories split per file, text that is not UTF-8
// refused with its file, line and byte offset, SentencePiece tokenizers trained (and cached by
// content hash) or loaded, and prunelab-tokenize writing the token streams the engine reads.
// The real corpus is Debian's `fortunes` (cluster/install-deps.sh installs it); the parts that
// need it are skipped, saying so, when it is absent. No LibTorch in this binary (text_data.h).
#include "worker/engine/data/text_data.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"

namespace prunelab::worker {
namespace {

const char* kFortunes = "/usr/share/games/fortunes";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(TextCorpusTest, ADirectoryOfFilesIsSplitPerFileAndBadTextIsNamed) {
  testing::TempDir dir;
  const std::string d = dir.path();
  std::ofstream(d + "/a") << "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";
  std::ofstream(d + "/b") << "alpha\nbeta\n";
  std::ofstream(d + "/a.dat") << "index";
  std::filesystem::create_symlink(d + "/a", d + "/a.u8");
  auto c = ReadTextCorpus(d, 0.2);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->files, (std::vector<std::string>{d + "/a", d + "/b"})) << "index files and symlinks skipped";
  EXPECT_EQ(c->train, "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nalpha\n");
  EXPECT_EQ(c->val, "nine\nten\nbeta\n") << "the last 20 % of each file's lines, at least one";

  std::ofstream(d + "/c", std::ios::binary) << "fine\ncaf\xe9 latin-1\n";
  auto bad = ReadTextCorpus(d, 0.2);
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  for (const char* frag : {"/c: not UTF-8 text", "line 2", "byte offset 8"})
    EXPECT_NE(bad.status().message().find(frag), std::string::npos) << frag << " in " << bad.status().message();

  testing::TempDir own;
  std::ofstream(own.path() + "/train.txt") << "the user's own split\n";
  auto missing = ReadTextCorpus(own.path(), 0.1);
  EXPECT_NE(missing.status().message().find("train.txt without val.txt"), std::string::npos) << missing.status().ToString();
  std::ofstream(own.path() + "/val.txt") << "held out\n";
  auto split = ReadTextCorpus(own.path(), 0.1);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->val, "held out\n");
  testing::TempDir empty;
  EXPECT_NE(ReadTextCorpus(empty.path(), 0.1).status().message().find("the train split has no text"), std::string::npos);
  EXPECT_EQ(ReadTextCorpus(empty.path() + "/nope", 0.1).status().code(), Status::Code::kNotFound);
}

TEST(TokenizerTest, TrainedOnFortunesCachedByContentAndRefusedWhenItCannotLoad) {
  auto garbage = Tokenizer::FromModel("not a model", "my.model");
  EXPECT_EQ(garbage.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find("my.model: not a SentencePiece model that loads"), std::string::npos)
      << garbage.status().ToString();
  auto tiny = Tokenizer::Train("a b\n", 5000, "");
  EXPECT_EQ(tiny.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(tiny.status().message().find("vocabulary of 5000 pieces"), std::string::npos) << tiny.status().ToString();

  if (!std::filesystem::exists(std::string(kFortunes) + "/fortunes"))
    GTEST_SKIP() << "Debian's fortunes corpus is not installed (cluster/install-deps.sh installs it)";
  auto corpus = ReadTextCorpus(kFortunes, 0.1);
  ASSERT_TRUE(corpus.ok()) << corpus.status().ToString();
  EXPECT_GT(corpus->files.size(), 20u);
  EXPECT_GT(corpus->train.size(), 1000000u) << "about 2.4 MB of English text";
  testing::TempDir cache;
  auto tok = Tokenizer::Train(corpus->train, 512, cache.path());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(tok->vocabulary(), 512);
  EXPECT_FALSE(tok->from_cache());
  auto again = Tokenizer::Train(corpus->train, 512, cache.path());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->from_cache()) << "the same text and size load the cached model";
  EXPECT_EQ(again->hash(), tok->hash());
  const std::string line = "A fool and his money are soon parted.";
  auto ids = tok->Encode(line + "\n");
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 3u);
  for (int32_t id : ids.value()) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 512);
  }
  EXPECT_EQ(tok->Decode(std::vector<int>(ids->begin(), ids->end() - 1)), line) << "the last id ends the line";
  EXPECT_LT(ids->size(), line.size()) << "pieces longer than a character";
}

TEST(TokenizeProgramTest, WritesTokenStreamsTheTokenizerAndWhatItRead) {
  if (!std::filesystem::exists(std::string(kFortunes) + "/fortunes"))
    GTEST_SKIP() << "Debian's fortunes corpus is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir out;
  const std::string bin = std::string(PRUNELAB_BIN_DIR) + "/prunelab-tokenize";
  const std::string cmd = bin + " --corpus " + kFortunes + " --vocab 512 --out " + out.path() + "/tok --cache-dir " +
                          out.path() + "/cache > " + out.path() + "/out.json 2> " + out.path() + "/err.txt";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadAll(out.path() + "/err.txt");
  const std::string json = ReadAll(out.path() + "/out.json");
  EXPECT_NE(json.find("\"vocabulary\":512"), std::string::npos) << json;
  for (const char* f : {"/tok/train.bin", "/tok/val.bin", "/tok/tokenizer.model", "/tok/corpus.json"})
    EXPECT_TRUE(std::filesystem::exists(out.path() + f)) << f;
  const auto train_bytes = std::filesystem::file_size(out.path() + "/tok/train.bin");
  EXPECT_GT(train_bytes, 400000u) << "hundreds of thousands of uint16 ids";
  EXPECT_EQ(train_bytes % 2, 0u);
  auto model = Tokenizer::FromModel(ReadAll(out.path() + "/tok/tokenizer.model"), "tokenizer.model");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_NE(json.find(model->hash()), std::string::npos) << "corpus.json names the shipped tokenizer's hash";
  // A bad corpus fails with the reason and writes nothing.
  const std::string bad = bin + " --corpus " + out.path() + "/nope --vocab 512 --out " + out.path() + "/bad 2> " +
                          out.path() + "/bad.txt";
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_NE(ReadAll(out.path() + "/bad.txt").find("not a directory"), std::string::npos) << ReadAll(out.path() + "/bad.txt");
  EXPECT_FALSE(std::filesystem::exists(out.path() + "/bad"));
}

}  // namespace
}  // namespace prunelab::worker
