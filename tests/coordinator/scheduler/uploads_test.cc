// Chunked uploads (PutArtifactChunk) through the coordinator's state machine, and the
// uploader (UploadArtifactChunked) against it with lost replies and corrupted chunks: no
// sockets, a FakeClock, artifacts in a memory store.
#include <gtest/gtest.h>

#include "common/base/hash.h"
#include "common/codec/codec.h"
#include "common/codec/records.h"
#include "common/net/artifact_fetch.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {
namespace {

const std::string kZip = std::string("PK\x03\x04", 4);

std::string Bytes(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(((i + seed) * 2654435761u) >> 11);
  return s;
}

class UploadTest : public ::testing::Test {
 protected:
  UploadTest() : store_(NewMemoryStore()) { Make({}); }
  void Make(UploadLimits limits) {
    CoordinatorOptions o;
    o.uploads = limits;
    core_ = std::make_unique<Coordinator>(*store_, clock_, o);
  }
  Message Put(const std::string& bytes, const std::string& id, uint64_t offset, size_t n,
              const std::string& hash = "") {
    PutArtifactChunkMsg m{hash.empty() ? ContentHash(bytes) : hash, id, bytes.size(), offset, bytes.substr(offset, n), ""};
    m.chunk_hash = ContentHash(m.data);
    return *core_->Handle(m);
  }
  static PutArtifactReplyMsg Reply(const Message& m) {
    if (auto* e = std::get_if<ErrorMsg>(&m)) ADD_FAILURE() << e->code << ": " << e->message;
    auto* r = std::get_if<PutArtifactReplyMsg>(&m);
    return r ? *r : PutArtifactReplyMsg{};
  }
  static ErrorMsg Refusal(const Message& m) {
    auto* e = std::get_if<ErrorMsg>(&m);
    EXPECT_NE(e, nullptr) << "expected a refusal";
    return e ? *e : ErrorMsg{};
  }
  StatusOr<std::string> Download(const std::string& hash) {
    return FetchArtifactChunked([&](const Message& m) -> StatusOr<Message> { return *core_->Handle(m); }, hash);
  }
  Status Upload(const std::string& bytes, ChunkedUploadOptions o = {}, ChunkedUploadStats* st = nullptr) {
    return UploadArtifactChunked([&](const Message& m) -> StatusOr<Message> { return *core_->Handle(m); },
                                 ContentHash(bytes), bytes, o, st);
  }

  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> core_;
};

TEST_F(UploadTest, ChunksInOrderBecomeTheArtifactOnlyWhenWholeAndItIsServedInRanges) {
  const std::string bytes = Bytes(3000);
  EXPECT_EQ(Reply(Put(bytes, "u1", 0, 1000)).next_offset, 1000u);
  EXPECT_EQ(Reply(Put(bytes, "u1", 1000, 1000)).next_offset, 2000u);
  EXPECT_EQ(Download(ContentHash(bytes)).status().code(), Status::Code::kNotFound) << "not visible half-uploaded";
  auto last = Reply(Put(bytes, "u1", 2000, 1000));
  EXPECT_TRUE(last.complete);
  EXPECT_EQ(last.next_offset, 3000u);
  auto back = Download(ContentHash(bytes));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back.value(), bytes);
  EXPECT_TRUE(Reply(Put(bytes, "u2", 0, 10)).complete) << "content-addressed: stored once, a second upload ends at once";
}

TEST_F(UploadTest, ResendsGapsAndUnknownUploadsAreAnsweredWithTheByteWanted) {
  const std::string bytes = Bytes(4000);
  Reply(Put(bytes, "u1", 0, 1000));
  EXPECT_EQ(Reply(Put(bytes, "u1", 0, 1000)).next_offset, 1000u) << "a resend after a lost reply";
  EXPECT_EQ(Reply(Put(bytes, "u1", 3000, 1000)).next_offset, 1000u) << "ahead of what was taken";
  EXPECT_EQ(Reply(Put(bytes, "gone", 2000, 1000)).next_offset, 0u) << "an upload this coordinator does not know starts over";
  for (uint64_t at = 1000; at < 4000; at += 1000) Reply(Put(bytes, "u1", at, 1000));
  EXPECT_EQ(Download(ContentHash(bytes)).value(), bytes);
}

TEST_F(UploadTest, ACorruptedChunkIsRefusedAndTheWholeArtifactMustMatchItsName) {
  const std::string bytes = Bytes(2000);
  PutArtifactChunkMsg bad{ContentHash(bytes), "u1", bytes.size(), 0, bytes.substr(0, 1000), ContentHash("other")};
  EXPECT_EQ(Refusal(*core_->Handle(bad)).code, "bad_chunk");
  const std::string wrong_name = ContentHash("not these bytes");
  Reply(Put(bytes, "u2", 0, 1000, wrong_name));
  auto e = Refusal(Put(bytes, "u2", 1000, 1000, wrong_name));
  EXPECT_EQ(e.code, "artifact_corrupted");
  EXPECT_NE(e.message.find("upload again from byte 0"), std::string::npos) << e.message;
  EXPECT_EQ(Download(wrong_name).status().code(), Status::Code::kNotFound) << "nothing stored under a name it does not match";
}

TEST_F(UploadTest, EveryLimitIsExplicitAndNamed) {
  UploadLimits l;
  l.max_artifact_bytes = 5000;
  l.max_uploads = 2;
  l.stale_after_ms = 60000;
  Make(l);
  auto big = Refusal(Put(Bytes(6000), "u1", 0, 100));
  EXPECT_EQ(big.code, "artifact_too_large");
  EXPECT_NE(big.message.find("at most 0.0 MiB per artifact (prunelab-coordinator --max-artifact-mb)"), std::string::npos)
      << big.message;
  PutArtifactChunkMsg huge_chunk{ContentHash("x"), "u1", uint64_t{4} << 10, 0, std::string(kMaxArtifactChunkBytes + 1, 'x'), ""};
  Make({});
  huge_chunk.total_bytes = kMaxArtifactChunkBytes + 1;
  huge_chunk.chunk_hash = ContentHash(huge_chunk.data);
  EXPECT_NE(Refusal(*core_->Handle(huge_chunk)).message.find("chunks are at most 16.0 MiB"), std::string::npos);
  Make(l);
  EXPECT_EQ(Refusal(Put(Bytes(100), "bad id/..", 0, 100)).code, "invalid_upload");
  PutArtifactChunkMsg unnamed{"../../etc/passwd", "u1", 3, 0, "abc", ContentHash("abc")};
  EXPECT_EQ(Refusal(*core_->Handle(unnamed)).code, "invalid_upload");
  PutArtifactChunkMsg past{ContentHash("abc"), "u1", 3, 2, "abc", ContentHash("abc")};
  EXPECT_NE(Refusal(*core_->Handle(past)).message.find("runs past"), std::string::npos);
  Reply(Put(Bytes(1000, 1), "a", 0, 100));
  Reply(Put(Bytes(1000, 2), "b", 0, 100));
  auto busy = Refusal(Put(Bytes(1000, 3), "c", 0, 100));
  EXPECT_EQ(busy.code, "too_many_uploads");
  EXPECT_NE(busy.message.find("2 uploads are in progress"), std::string::npos) << busy.message;
  clock_.AdvanceMs(60001);
  core_->Tick();
  EXPECT_EQ(Reply(Put(Bytes(1000, 1), "a", 100, 100)).next_offset, 0u) << "a silent upload was dropped";
  EXPECT_EQ(Reply(Put(Bytes(1000, 3), "c", 0, 100)).next_offset, 100u) << "and its place is free";
}

TEST_F(UploadTest, TheUploaderResumesAfterLostRepliesAndResendsCorruptedChunks) {
  const std::string bytes = Bytes(1 << 20);
  int calls = 0;
  ChunkedUploadOptions o;
  o.chunk_bytes = 64 << 10;
  ChunkedUploadStats st;
  Status s = UploadArtifactChunked(
      [&](const Message& m) -> StatusOr<Message> {
        PutArtifactChunkMsg c = std::get<PutArtifactChunkMsg>(m);
        ++calls;
        if (calls == 3) c.data[7] ^= 1;  // flipped on the wire
        Message reply = *core_->Handle(c);
        if (calls % 4 == 0) return Status::Unavailable("reply lost");  // handled, but the answer never came
        return reply;
      },
      ContentHash(bytes), bytes, o, &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(st.corrupt_chunks, 1u);
  EXPECT_GT(calls, 16 + 1) << "chunks were sent again (after the lost replies and the corrupted one)";
  EXPECT_EQ(Download(ContentHash(bytes)).value(), bytes);
}

// A slow link: any chunk over 100 KiB takes longer than the RPC timeout (no reply). Both
// directions halve their chunks until they pass, and the artifact arrives whole.
TEST_F(UploadTest, ASlowLinkShrinksTheChunksUntilTheyPassBothWays) {
  const std::string bytes = Bytes(3 << 20);
  auto slow = [&](const Message& m) -> StatusOr<Message> {
    if (auto* c = std::get_if<PutArtifactChunkMsg>(&m); c && c->data.size() > (100 << 10))
      return Status::Unavailable("no reply within 3000 ms");
    Message reply = *core_->Handle(m);
    if (auto* a = std::get_if<ArtifactReplyMsg>(&reply); a && a->data.size() > (100 << 10))
      return Status::Unavailable("no reply within 3000 ms");
    return reply;
  };
  ChunkedUploadStats up;
  ASSERT_TRUE(UploadArtifactChunked(slow, ContentHash(bytes), bytes, {}, &up).ok());
  EXPECT_EQ(up.smallest_chunk, 96u << 10) << "the first chunk (all 3 MiB) halved five times";
  EXPECT_GE(up.shrunk, 5u);
  ChunkedFetchStats down;
  auto got = FetchArtifactChunked(slow, ContentHash(bytes), {}, &down);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got.value(), bytes);
  EXPECT_EQ(down.smallest_chunk, 64u << 10) << "1 MiB halved four times";
  // Each growth attempt after four good chunks fails once and shrinks again: bounded waste.
  EXPECT_LE(down.shrunk, 4u + down.chunks / kChunkGrowAfter + 1);

  // Silence at the smallest chunk is a failure like any other.
  int calls = 0;
  ChunkedUploadOptions o;
  o.attempts_per_chunk = 2;
  Status dead = UploadArtifactChunked([&](const Message&) -> StatusOr<Message> {
    ++calls;
    return Status::Unavailable("timed out");
  }, ContentHash(bytes), bytes, o);
  EXPECT_EQ(dead.code(), Status::Code::kUnavailable);
  EXPECT_EQ(calls, 6 + 2) << "six halvings from 3 MiB to 64 KiB, then two failed tries";
}

TEST_F(UploadTest, TheUploaderReportsARefusalWithTheCoordinatorsReasonAndSilenceAsUnavailable) {
  UploadLimits l;
  l.max_artifact_bytes = 1000;
  Make(l);
  Status big = Upload(Bytes(2000));
  EXPECT_EQ(big.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(big.message().find("--max-artifact-mb"), std::string::npos) << big.ToString();
  ChunkedUploadOptions o;
  o.attempts_per_chunk = 3;
  int calls = 0;
  Status silent = UploadArtifactChunked([&](const Message&) -> StatusOr<Message> {
    ++calls;
    return Status::Unavailable("timed out");
  }, ContentHash("abc"), "abc", o);
  EXPECT_EQ(silent.code(), Status::Code::kUnavailable);
  EXPECT_EQ(calls, 3);
}

const char* kUserSpec = R"(
name: user
model: {torchscript: net.pt, input_shape: [1, 28, 28]}
sweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}
)";

TEST_F(UploadTest, ASubmissionNamesAnUploadedModelByItsHash) {
  const std::string model = kZip + Bytes(100000);
  const std::string h = ContentHash(model);
  auto missing = Refusal(*core_->Handle(SubmitSweepMsg{kUserSpec, "", "s1", h}));
  EXPECT_EQ(missing.code, "invalid_spec");
  EXPECT_NE(missing.message.find("was not uploaded"), std::string::npos) << missing.message;
  ASSERT_TRUE(Upload(model).ok());
  auto ok = *core_->Handle(SubmitSweepMsg{kUserSpec, "", "s2", h});
  ASSERT_TRUE(std::holds_alternative<SubmitReplyMsg>(ok)) << std::get<ErrorMsg>(ok).message;
  std::string w = std::get<RegisterReplyMsg>(*core_->Handle(RegisterMsg{"", "local", {}, 1, {}})).worker_id;
  Task train = std::get<AssignMsg>(*core_->Handle(RequestWorkMsg{w, 0})).task;
  EXPECT_EQ(train.model_artifact, h);
  EXPECT_EQ(Download(h).value(), model) << "workers fetch it like any artifact";
  const std::string script = "#!/bin/sh\n" + Bytes(100);
  ASSERT_TRUE(Upload(script).ok());
  auto not_ts = Refusal(*core_->Handle(SubmitSweepMsg{kUserSpec, "", "s3", ContentHash(script)}));
  EXPECT_NE(not_ts.message.find("is not a TorchScript file"), std::string::npos) << not_ts.message;
}

TEST_F(UploadTest, AResultNamesItsUploadedModelAndOneNeverUploadedFailsItsStage) {
  core_->Handle(SubmitSweepMsg{"name: r\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n"
                               "targets: [a]\n", ""});
  std::string w = std::get<RegisterReplyMsg>(*core_->Handle(RegisterMsg{"", "a", {}, 1, {}})).worker_id;
  Task train = std::get<AssignMsg>(*core_->Handle(RequestWorkMsg{w, 0})).task;
  const std::string baseline = Bytes(200000);
  ASSERT_TRUE(Upload(baseline).ok());
  SubmitResultMsg m{w, ResultFor(train), ""};
  m.result.ok = true;
  m.result.artifact_hash = ContentHash(baseline);
  auto ack = std::get<ResultAckMsg>(*core_->Handle(m));
  EXPECT_TRUE(ack.accepted) << ack.note;
  EXPECT_EQ(ack.note, "recorded");
  EXPECT_EQ(*store_->Get(BaselineCacheKey(train.baseline_key)).value(), ContentHash(baseline));
  Task prune;
  prune.kind = TaskKind::kTrainBaseline;
  for (int i = 0; i < 4; ++i) {
    Message next = *core_->Handle(RequestWorkMsg{w, 0});
    if (auto* a = std::get_if<AssignMsg>(&next)) prune = a->task;
    else ADD_FAILURE() << MessageName(next) << (std::holds_alternative<NoWorkMsg>(next) ? std::get<NoWorkMsg>(next).reason : "");
    if (prune.kind == TaskKind::kPruneTrial) break;
    SubmitResultMsg b{w, ResultFor(prune), ""};  // the dense baseline's benchmark
    b.result.ok = true;
    core_->Handle(b);
  }
  ASSERT_EQ(prune.kind, TaskKind::kPruneTrial);
  SubmitResultMsg v{w, ResultFor(prune), ""};
  v.result.ok = true;
  v.result.artifact_hash = ContentHash("a variant that never arrived");
  auto failed = std::get<ResultAckMsg>(*core_->Handle(v));
  EXPECT_NE(failed.note.find("variant artifact " + v.result.artifact_hash.substr(0, 12) + " was not uploaded"),
            std::string::npos)
      << failed.note;
}

}  // namespace
}  // namespace prunelab::coordinator
