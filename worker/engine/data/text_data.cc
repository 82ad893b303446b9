#include "worker/engine/data/text_data.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/hash.h"

namespace prunelab::worker {
namespace fs = std::filesystem;

namespace {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string_view> Lines(const std::string& text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.emplace_back(text.data() + start, end - start);
    start = end + 1;
  }
  return out;
}

// Sentences for the trainer: the non-empty lines of the text, cut to the trainer's limit.
class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::string& text) {
    for (auto l : Lines(text))
      if (!l.empty()) lines_.emplace_back(l.substr(0, 4000));
    if (!lines_.empty()) value_ = lines_[0];
  }
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override {
    if (++i_ < lines_.size()) value_ = lines_[i_];
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::vector<std::string> lines_;
  std::string value_;
  size_t i_ = 0;
};

}  // namespace

bool IsUtf8Text(const std::string& s, int64_t* line, int64_t* offset) {
  int64_t ln = 1;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size() && !(c == 0);
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && n == 2) ok = c >= 0xC2;  // no overlong forms
    if (!ok) {
      *line = ln;
      *offset = static_cast<int64_t>(i);
      return false;
    }
    if (c == '\n') ++ln;
    i += n;
  }
  return true;
}

StatusOr<TextCorpus> ReadTextCorpus(const std::string& dir, double val_fraction) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return Status::NotFound(dir + ": not a directory (a text corpus is DIR/train.txt + DIR/val.txt, or a directory of "
                                  "text files)");
  auto check = [](const std::string& path, const std::string& text) -> Status {
    int64_t line = 0, offset = 0;
    if (!IsUtf8Text(text, &line, &offset))
      return Status::InvalidArgument(path + ": not UTF-8 text (line " + std::to_string(line) + ", byte offset " +
                                     std::to_string(offset) + "); convert it, e.g. iconv -f latin1 -t utf-8");
    return Status::Ok();
  };
  TextCorpus c;
  const fs::path train_txt = fs::path(dir) / "train.txt";
  if (fs::exists(train_txt)) {
    fs::path val_txt = fs::path(dir) / "val.txt";
    if (!fs::exists(val_txt)) val_txt = fs::path(dir) / "test.txt";
    if (!fs::exists(val_txt)) return Status::NotFound(dir + ": train.txt without val.txt (or test.txt)");
    for (const auto& [path, out] : {std::pair{train_txt, &c.train}, std::pair{val_txt, &c.val}}) {
      auto text = ReadFile(path.string());
      if (!text.ok()) return text.status();
      PRUNELAB_RETURN_IF_ERROR(check(path.string(), text.value()));
      *out = std::move(text).value();
      c.files.push_back(path.string());
    }
  } else {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && !e.is_symlink() && e.path().extension() != ".dat") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto text = ReadFile(f.string());
      if (!text.ok()) return text.status();
      if (text->find('\0') != std::string::npos) continue;  // binary: not text
      PRUNELAB_RETURN_IF_ERROR(check(f.string(), text.value()));
      auto lines = Lines(text.value());
      if (lines.empty()) continue;
      const size_t held = std::max<size_t>(1, static_cast<size_t>(lines.size() * val_fraction));
      const size_t cut = lines.size() > held ? lines.size() - held : 0;
      for (size_t i = 0; i < lines.size(); ++i) {
        std::string& out = i < cut ? c.train : c.val;
        out.append(lines[i]);
        out += '\n';
      }
      c.files.push_back(f.string());
    }
  }
  if (c.train.empty()) return Status::InvalidArgument(dir + ": the train split has no text");
  if (c.val.empty()) return Status::InvalidArgument(dir + ": the val split has no text");
  return c;
}

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

StatusOr<Tokenizer> Tokenizer::FromModel(const std::string& serialized, const std::string& what) {
  Tokenizer t;
  auto st = t.impl_->sp.LoadFromSerializedProto(serialized);
  if (!st.ok())
    return Status::InvalidArgument(what + ": not a SentencePiece model that loads (" + std::string(st.message()) + ")");
  t.model_ = serialized;
  t.hash_ = ContentHash(serialized);
  return t;
}

StatusOr<Tokenizer> Tokenizer::Train(const std::string& text, int vocabulary, const std::string& cache_dir) {
  const std::string key = ContentHash("sentencepiece-unigram|" + std::to_string(vocabulary) + "|" + text).substr(0, 32);
  const fs::path cached = cache_dir.empty() ? fs::path() : fs::path(cache_dir) / ("tokenizer-" + key + ".model");
  if (!cache_dir.empty() && fs::exists(cached)) {
    auto bytes = ReadFile(cached.string());
    if (bytes.ok()) {
      auto t = FromModel(bytes.value(), cached.string());
      if (t.ok()) {
        t->from_cache_ = true;
        return t;
      }
    }
  }
  LineIterator lines(text);
  if (lines.done()) return Status::InvalidArgument("tokenizer: no text to train on");
  std::string model;
  auto st = sentencepiece::SentencePieceTrainer::Train(
      "--model_type=unigram --vocab_size=" + std::to_string(vocabulary) +
          " --character_coverage=1.0 --num_threads=2 --minloglevel=2 --hard_vocab_limit=true --max_sentence_length=4096"
          " --shuffle_input_sentence=false --input_sentence_size=0",
      &lines, &model);
  if (!st.ok())
    return Status::InvalidArgument("tokenizer: SentencePiece could not train a vocabulary of " + std::to_string(vocabulary) +
                                   " pieces on this text (" + std::string(st.message()) +
                                   "); choose a smaller dataset.vocab_size");
  auto t = FromModel(model, "the trained tokenizer");
  if (!t.ok()) return t.status();
  if (!cache_dir.empty()) {
    std::error_code ec;
    fs::create_directories(cache_dir, ec);
    const fs::path tmp = cached.string() + ".tmp";
    std::ofstream(tmp, std::ios::binary) << model;
    fs::rename(tmp, cached, ec);  // a cache that cannot be written costs a retrain next time, nothing else
  }
  return t;
}

int64_t Tokenizer::vocabulary() const { return impl_->sp.GetPieceSize(); }

StatusOr<std::vector<int32_t>> Tokenizer::Encode(const std::string& text) const {
  std::vector<int32_t> ids;
  const int eos = impl_->sp.eos_id();
  std::vector<int> line_ids;
  for (auto l : Lines(text)) {
    line_ids.clear();
    auto st = impl_->sp.Encode(l, &line_ids);
    if (!st.ok()) return Status::InvalidArgument(std::string("tokenizer: ") + st.message());
    ids.insert(ids.end(), line_ids.begin(), line_ids.end());
    if (eos >= 0) ids.push_back(eos);
  }
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  (void)impl_->sp.Decode(ids, &out);
  return out;
}

}  // namespace prunelab::worker
