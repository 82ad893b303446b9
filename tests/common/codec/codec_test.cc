#include <gtest/gtest.h>

#include <random>
#include <set>
#include <utility>

#include "common/codec/codec.h"
#include "tests/status_matchers.h"
#include "common/codec/records.h"
#include "common/base/result_metrics.h"

namespace prunelab {
namespace {

using prunelab::testing::IsError;

TrialResult SampleResult() {
  TrialResult r;
  r.sweep_id = "sw-0001";
  r.task_id = "t003@local";
  r.attempt = 2;
  r.worker_id = "w001-host";
  r.pruned_by = "w002-gpu";
  r.class_names = {"cat", "dog"};
  r.preprocessing = "pixel / 255";
  r.target = "local";
  r.kind = TaskKind::kPruneTrial;
  r.model = "cnn";
  r.criterion = "l1";
  r.granularity = "channel";
  r.schedule = "one_shot";
  r.sparsity = 0.5;
  r.achieved_sparsity = 0.509;
  r.ok = true;
  r.accuracy = 0.8812;
  r.per_class_accuracy = {0.8, 0.97, 0.75, 0.9, 0.8, 0.96, 0.6, 0.95, 0.97, 0.95};
  r.latency_p50_ms = 0.14;
  r.latency_p90_ms = 0.167;
  r.latency_p99_ms = 0.268;
  r.throughput_sps = 10336;
  r.params = 207018;
  r.model_bytes = 834000;
  r.hardware.cpu_model = "Test CPU";
  r.hardware.cores = 2;
  r.hardware.blas = "/usr/lib/openblas-pthread/libblas.so.3";
  r.artifact_hash = "abc";
  return r;
}

TEST(CodecTest, RoundTripsEveryMessageKind) {
  Task t;
  t.dataset.name = "folder";
  t.dataset.mean = {0.485, 0.456, 0.406};
  t.dataset.std = {0.229, 0.224, 0.225};
  t.dataset.class_names = {"cat", "dog"};
  t.sweep_id = "sw-1";
  t.task_id = "t001@x";
  t.kind = TaskKind::kEvaluateBaseline;
  t.trial.sparsity = 0.75;
  t.trial.quantize = "int8";
  t.benchmark.min_queries = 123;
  t.baseline_artifact = "feed";
  t.kind = TaskKind::kBenchmarkVariant;
  t.variant_artifact = "beef";
  t.depends_on = "t001";
  std::vector<Message> msgs = {
      RegisterMsg{"w1", "gpu-a", HardwareFingerprint{"h", "cpu", "avx2", 16, 1 << 30, 4, "1.13.1", "blas", "H100", "cuda:0"},
                  2, {RunningTask{"sw-1", "t001", 3, 1}}},
      HeartbeatMsg{"w1", "sw-1/t001", "training", 0.5, 1},
      RequestWorkMsg{"w1", 1},
      SubmitResultMsg{"w1", SampleResult(), std::string("\0\1binary\xff", 9)},
      FetchArtifactMsg{"feed", 1048576, 65536},
      RegisterReplyMsg{"w1", 750},
      AssignMsg{t},
      NoWorkMsg{1000, "nothing"},
      ResultAckMsg{"t1", 3, true, "recorded"},
      ArtifactReplyMsg{"feed", true, "bytes", 10, 15, "abc"},
      SubmitSweepMsg{"name: x\n", std::string("\0model\xff", 7)},
      SubmitReplyMsg{"sw-0002", 9},
      StatusRequestMsg{"sw-0002"},
      StatusReplyMsg{{SweepStatus{"sw-1", "n", "running", 5, 1, 1, 1, 2, 99, "no live worker"}}},
      ResultsRequestMsg{"sw-1"},
      ResultsReplyMsg{{SampleResult(), SampleResult()}, "name: x\n"},
      WorkersRequestMsg{},
      WorkersReplyMsg{{WorkerStatus{"w1", "local", {}, true, 12, "sw-1/t1", "benchmarking", 0.25}}},
      ErrorMsg{"bad_message", "why"},
      SweepControlMsg{"sw-1", "pause"},
      ReleaseCommandMsg{"evaluate", "edge", "sw-1", "t003", "note", true, "why", "v2", "alice", "/data/new", "npy", true,
                        "{\"psi\": [0.1, 0.2]}", 7, 500},
      ReleaseReplyMsg{"{\"targets\": []}"},
  };
  for (const auto& m : msgs) {
    auto bytes = Encode(m);
    auto back = Decode(bytes);
    ASSERT_TRUE(back.ok()) << MessageName(m) << ": " << back.status().ToString();
    EXPECT_EQ(back->index(), m.index());
    EXPECT_EQ(Encode(back.value()), bytes) << MessageName(m);  // nothing lost either way
  }
  auto back = Decode(Encode(SubmitResultMsg{"w1", SampleResult(), std::string("\0\1binary\xff", 9)}));
  const auto& sr = std::get<SubmitResultMsg>(back.value());
  EXPECT_EQ(sr.artifact, std::string("\0\1binary\xff", 9));
  EXPECT_EQ(sr.result.per_class_accuracy.size(), 10u);
  EXPECT_DOUBLE_EQ(sr.result.latency_p90_ms, 0.167);
  EXPECT_EQ(std::get<AssignMsg>(Decode(Encode(AssignMsg{t})).value()).task.benchmark.min_queries, 123u);
  EXPECT_EQ(sr.result.class_names, (std::vector<std::string>{"cat", "dog"}));
  auto task = std::get<AssignMsg>(Decode(Encode(AssignMsg{t})).value()).task;
  EXPECT_EQ(task.dataset.std, (std::vector<double>{0.229, 0.224, 0.225}));
  EXPECT_EQ(task.dataset.class_names, t.dataset.class_names);
  EXPECT_EQ(task.trial.quantize, "int8");
  // An evaluation task keeps what it measures besides the variant.
  Task ev = t;
  ev.kind = TaskKind::kEvaluateRelease;
  ev.evaluation = EvaluationConfig{"v3", true, true, "{\"brightness_c0\": [0.1]}"};
  auto ev_back = std::get<AssignMsg>(Decode(Encode(AssignMsg{ev})).value()).task;
  EXPECT_EQ(ev_back.kind, TaskKind::kEvaluateRelease);
  EXPECT_EQ(ev_back.evaluation.release, "v3");
  EXPECT_TRUE(ev_back.evaluation.reference && ev_back.evaluation.compare_dense);
  EXPECT_EQ(ev_back.evaluation.bins_json, ev.evaluation.bins_json);
  auto rc = std::get<ReleaseCommandMsg>(Decode(Encode(ReleaseCommandMsg{"rollback", "edge", "", "", "", false, "", "v1"})).value());
  EXPECT_EQ(rc.version, "v1");
  Task older = t;
  older.trial.quantize = "";  // a peer before sweep.quantize sends nothing: none
  EXPECT_EQ(std::get<AssignMsg>(Decode(Encode(AssignMsg{older})).value()).task.trial.quantize, "none");
}

template <size_t... I>
std::vector<Message> OneOfEachKind(std::index_sequence<I...>) {
  return {Message(std::in_place_index<I>)...};
}

// The kind table (common/base/message_kinds.h): one distinct name per alternative, replies sent
// by nobody, and exactly the messages whose reply acknowledges a write wait for durability.
TEST(MessageKindsTest, EveryKindHasOneEntryAndTheDurableOnesAreTheAcknowledgedWrites) {
  auto all = OneOfEachKind(std::make_index_sequence<std::variant_size_v<Message>>());
  std::set<std::string> names, durable;
  for (const auto& m : all) {
    const MessageKind& k = KindOf(m);
    ASSERT_NE(k.name, nullptr);
    EXPECT_TRUE(names.insert(k.name).second) << "two kinds named " << k.name;
    EXPECT_EQ(std::string(MessageName(m)), k.name);
    EXPECT_EQ(SenderOf(m), k.sender);
    if (k.durable) durable.insert(k.name);
    EXPECT_TRUE(!k.durable || k.writes) << k.name;
    const std::string n = k.name;
    if ((n.size() > 5 && n.rfind("Reply") == n.size() - 5) || n == "Assign" || n == "NoWork" || n == "ResultAck" ||
        n == "Error")
      EXPECT_EQ(k.sender, Sender::kNobody) << n << " is a reply";
  }
  EXPECT_EQ(names.size(), std::variant_size_v<Message>);
  EXPECT_EQ(durable, (std::set<std::string>{"SubmitResult", "SubmitSweep", "SweepControl", "ReleaseCommand"}));
  EXPECT_EQ(KindOf(Message(HeartbeatMsg{})).writes, false) << "heartbeats are served while the store is failed";
}

TEST(CodecTest, RejectsMalformedInputWithoutCrashing) {
  EXPECT_TRUE(IsError(Decode(""), Status::Code::kInvalidArgument, "empty message"));
  EXPECT_TRUE(IsError(Decode("garbage"), Status::Code::kInvalidArgument, "truncated message"));                 // not word aligned
  EXPECT_TRUE(IsError(Decode(std::string(64, '\xff')), Status::Code::kInvalidArgument, "message"));   // nonsense segment table
  std::string good = Encode(SubmitResultMsg{"w", SampleResult(), "xyz"});
  for (size_t cut = 8; cut < good.size(); cut += 8) EXPECT_TRUE(IsError(Decode(good.substr(0, cut)), Status::Code::kInvalidArgument, "message")) << cut;
  // Random bit flips: must never crash; may or may not decode.
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::string b = good;
    for (int k = 0; k < 4; ++k) b[rng() % b.size()] ^= static_cast<char>(1u << (rng() % 8));
    (void)Decode(b);
  }
}

TEST(CodecTest, RejectsOtherProtocolVersion) {
  std::string bytes = Encode(RequestWorkMsg{"w"});
  // protocolVersion is the first UInt32 of the root struct's data section, right after
  // the segment table (8 bytes) and the root pointer (8 bytes).
  ASSERT_EQ(static_cast<unsigned char>(bytes[16]), kProtocolVersion);
  bytes[16] = 9;
  auto r = Decode(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("protocol version 9"), std::string::npos) << r.status().message();
}

// A benchmarked variant's row: the prune stage's figures with the target's benchmark figures.
TEST(RecordsTest, AStageAndItsBenchmarkMergeIntoOneRow) {
  TrialResult stage, bench;
  stage.task_id = "t001";
  stage.worker_id = "pruner";
  stage.accuracy = 0.87;
  stage.model_bytes = 1234;
  stage.ok = true;
  stage.latency_p90_ms = 99;  // a stage is not timed: whatever it says is replaced
  bench.task_id = "t001@edge";
  bench.target = "edge";
  bench.worker_id = "timer";
  bench.ok = true;
  double v = 1;
  for (double TrialResult::*f : kSingleStreamLatencyFields) bench.*f = v++;
  bench.throughput_sps = 500;
  bench.speedup_p90 = 1.7;
  bench.multistream_p99_ms = 3.5;
  bench.deployable_form = "frozen";
  bench.bench_valid = true;
  TrialResult m = MergeStageAndBenchmark(stage, bench);
  EXPECT_EQ(m.task_id, "t001@edge");
  EXPECT_EQ(m.target, "edge");
  EXPECT_EQ(m.pruned_by, "pruner");
  EXPECT_EQ(m.worker_id, "timer");
  EXPECT_DOUBLE_EQ(m.accuracy, 0.87);
  EXPECT_EQ(m.model_bytes, 1234u);
  for (double TrialResult::*f : kSingleStreamLatencyFields) EXPECT_DOUBLE_EQ(m.*f, bench.*f);
  EXPECT_DOUBLE_EQ(m.throughput_sps, 500);
  EXPECT_DOUBLE_EQ(m.speedup_p90, 1.7);
  EXPECT_DOUBLE_EQ(m.multistream_p99_ms, 3.5);
  EXPECT_EQ(m.deployable_form, "frozen");
  EXPECT_TRUE(m.ok && m.bench_valid);
  bench.ok = false;
  bench.error = "out of memory";
  m = MergeStageAndBenchmark(stage, bench);
  EXPECT_FALSE(m.ok);
  EXPECT_EQ(m.error, "benchmark on target 'edge' failed: out of memory");
}

// The metric registry is the one list of measured figures: every metric written to a JSON
// record under its name is read back into its own field, and no two share a name or field.
TEST(RecordsTest, EveryRegisteredMetricTravelsThroughTheJsonRecordUnderItsName) {
  TrialResult r;
  r.sweep_id = "sw";
  r.task_id = "t001";
  std::set<std::string> names;
  double v = 1;
  for (const auto& m : ResultMetrics()) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name << " is registered twice";
    std::visit([&](auto f) { r.*f = static_cast<std::remove_reference_t<decltype(r.*f)>>(v); }, m.field);
    v += 1;
  }
  const nlohmann::json j = ToJson(r);
  auto back = ResultFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  v = 1;
  for (const auto& m : ResultMetrics()) {
    EXPECT_EQ(j.at(m.name).get<double>(), v) << m.name;
    EXPECT_EQ(m.Read(back.value()), v) << m.name << " (" << m.unit << ")";
    EXPECT_EQ(FindResultMetric(m.name), &m);
    v += 1;
  }
  EXPECT_EQ(FindResultMetric("latency_p90_ms")->unit, std::string("ms"));
  EXPECT_EQ(FindResultMetric("no_such_metric"), nullptr);
}

TEST(RecordsTest, ResultJsonRoundTripHasPublicFields) {
  auto j = ToJson(SampleResult());
  for (const char* f : {"sweep", "trial", "target", "model", "criterion", "granularity", "schedule", "sparsity",
                        "achieved_sparsity", "baseline", "accuracy", "latency_p50_ms", "latency_p90_ms",
                        "latency_p99_ms", "throughput_sps", "params", "model_bytes", "status", "error"})
    EXPECT_TRUE(j.contains(f)) << f;
  EXPECT_EQ(j["status"], "ok");
  auto back = ResultFromJson(j);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(ToJson(back.value()), j);
}

}  // namespace

// Found by tests/fuzz/decode_fuzz: 208 bytes claiming a huge list of empty structs used to
// decode into gigabytes. Now the traversal limit follows the message size.
// A confirmation round's task travels with its candidates and the target's threads, on the
// wire and in the store; a peer sending more candidates than the limit is refused at the edge.
// A language-model task's learning task, windows, vocabulary, tokenizer and optimizer, and its
// rows' perplexity, on the wire and in the store; records from before read as image
// classification with SGD.
TEST(CodecTest, ALanguageModelTaskAndItsPerplexityRowsTravelAndOlderRecordsReadAsImages) {
  Task t;
  t.sweep_id = "sw-1";
  t.task_id = "t001";
  t.dataset.task = "causal_lm";
  t.dataset.name = "text";
  t.dataset.sequence_length = 128;
  t.dataset.vocab_size = 4096;
  t.dataset.tokenizer = "/data/sp.model";
  t.training.optimizer = "adamw";
  auto back = std::get<AssignMsg>(Decode(Encode(AssignMsg{t})).value()).task;
  EXPECT_EQ(back.dataset.task, "causal_lm");
  EXPECT_EQ(back.dataset.sequence_length, 128u);
  EXPECT_EQ(back.dataset.vocab_size, 4096u);
  EXPECT_EQ(back.dataset.tokenizer, "/data/sp.model");
  EXPECT_EQ(back.training.optimizer, "adamw");
  auto stored = TaskFromJson(ToJson(t));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->dataset.task, "causal_lm");
  EXPECT_EQ(stored->dataset.vocab_size, 4096u);
  EXPECT_EQ(stored->training.optimizer, "adamw");
  auto older = ToJson(t);
  older["dataset"].erase("task");
  older["training"].erase("optimizer");
  auto old = TaskFromJson(older);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->dataset.task, "image_classification");
  EXPECT_EQ(old->training.optimizer, "sgd");
  Task image;  // an older peer sends neither field: the same defaults
  image.dataset.task.clear();
  image.training.optimizer.clear();
  auto peer = std::get<AssignMsg>(Decode(Encode(AssignMsg{image})).value()).task;
  EXPECT_EQ(peer.dataset.task, "image_classification");
  EXPECT_EQ(peer.training.optimizer, "sgd");

  TrialResult r = SampleResult();
  r.metric = "perplexity";
  r.perplexity = 41.25;
  r.baseline_perplexity = 38.5;
  auto wire = std::get<SubmitResultMsg>(Decode(Encode(SubmitResultMsg{"w1", r, ""})).value()).result;
  EXPECT_EQ(wire.metric, "perplexity");
  EXPECT_DOUBLE_EQ(wire.perplexity, 41.25);
  EXPECT_DOUBLE_EQ(wire.baseline_perplexity, 38.5);
  auto row = ResultFromJson(ToJson(r));
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->metric, "perplexity");
  EXPECT_DOUBLE_EQ(row->perplexity, 41.25);
  EXPECT_DOUBLE_EQ(row->baseline_perplexity, 38.5);
}

TEST(CodecTest, AConfirmationTaskKeepsItsCandidatesAndTooManyAreRefused) {
  Task t;
  t.sweep_id = "sw-1";
  t.task_id = "confirm@edge";
  t.kind = TaskKind::kConfirmTarget;
  t.target = "edge";
  t.benchmark.threads = 4;
  t.benchmark.confirm_rounds = 7;
  t.candidates = {{"base@edge", "hash-base", "frozen"}, {"t002@edge", "hash-t002", "dense"}};
  auto back = std::get<AssignMsg>(Decode(Encode(AssignMsg{t})).value()).task;
  EXPECT_EQ(back.kind, TaskKind::kConfirmTarget);
  EXPECT_EQ(back.benchmark.threads, 4u);
  EXPECT_EQ(back.benchmark.confirm_rounds, 7u);
  ASSERT_EQ(back.candidates.size(), 2u);
  EXPECT_EQ(back.candidates[1].task_id, "t002@edge");
  EXPECT_EQ(back.candidates[0].artifact, "hash-base");
  EXPECT_EQ(back.candidates[0].form, "frozen");
  auto stored = TaskFromJson(ToJson(t));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->candidates.size(), 2u);
  EXPECT_EQ(stored->candidates[1].artifact, "hash-t002");
  // A record written before the round existed: the worker's own threads, no round.
  auto older = ToJson(t);
  older["benchmark"].erase("threads");
  older["benchmark"].erase("confirm_rounds");
  older.erase("candidates");
  auto old = TaskFromJson(older);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->benchmark.threads, 0u);
  EXPECT_EQ(old->benchmark.confirm_rounds, 0u);
  EXPECT_TRUE(old->candidates.empty());
  t.candidates.assign(kMaxConfirmCandidates + 1, {"t001@edge", "h", "dense"});
  auto refused = Decode(Encode(AssignMsg{t}));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("9 confirmation candidates; the limit is 8"), std::string::npos)
      << refused.status().ToString();
}

TEST(CodecTest, SmallMessageCannotAmplifyIntoAHugeList) {
  const std::string bytes("\x02\x00\x00\x00\x12\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x04\x00\x01\x00\x00\x00\x0f\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01\x00\x55\x72\x3a\x0a\xb8\x02\x80\x00\x00\x12\x00\x00\x00\x01\x00\x2e\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x04\x00\x01\x00\x00\x00\x08\x00\x60\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x12\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x24\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x12\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4b\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x00\x00\x4f\x4f\x4f\x4f\x4f\x4f\x4f\x00\x00\x08", 200);
  auto m = Decode(bytes);
  // The traversal limit (derived from the message size) refuses it: it must not decode at all.
  ASSERT_FALSE(m.ok()) << "a 200-byte message decoded into " << Encode(m.value()).size() << " bytes of "
                       << MessageName(m.value());
  EXPECT_EQ(m.status().code(), Status::Code::kInvalidArgument) << m.status().ToString();
  EXPECT_NE(m.status().message().find("traversal limit"), std::string::npos) << m.status().ToString();
}

}  // namespace prunelab

namespace prunelab {
namespace {

TEST(CodecTest, StoreRecordsRoundTripAndOlderJsonRecordsStillRead) {
  TrialResult r = SampleResult();
  auto back = DecodeResultRecord(EncodeResultRecord(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ToJson(back.value()), ToJson(r));
  auto old = DecodeResultRecord(ToJson(r).dump());  // what stores written before held
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->task_id, r.task_id);
  TaskRecordData t;
  t.task.task_id = "t001@a";
  t.task.kind = TaskKind::kBenchmarkVariant;
  t.task.depends_on = "t001";
  t.state = "running";
  t.worker = "w1";
  t.slot = 3;
  t.attempt_errors = {"attempt 1: lost"};
  auto tb = DecodeTaskRecord(EncodeTaskRecord(t));
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(ToJson(tb->task), ToJson(t.task));
  EXPECT_EQ(tb->slot, 3u);
  EXPECT_EQ(tb->attempt_errors, t.attempt_errors);
  EXPECT_TRUE(IsError(DecodeResultRecord("garbage!"), Status::Code::kCorruption, "stored record")) << "8 bytes of junk is not a record";
  EXPECT_TRUE(IsError(DecodeTaskRecord(""), Status::Code::kCorruption, "stored record of 0 bytes is not a Cap'n Proto message"));
}

}  // namespace
}  // namespace prunelab
