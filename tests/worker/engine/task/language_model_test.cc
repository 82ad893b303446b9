// Causal language modeling through the task seam: token streams in nanoGPT's and NumPy's
// formats (and bad ones refused naming file, position and id), and decoders written the way
// users write them (bench/lm_models.py: GPT-2 style with tied embeddings and a packed q/k/v
// projection; Llama style with RMSNorm, rotary embeddings, grouped-query attention and
// SwiGLU) scored by perplexity and trained by the engine's own Train. Skipped, with the
// reason, when python3-torch cannot script the models.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/test_util.h"
#include "common/base/types.h"
#include "worker/engine/torch_executor.h"
#include "worker/engine/data/token_data.h"
#include "worker/engine/model/model.h"
#include "worker/engine/task/learning_task.h"
#include "worker/engine/train/training.h"

namespace prunelab::worker {
namespace {

constexpr int64_t kVocabulary = 64, kSequence = 32;

// A small "language": every token is followed by one of two successors (7/8 of the time) or
// by any token. Its entropy is about 1.2 nats per token, so a model that learns it reaches a
// perplexity near 3.5, far below the 64 of guessing.
std::vector<uint16_t> Corpus(int64_t n, uint64_t seed) {
  std::vector<uint16_t> ids(n);
  uint64_t s = seed;
  auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  };
  uint16_t t = 0;
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = t;
    const uint32_t r = next() % 16;
    if (r < 14) t = static_cast<uint16_t>((t * 5 + 1 + (r % 2) * 17) % kVocabulary);
    else t = static_cast<uint16_t>(next() % kVocabulary);
  }
  return ids;
}

void WriteBin(const std::string& path, const std::vector<uint16_t>& ids) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), ids.size() * 2);
}

// A 1-D .npy of `dtype` ('<i4', '<f4', ...) holding `values` converted.
template <typename T>
void WriteNpy(const std::string& path, const std::string& dtype, const std::vector<T>& values) {
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (" + std::to_string(values.size()) + ",), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(TokenDataTest, NanoGptBinAndNpyStreamsAreCutIntoShiftedWindows) {
  testing::TempDir dir;
  std::vector<uint16_t> ids(100);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint16_t>(i % kVocabulary);
  WriteBin(dir.path() + "/train.bin", ids);
  WriteNpy<int32_t>(dir.path() + "/val.npy", "<i4", std::vector<int32_t>(ids.begin(), ids.begin() + 40));
  auto train = LoadTokenSplit(dir.path(), "train", 8, kVocabulary, 0);
  ASSERT_TRUE(train.ok()) << train.status().ToString();
  EXPECT_EQ(train->inputs.sizes(), (std::vector<int64_t>{12, 8})) << "(100 - 9) / 8 + 1 windows";
  EXPECT_EQ(train->inputs.scalar_type(), at::kLong);
  EXPECT_TRUE(train->labels.equal((train->inputs + 1) % kVocabulary)) << "the targets are the next tokens";
  EXPECT_EQ(train->inputs[1][0].item<int64_t>(), 8) << "windows every sequence_length tokens";
  auto val = LoadTokenSplit(dir.path(), "test", 8, kVocabulary, 2);
  ASSERT_TRUE(val.ok()) << val.status().ToString();
  EXPECT_EQ(val->size(), 2) << "the test split is val when there is no test file; max_windows caps it";
  auto task = NewCausalLanguageModeling(8, kVocabulary);
  EXPECT_EQ(task->Name(), "causal_language_modeling");
  EXPECT_EQ(task->Metric().name, "perplexity");
  EXPECT_FALSE(task->Metric().maximize) << "lower perplexity is better";
  auto b = task->Gather(train.value(), torch::tensor({3, 0}));
  EXPECT_TRUE(b.targets.equal(train->labels.index_select(0, torch::tensor({3, 0}))));
  auto ex = task->ExampleInputs(5, at::make_generator<at::CPUGeneratorImpl>(1))[0].toTensor();
  EXPECT_EQ(ex.sizes(), (std::vector<int64_t>{5, 8}));
  EXPECT_LT(ex.max().item<int64_t>(), kVocabulary);
}

TEST(TokenDataTest, BadStreamsAreRefusedNamingTheFileThePositionAndTheProblem) {
  testing::TempDir dir;
  const std::string d = dir.path();
  std::vector<uint16_t> ids(50, 3);
  ids[17] = 70;
  WriteBin(d + "/train.bin", ids);
  auto st = ReadTokenFile(d + "/train.bin", kVocabulary).status();
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  for (const char* frag : {"train.bin", "token 17", "byte offset 34", "id 70", "[0, 64)"})
    EXPECT_NE(st.message().find(frag), std::string::npos) << frag << " in " << st.message();
  std::ofstream(d + "/odd.bin", std::ios::binary) << "abc";
  st = ReadTokenFile(d + "/odd.bin", kVocabulary).status();
  EXPECT_NE(st.message().find("3 bytes is not a whole number of uint16"), std::string::npos) << st.ToString();
  std::ofstream(d + "/empty.bin", std::ios::binary);
  st = ReadTokenFile(d + "/empty.bin", kVocabulary).status();
  EXPECT_NE(st.message().find("the split is empty"), std::string::npos) << st.ToString();
  WriteNpy<float>(d + "/floats.npy", "<f4", {1.f, 2.f});
  st = ReadTokenFile(d + "/floats.npy", kVocabulary).status();
  EXPECT_NE(st.message().find("uint16, int32 or int64"), std::string::npos) << st.ToString();
  WriteNpy<int64_t>(d + "/neg.npy", "<i8", {1, -4, 2});
  st = ReadTokenFile(d + "/neg.npy", kVocabulary).status();
  EXPECT_NE(st.message().find("token 1 (byte offset"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("id -4"), std::string::npos) << st.ToString();
  auto shortstream = TokenWindows(torch::arange(5, torch::kLong), 8, 8, 0, "val.bin");
  EXPECT_NE(shortstream.status().message().find("val.bin: 5 tokens, fewer than one window of sequence_length + 1 = 9"),
            std::string::npos)
      << shortstream.status().ToString();
  auto missing = LoadTokenSplit(d, "val", 8, kVocabulary, 0).status();
  EXPECT_EQ(missing.code(), Status::Code::kNotFound);
  EXPECT_NE(missing.message().find("no val.bin or val.npy"), std::string::npos) << missing.ToString();
}

bool Script(const std::string& dir) {
  std::string cmd = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/bench/lm_models.py --out " + dir +
                    " --models gpt,llama --vocab " + std::to_string(kVocabulary) + " --dim 32 --layers 2 --heads 4 " +
                    "--kv-heads 2 --seq " + std::to_string(kSequence) + " > " + dir + "/log.txt 2>&1";
  return std::system(cmd.c_str()) == 0;
}

bool HaveTorch() { return std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0; }

TEST(LanguageModelTest, UsersDecodersAreScoredByPerplexityAndLearnThroughTheSeam) {
  if (!HaveTorch()) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  ASSERT_TRUE(Script(dir.path())) << ReadAll(dir.path() + "/log.txt");
  WriteBin(dir.path() + "/train.bin", Corpus(24000, 1));
  WriteBin(dir.path() + "/val.bin", Corpus(4000, 2));
  auto train = LoadTokenSplit(dir.path(), "train", kSequence, kVocabulary, 0);
  auto val = LoadTokenSplit(dir.path(), "val", kSequence, kVocabulary, 0);
  ASSERT_TRUE(train.ok() && val.ok()) << train.status().ToString() << val.status().ToString();
  auto task = NewCausalLanguageModeling(kSequence, kVocabulary);
  for (const std::string name : {"gpt", "llama"}) {
    SCOPED_TRACE(name);
    auto loaded = LoadFromBytes(ReadAll(dir.path() + "/" + name + ".pt"));
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    torch::jit::Module m = std::move(loaded).value();
    ASSERT_TRUE(task->CheckOutputs(m, val.value()).ok()) << task->CheckOutputs(m, val.value()).ToString();

    // Perplexity is exp(mean token NLL), computed here by hand on the same windows.
    Evaluation before = task->Evaluate(m, val.value());
    {
      torch::NoGradGuard g;
      auto logits = m.forward({val->inputs}).toTensor();
      auto nll = torch::nn::functional::cross_entropy(logits.reshape({-1, kVocabulary}), val->labels.reshape({-1}));
      EXPECT_NEAR(before.loss, nll.item<double>(), 1e-4);
    }
    EXPECT_NEAR(before.quality, std::exp(before.loss), 1e-9);
    EXPECT_EQ(before.tokens, val->labels.numel());
    EXPECT_GT(before.quality, 30.0) << "an untrained model is about as good as guessing among 64 ids";

    TrainOptions o;
    o.epochs = 3;
    o.batch_size = 16;
    // SGD (the engine's optimizer): GPT-2's small embedding init (std 0.02, tied to the head)
    // needs a larger step than the Llama-style model to move in a few hundred steps.
    o.learning_rate = name == "gpt" ? 0.5 : 0.1;
    o.seed = 5;
    ASSERT_TRUE(Train(m, *task, train.value(), o).ok());
    Evaluation after = task->Evaluate(m, val.value());
    EXPECT_LT(after.quality, 0.25 * before.quality) << before.quality << " -> " << after.quality;
    EXPECT_GT(after.accuracy, 0.3) << "next-token accuracy: the likelier successor is right about 44 % of the time";
    if (name == "gpt") {
      // Tied embeddings stay tied: one tensor, trained once.
      auto wte = m.attr("wte").toModule().attr("weight").toTensor();
      auto head = m.attr("lm_head").toModule().attr("weight").toTensor();
      EXPECT_TRUE(wte.is_same(head)) << "training must not untie the input and output embeddings";
    }
  }
  // A model whose vocabulary is smaller than the data's is refused naming both shapes.
  auto bigger = NewCausalLanguageModeling(kSequence, 2 * kVocabulary);
  auto gpt = LoadFromBytes(ReadAll(dir.path() + "/gpt.pt"));
  ASSERT_TRUE(gpt.ok());
  Status st = bigger->CheckOutputs(gpt.value(), val.value());
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find(">= 128] for token ids [2, 32]"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("[2, 32, 64]"), std::string::npos) << st.ToString();
}

// Real text on a fresh machine: Debian's fortunes, tokenized by prunelab-tokenize (a
// SentencePiece vocabulary of 512 trained on the train split), then a GPT-style decoder
// trained on it by the engine: held-out perplexity falls far below the untrained model's.
TEST(LanguageModelTest, AGptLearnsEnglishFromTheFortunesCorpus) {
  if (!HaveTorch()) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  if (!std::filesystem::exists("/usr/share/games/fortunes/fortunes"))
    GTEST_SKIP() << "Debian's fortunes corpus is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  const std::string tok = std::string(PRUNELAB_BIN_DIR) + "/prunelab-tokenize --corpus /usr/share/games/fortunes "
                          "--vocab 512 --out " + dir.path() + "/tok > " + dir.path() + "/tok.json 2>&1";
  ASSERT_EQ(std::system(tok.c_str()), 0) << ReadAll(dir.path() + "/tok.json");
  const std::string script = "/usr/bin/python3 " + std::string(PRUNELAB_SOURCE_DIR) + "/bench/lm_models.py --out " +
                             dir.path() + " --models gpt --vocab 512 --dim 64 --layers 2 --heads 4 --seq 64 > " +
                             dir.path() + "/log.txt 2>&1";
  ASSERT_EQ(std::system(script.c_str()), 0) << ReadAll(dir.path() + "/log.txt");
  auto train = LoadTokenSplit(dir.path() + "/tok", "train", 64, 512, 600);
  auto val = LoadTokenSplit(dir.path() + "/tok", "val", 64, 512, 100);
  ASSERT_TRUE(train.ok() && val.ok()) << train.status().ToString() << val.status().ToString();
  auto task = NewCausalLanguageModeling(64, 512);
  auto m = LoadFromBytes(ReadAll(dir.path() + "/gpt.pt"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const double before = task->Evaluate(m.value(), val.value()).quality;
  TrainOptions o;
  o.epochs = 4;
  o.batch_size = 16;
  o.learning_rate = 0.2;
  Status trained = Train(m.value(), *task, train.value(), o);
  ASSERT_TRUE(trained.ok()) << trained.ToString();
  Evaluation after = task->Evaluate(m.value(), val.value());
  std::printf("fortunes, held-out: perplexity %.1f untrained -> %.1f after 4 epochs of %lld windows; next-token "
              "accuracy %.1f %% over %lld tokens\n", before, after.quality, static_cast<long long>(train->size()),
              100 * after.accuracy, static_cast<long long>(after.tokens));
  EXPECT_GT(before, 300.0) << "untrained: about as good as guessing among 512 pieces";
  EXPECT_LT(after.quality, 0.6 * before) << before << " -> " << after.quality << " (" << after.tokens << " held-out tokens)";
}

// Users' decoders through the real executor, as a sweep runs them (model: {torchscript: ...},
// task causal_lm, token files): the GPT-2-style one (packed q/k/v, tied embeddings) and the
// Llama-style one (RMSNorm, rotary, grouped-query attention, SwiGLU) are trained, then every
// axis a language-model sweep offers is tried on each; each row is scored by perplexity, or the
// trial fails naming what stopped it.
TEST(LanguageModelTest, UsersDecodersRunEveryAxisThroughTheExecutor) {
  if (!HaveTorch()) GTEST_SKIP() << "python3-torch is not installed (cluster/install-deps.sh installs it)";
  testing::TempDir dir;
  ASSERT_TRUE(Script(dir.path())) << ReadAll(dir.path() + "/log.txt");
  std::mt19937 rng(3);
  for (const char* split : {"train", "val"}) {
    std::vector<uint16_t> ids(std::string(split) == "train" ? 8000 : 1500);
    uint16_t x = 0;
    for (auto& id : ids) id = x = rng() % 8 ? static_cast<uint16_t>((5 * x + 3) % kVocabulary) : rng() % kVocabulary;
    WriteBin(dir.path() + "/" + split + ".bin", ids);
  }
  auto ex = NewTorchExecutor();
  for (const std::string model : {"gpt", "llama"}) {
    SCOPED_TRACE(model);
    Task t;
    t.sweep_id = "sw-user-lm";
    t.task_id = "train";
    t.kind = TaskKind::kTrainBaseline;
    t.model = "torchscript";
    t.model_artifact = "user-" + model;
    t.dataset.task = "causal_lm";
    t.dataset.name = "tokens";
    t.dataset.path = dir.path();
    t.dataset.vocab_size = kVocabulary;
    t.dataset.sequence_length = kSequence;
    t.dataset.train_subset = 200;
    t.dataset.test_subset = 40;
    t.training.epochs = 1;
    t.training.batch_size = 16;
    t.training.optimizer = "adamw";
    t.training.learning_rate = 3e-3;
    t.trial.schedule = "one_shot";
    t.trial.finetune_epochs = 0;
    t.trial.calibration_batches = 2;
    const std::string user = ReadAll(dir.path() + "/" + model + ".pt");
    ExecutionContext ctx;
    ctx.fetch_artifact = [&](const std::string&) -> StatusOr<std::string> { return user; };
    auto base = ex->Execute(t, ctx);
    ASSERT_TRUE(base.result.ok) << base.result.error;
    EXPECT_EQ(base.result.metric, "perplexity");
    ExecutionContext pctx;
    pctx.fetch_artifact = [&](const std::string& h) -> StatusOr<std::string> {
      return h == t.model_artifact ? user : base.artifact;
    };
    t.kind = TaskKind::kPruneTrial;
    t.baseline_artifact = "user-" + model + "-trained";
    for (const auto& [criterion, granularity] : std::vector<std::pair<std::string, std::string>>{
             {"l2", "structured"}, {"activation", "structured"}, {"angular", "depth"}, {"l1", "unstructured"},
             {"wanda", "unstructured"},
             {"wanda", "2:4"}, {"sparsegpt", "unstructured"}, {"sparsegpt", "2:4"}}) {
      t.task_id = model + "-" + criterion + "-" + granularity;
      t.trial.criterion = criterion;
      t.trial.granularity = granularity;
      t.trial.sparsity = 0.5;
      auto r = ex->Execute(t, pctx);
      std::printf("%-6s %-9s %-12s %s perplexity %.2f (dense %.2f) params %llu -> %llu %s\n", model.c_str(),
                  criterion.c_str(), granularity.c_str(), r.result.ok ? "ok  " : "FAIL", r.result.perplexity,
                  base.result.perplexity, static_cast<unsigned long long>(r.result.params_before),
                  static_cast<unsigned long long>(r.result.params), r.result.error.c_str());
      ASSERT_TRUE(r.result.ok) << t.task_id << ": " << r.result.error;
      EXPECT_EQ(r.result.metric, "perplexity");
      EXPECT_GT(r.result.perplexity, 1.0);
      EXPECT_LT(r.result.perplexity, 2.0 * kVocabulary) << "no worse than twice guessing";
      EXPECT_DOUBLE_EQ(r.result.baseline_perplexity, base.result.perplexity);
      if (granularity == "structured" || granularity == "depth")
        EXPECT_LT(r.result.params, r.result.params_before) << "removed, not masked";
      else
        EXPECT_GT(r.result.achieved_sparsity, 0.2);
      auto config = nlohmann::json::parse(r.result.trial_json);
      if (criterion == "activation") {  // no probe(): hooks in the graph reached every head, neuron and channel
        ASSERT_TRUE(config.contains("activation")) << config.dump();
        EXPECT_GT(config["activation"].value("calibration_samples", 0), 0) << config.dump();
        EXPECT_EQ(config["activation"].at("scored_by_magnitude"), nlohmann::json::array()) << config.dump();
      }
      if (criterion == "wanda" || criterion == "sparsegpt") {
        EXPECT_TRUE(config[criterion]["scored_by_magnitude"].empty()) << config[criterion].dump();
        // Every linear layer is reached by the graph hooks; the embedding tables (lookups) stay dense.
        EXPECT_EQ(config[criterion]["not_reached_left_dense"],
                  model == "gpt" ? nlohmann::json({"wte", "wpe"}) : nlohmann::json({"embed_tokens"}))
            << config[criterion].dump();
        // SwiGLU's hidden width here is 85: down_proj's rows cannot hold 2:4 and stay dense, said so.
        if (model == "llama" && granularity == "2:4")
          EXPECT_EQ(config[criterion]["left_dense"], nlohmann::json({"layers.0.down_proj", "layers.1.down_proj"}))
              << config.dump();
      }
    }
  }
}

}  // namespace
}  // namespace prunelab::worker
