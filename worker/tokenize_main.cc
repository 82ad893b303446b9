// prunelab-tokenize: raw UTF-8 text -> token streams the engine reads (data/token_data.h).
// Reads a corpus directory (DIR/train.txt + DIR/val.txt, or a directory of text files split
// per file), trains a SentencePiece unigram tokenizer of --vocab pieces on the train split
// (cached by content hash in --cache-dir) or loads the user's --tokenizer, and writes
//   OUT/train.bin, OUT/val.bin   uint16 ids (nanoGPT's format; vocabularies up to 65,536)
//   OUT/tokenizer.model          the tokenizer, to ship beside every exported variant
//   OUT/corpus.json              vocabulary, tokenizer hash, files read, tokens per split
// and prints corpus.json's content on one line. A separate program because SentencePiece and
// LibTorch cannot share a process (worker/engine/data/text_data.h).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "common/flags/flags.h"
#include "worker/engine/data/text_data.h"

namespace {

int Fail(const std::string& why) {
  std::fprintf(stderr, "prunelab-tokenize: %s\n", why.c_str());
  return 1;
}

bool WriteIds(const std::string& path, const std::vector<int32_t>& ids) {
  std::ofstream out(path + ".tmp", std::ios::binary | std::ios::trunc);
  for (int32_t id : ids) {
    const uint16_t v = static_cast<uint16_t>(id);
    out.write(reinterpret_cast<const char*>(&v), 2);
  }
  out.close();
  if (!out) return false;
  std::error_code ec;
  std::filesystem::rename(path + ".tmp", path, ec);
  return !ec;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  std::string corpus, out, tokenizer_path, cache_dir;
  int vocab = 0;
  double val_fraction = 0.1;
  CLI::App app("prunelab-tokenize: UTF-8 text -> SentencePiece token streams (train.bin, val.bin, tokenizer.model)",
               "prunelab-tokenize");
  app.add_option("--corpus", corpus, "DIR/train.txt + DIR/val.txt, or a directory of text files")->required();
  app.add_option("--out", out, "where train.bin, val.bin, tokenizer.model and corpus.json go")->required();
  app.add_option("--vocab", vocab, "pieces of the tokenizer trained on the train split (8 to 65536)")
      ->check(CLI::Range(8, 65536));
  app.add_option("--tokenizer", tokenizer_path, "the user's SentencePiece .model instead of training one");
  app.add_option("--val-fraction", val_fraction, "a directory of files: the share of each file's lines held out")
      ->check(CLI::Range(0.01, 0.5));
  app.add_option("--cache-dir", cache_dir, "where trained tokenizers are kept by content hash");
  if (auto rc = prunelab::flags::Parse(app, argc, argv)) return *rc;
  if (vocab == 0 && tokenizer_path.empty()) return Fail("give --vocab N (to train a tokenizer) or --tokenizer FILE.model");

  auto text = prunelab::worker::ReadTextCorpus(corpus, val_fraction);
  if (!text.ok()) return Fail(text.status().ToString());
  std::fprintf(stderr, "prunelab-tokenize: %zu file(s), %zu bytes of train text, %zu of val\n", text->files.size(),
               text->train.size(), text->val.size());
  prunelab::StatusOr<prunelab::worker::Tokenizer> tok = prunelab::Status::Internal("unset");
  if (!tokenizer_path.empty()) {
    std::ifstream in(tokenizer_path, std::ios::binary);
    if (!in) return Fail(tokenizer_path + ": cannot open the tokenizer");
    std::ostringstream ss;
    ss << in.rdbuf();
    tok = prunelab::worker::Tokenizer::FromModel(ss.str(), tokenizer_path);
  } else {
    tok = prunelab::worker::Tokenizer::Train(text->train, vocab, cache_dir);
  }
  if (!tok.ok()) return Fail(tok.status().ToString());
  if (tok->vocabulary() > 65536)
    return Fail("the tokenizer has " + std::to_string(tok->vocabulary()) +
                " pieces; uint16 token files hold at most 65536 (use a smaller vocabulary)");
  auto train = tok->Encode(text->train);
  auto val = tok->Encode(text->val);
  if (!train.ok() || !val.ok()) return Fail((train.ok() ? val.status() : train.status()).ToString());
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) return Fail("cannot create " + out + ": " + ec.message());
  if (!WriteIds(out + "/train.bin", train.value()) || !WriteIds(out + "/val.bin", val.value()))
    return Fail("cannot write the token files under " + out);
  std::ofstream(out + "/tokenizer.model", std::ios::binary | std::ios::trunc) << tok->model();
  std::string files = "[";
  for (size_t i = 0; i < text->files.size(); ++i) files += (i ? "," : "") + JsonString(text->files[i]);
  files += "]";
  const std::string json = "{\"vocabulary\":" + std::to_string(tok->vocabulary()) + ",\"tokenizer_hash\":" +
                           JsonString(tok->hash()) + ",\"tokenizer_cached\":" + (tok->from_cache() ? "true" : "false") +
                           ",\"train_tokens\":" + std::to_string(train->size()) + ",\"val_tokens\":" +
                           std::to_string(val->size()) + ",\"files\":" + files + "}";
  std::ofstream(out + "/corpus.json", std::ios::trunc) << json << "\n";
  std::printf("%s\n", json.c_str());
  return 0;
}
