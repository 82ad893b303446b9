// Raw UTF-8 text for language modeling, tokenized with SentencePiece (Debian's
// libsentencepiece). A corpus is a directory:
//   DIR/train.txt and DIR/val.txt (or DIR/test.txt): the user's own split; or
//   any other directory of text files (e.g. /usr/share/games/fortunes): every regular file
//   (symlinks and binary index files such as fortune's *.dat skipped), sorted by name; of
//   each file the last `val_fraction` of its lines (at least one) is held out as val, the
//   rest is train, so every file (category) is in both.
// The tokenizer is the user's (a SentencePiece .model), or one prunelab trains on the train
// split (unigram, the spec's vocabulary size), cached by content hash. Engine-internal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace prunelab::worker {

struct TextCorpus {
  std::string train;               // text, files joined with newlines
  std::string val;
  std::vector<std::string> files;  // what was read, in order
};

// Reads a corpus directory (above). Text that is not UTF-8 is refused naming the file, the
// line and the byte offset; a split with no text is refused naming the directory.
StatusOr<TextCorpus> ReadTextCorpus(const std::string& dir, double val_fraction);

class Tokenizer {
 public:
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // A serialized SentencePiece model (the bytes of a .model file); `what` names it in errors.
  static StatusOr<Tokenizer> FromModel(const std::string& serialized, const std::string& what);
  // Trains a unigram model of `vocabulary` pieces on `text` (one sentence per line), or loads
  // the one trained before on the same text and size from cache_dir
  // (tokenizer-<hash>.model; empty cache_dir: no cache).
  static StatusOr<Tokenizer> Train(const std::string& text, int vocabulary, const std::string& cache_dir);

  int64_t vocabulary() const;
  const std::string& model() const { return model_; }  // what to ship beside an exported variant
  const std::string& hash() const { return hash_; }    // content hash of model()
  bool from_cache() const { return from_cache_; }
  // Ids of `text`, line by line, each line followed by the end-of-sentence id.
  StatusOr<std::vector<int32_t>> Encode(const std::string& text) const;
  std::string Decode(const std::vector<int>& ids) const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string model_;
  std::string hash_;
  bool from_cache_ = false;
};

// True when `text` is valid UTF-8; otherwise the 1-based line and the byte offset of the
// first bad byte.
bool IsUtf8Text(const std::string& text, int64_t* line, int64_t* offset);

}  // namespace prunelab::worker
