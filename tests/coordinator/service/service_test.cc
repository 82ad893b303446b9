// The coordinator service on real loopback sockets, in-process (memory store): chunked
// artifact transfer that survives corrupted chunks, and CURVE with ZAP allow-lists.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <map>
#include <regex>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/net/artifact_fetch.h"
#include "tests/status_matchers.h"
#include "common/base/hash.h"
#include "common/net/rpc.h"
#include "coordinator/http/http.h"
#include "tests/live_service.h"
#include "coordinator/store/timed_store.h"
#include "coordinator/service/service.h"

namespace prunelab::coordinator {
namespace {

using prunelab::testing::IsError;

const char* kTinySpec = "name: t\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n";

const char* kUserModelSpec = R"(
name: big
model: {torchscript: net.pt, input_shape: [1, 28, 28]}
sweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}
)";

using testing::LiveService;

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

TEST(ServiceTest, ArtifactsStreamInChunksAndACorruptedChunkIsFetchedAgain) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok()) << live.bound().ToString();
  // A 2.5 MiB "model" travels with a sweep and is stored content-addressed.
  const std::string model = std::string("PK\x03\x04", 4) + Pattern((5u << 20) / 2);  // a zip's magic, as TorchScript
  RpcClient client(live.ctx(), live.service().client_endpoint());
  auto submitted = client.Call(SubmitSweepMsg{kUserModelSpec, model}, 10000);
  ASSERT_TRUE(submitted.ok()) << submitted.status().ToString();
  ASSERT_TRUE(std::holds_alternative<SubmitReplyMsg>(submitted.value()));
  const std::string hash = ContentHash(model);

  RpcClient worker(live.ctx(), live.service().worker_endpoint());
  int calls = 0, corrupted = 0;
  // Flips one byte of the second chunk's data on its way in, once.
  auto flaky = [&](const Message& m) -> StatusOr<Message> {
    auto r = worker.Call(m, 10000);
    if (r.ok())
      if (auto* a = std::get_if<ArtifactReplyMsg>(&r.value()); a && a->offset > 0 && corrupted == 0 && !a->data.empty()) {
        a->data[a->data.size() / 2] ^= 0x5a;
        ++corrupted;
      }
    ++calls;
    return r;
  };
  ChunkedFetchStats stats;
  ChunkedFetchOptions o;
  o.chunk_bytes = 1u << 20;
  auto got = FetchArtifactChunked(flaky, hash, o, &stats);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got.value(), model);
  EXPECT_EQ(stats.chunks, 3u) << "2.5 MiB in 1 MiB chunks";
  EXPECT_EQ(stats.corrupt_chunks, 1u);
  EXPECT_EQ(calls, 4) << "only the corrupted chunk was fetched again";

  // A chunk that always arrives corrupted fails the fetch with a clear error.
  auto hostile = [&](const Message& m) -> StatusOr<Message> {
    auto r = worker.Call(m, 10000);
    if (r.ok())
      if (auto* a = std::get_if<ArtifactReplyMsg>(&r.value()); a && !a->data.empty()) a->data[0] ^= 1;
    return r;
  };
  auto bad = FetchArtifactChunked(hostile, hash, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  EXPECT_NE(bad.status().message().find("hash check"), std::string::npos) << bad.status().message();

  // A chunk that lies about where it belongs is rejected too.
  auto shifted = [&](const Message& m) -> StatusOr<Message> {
    auto r = worker.Call(m, 10000);
    if (r.ok())
      if (auto* a = std::get_if<ArtifactReplyMsg>(&r.value())) a->offset += 1;
    return r;
  };
  EXPECT_FALSE(FetchArtifactChunked(shifted, hash, o).ok());
  auto unknown = FetchArtifactChunked([&](const Message& m) { return worker.Call(m, 10000); }, ContentHash("nothing"), o);
  EXPECT_EQ(unknown.status().code(), Status::Code::kNotFound);
}

TEST(ServiceTest, CurveAdmitsOnlyAllowListedKeysPerEndpoint) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  auto server = GenerateCurveKeyPair().value();
  auto worker_keys = GenerateCurveKeyPair().value();
  auto client_keys = GenerateCurveKeyPair().value();
  auto stranger = GenerateCurveKeyPair().value();
  ServiceOptions o;
  o.keys = server;
  o.allowed_workers = {worker_keys.public_key};
  o.allowed_clients = {client_keys.public_key};
  LiveService live(o);
  ASSERT_TRUE(live.bound().ok()) << live.bound().ToString();
  const auto& wep = live.service().worker_endpoint();
  const auto& cep = live.service().client_endpoint();

  RpcClient good_worker(live.ctx(), wep, ClientSecurity{worker_keys, server.public_key});
  auto reg = good_worker.Call(RegisterMsg{"", "a", {}, 1, {}}, 5000);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  EXPECT_TRUE(std::holds_alternative<RegisterReplyMsg>(reg.value()));
  RpcClient good_client(live.ctx(), cep, ClientSecurity{client_keys, server.public_key});
  auto st = good_client.Call(StatusRequestMsg{""}, 5000);
  ASSERT_TRUE(st.ok()) << st.status().ToString();

  // Unknown key, a client key on the worker endpoint, and plain TCP: all refused.
  RpcClient unknown(live.ctx(), wep, ClientSecurity{stranger, server.public_key});
  EXPECT_TRUE(IsError(unknown.Call(RegisterMsg{"", "a", {}, 1, {}}, 800), Status::Code::kUnavailable, wep));
  RpcClient wrong_list(live.ctx(), wep, ClientSecurity{client_keys, server.public_key});
  EXPECT_TRUE(IsError(wrong_list.Call(RegisterMsg{"", "a", {}, 1, {}}, 800), Status::Code::kUnavailable, wep)) << "worker and client lists are separate";
  RpcClient plain(live.ctx(), cep);
  EXPECT_TRUE(IsError(plain.Call(StatusRequestMsg{""}, 800), Status::Code::kUnavailable, cep));
  EXPECT_GE(live.service().refused_connections(), 2u) << "refusals are counted (and logged)";

  // An allow-listed worker key cannot act as a client on its own endpoint either.
  auto submitted = good_worker.Call(SubmitSweepMsg{kTinySpec, ""}, 5000);
  ASSERT_TRUE(submitted.ok()) << submitted.status().ToString();
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(submitted.value()));
  EXPECT_EQ(std::get<ErrorMsg>(submitted.value()).code, "wrong_endpoint");
  auto cancel = good_worker.Call(SweepControlMsg{"sw-0001", "cancel"}, 5000);
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(std::get<ErrorMsg>(cancel.value()).code, "wrong_endpoint");
  // ... nor a client key as a worker.
  auto as_worker = good_client.Call(RegisterMsg{"", "a", {}, 1, {}}, 5000);
  ASSERT_TRUE(as_worker.ok());
  EXPECT_EQ(std::get<ErrorMsg>(as_worker.value()).code, "wrong_endpoint");
  auto sweeps = good_client.Call(StatusRequestMsg{""}, 5000);
  ASSERT_TRUE(sweeps.ok());
  EXPECT_TRUE(std::get<StatusReplyMsg>(sweeps.value()).sweeps.empty()) << "nothing was stored by the refused submit";

  // Who acts on releases is the authenticated key, whatever the client claims.
  ReleaseCommandMsg policy{"policy", "edge"};
  policy.released_by = "mallory";
  auto asked = good_client.Call(policy, 5000);
  ASSERT_TRUE(asked.ok());
  ASSERT_TRUE(std::holds_alternative<ReleaseReplyMsg>(asked.value()));
  EXPECT_EQ(nlohmann::json::parse(std::get<ReleaseReplyMsg>(asked.value()).json)["asked_by"],
            "curve:" + client_keys.public_key);
  auto release_as_worker = good_worker.Call(policy, 5000);
  ASSERT_TRUE(release_as_worker.ok());
  EXPECT_EQ(std::get<ErrorMsg>(release_as_worker.value()).code, "wrong_endpoint");
}

// Refusals the ZAP handler never sees (a plain peer, a wrong server key) are counted and
// logged too, and a peer that keeps retrying gets one line, not one per attempt.
TEST(ServiceTest, EveryRefusedConnectionIsLoggedOncePerPeerWithItsReason) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  auto server = GenerateCurveKeyPair().value();
  auto worker_keys = GenerateCurveKeyPair().value();
  auto stranger = GenerateCurveKeyPair().value();
  auto other_server = GenerateCurveKeyPair().value();
  ServiceOptions o;
  o.keys = server;
  o.allowed_workers = {worker_keys.public_key};
  o.allowed_clients = {GenerateCurveKeyPair().value().public_key};
  LiveService live(o);
  ASSERT_TRUE(live.bound().ok());
  const auto& wep = live.service().worker_endpoint();
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 5; ++i) {
    RpcClient unknown(live.ctx(), wep, ClientSecurity{stranger, server.public_key});
    EXPECT_TRUE(IsError(unknown.Call(RegisterMsg{"", "a", {}, 1, {}}, 300), Status::Code::kUnavailable, wep));
  }
  RpcClient plain(live.ctx(), wep);
  EXPECT_TRUE(IsError(plain.Call(RegisterMsg{"", "a", {}, 1, {}}, 300), Status::Code::kUnavailable, wep));
  RpcClient wrong_server(live.ctx(), wep, ClientSecurity{worker_keys, other_server.public_key});
  EXPECT_TRUE(IsError(wrong_server.Call(RegisterMsg{"", "a", {}, 1, {}}, 300), Status::Code::kUnavailable, wep));
  // The monitor reports asynchronously: wait (bounded) until both kinds are counted.
  for (int i = 0; i < 200 && live.service().refused_connections() < 7; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_GE(live.service().refused_connections(), 7u) << log;
  size_t stranger_lines = 0;
  for (size_t at = log.find(stranger.public_key); at != std::string::npos; at = log.find(stranger.public_key, at + 1))
    ++stranger_lines;
  EXPECT_EQ(stranger_lines, 1u) << "one line for a peer that retried 5 times:\n" << log;
  EXPECT_NE(log.find("plain-mode peer"), std::string::npos) << log;
  EXPECT_NE(log.find("wrong --server-key"), std::string::npos) << log;
}

// Plain mode: each endpoint takes only its own role's messages; artifacts on both.
TEST(ServiceTest, EachEndpointAcceptsOnlyItsRolesMessages) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok());
  RpcClient worker(live.ctx(), live.service().worker_endpoint());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  auto code = [](const StatusOr<Message>& r) {
    if (!r.ok()) return std::string("no reply: ") + r.status().ToString();
    if (auto* e = std::get_if<ErrorMsg>(&r.value())) return e->code;
    return std::string(MessageName(r.value()));
  };
  // Client messages on the worker endpoint.
  EXPECT_EQ(code(worker.Call(SubmitSweepMsg{kTinySpec, ""}, 5000)), "wrong_endpoint");
  EXPECT_EQ(code(worker.Call(StatusRequestMsg{""}, 5000)), "wrong_endpoint");
  EXPECT_EQ(code(worker.Call(ResultsRequestMsg{"sw-0001"}, 5000)), "wrong_endpoint");
  EXPECT_EQ(code(worker.Call(WorkersRequestMsg{}, 5000)), "wrong_endpoint");
  EXPECT_EQ(code(worker.Call(SweepControlMsg{"sw-0001", "pause"}, 5000)), "wrong_endpoint");
  // Worker messages on the client endpoint.
  EXPECT_EQ(code(client.Call(RegisterMsg{"", "a", {}, 1, {}}, 5000)), "wrong_endpoint");
  EXPECT_EQ(code(client.Call(RequestWorkMsg{"w", 0}, 5000)), "wrong_endpoint");
  SubmitResultMsg forged;
  forged.result.sweep_id = "sw-0001";
  forged.result.task_id = "train";
  EXPECT_EQ(code(client.Call(forged, 5000)), "wrong_endpoint");
  // Replies are nobody's to send.
  EXPECT_EQ(code(client.Call(NoWorkMsg{10, "x"}, 5000)), "wrong_endpoint");
  // Each role on its own endpoint works; artifacts on both.
  EXPECT_EQ(code(client.Call(SubmitSweepMsg{kTinySpec, ""}, 5000)), "SubmitReply");
  EXPECT_EQ(code(worker.Call(RegisterMsg{"w1", "local", {}, 1, {}}, 5000)), "RegisterReply");
  EXPECT_EQ(code(worker.Call(FetchArtifactMsg{std::string(64, 'a')}, 5000)), "ArtifactReply");
  EXPECT_EQ(code(client.Call(FetchArtifactMsg{std::string(64, 'a')}, 5000)), "ArtifactReply");
  EXPECT_GE(live.service().rejected_messages(), 9u) << "refusals are counted";
}

// A spec or a worker id that is not UTF-8 is refused at the edge, and the coordinator goes on
// (it aborted in nlohmann's dump with type_error 316).
// Sends `m` encoded, with the bytes of `marker` in it replaced by `bytes` (a sender that does
// not sanitize, as our encoder does), and returns the decoded reply.
StatusOr<Message> SendPatched(ZmqContext& ctx, const std::string& endpoint, const Message& m, const std::string& marker,
                              const std::string& bytes) {
  std::string wire = Encode(m);
  auto at = wire.find(marker);
  if (at == std::string::npos || marker.size() != bytes.size()) return Status::Internal("marker not found");
  wire.replace(at, marker.size(), bytes);
  auto sock = DealerSocket::Connect(ctx, endpoint);
  if (!sock.ok()) return sock.status();
  PRUNELAB_RETURN_IF_ERROR(sock.value()->Send(wire));
  auto reply = sock.value()->Receive(5000);
  if (!reply.ok()) return reply.status();
  if (!reply.value()) return Status::Unavailable("no reply");
  return Decode(*reply.value());
}

// A spec or a worker id that is not UTF-8 is refused at the edge, and the coordinator goes on
// (it aborted in nlohmann's dump with type_error 316).
TEST(ServiceTest, TextThatIsNotUtf8IsRefusedAndTheCoordinatorKeepsServing) {
  LiveService live;
  ASSERT_TRUE(live.bound().ok());
  const std::string spec = std::string(kTinySpec) + "# cafZ\n";
  auto sub = SendPatched(live.ctx(), live.service().client_endpoint(), SubmitSweepMsg{spec, ""}, "cafZ", "caf\xFF");
  ASSERT_TRUE(sub.ok()) << sub.status().ToString();
  ASSERT_TRUE(std::holds_alternative<ErrorMsg>(sub.value()));
  EXPECT_NE(std::get<ErrorMsg>(sub.value()).message.find("UTF-8"), std::string::npos)
      << std::get<ErrorMsg>(sub.value()).message;
  auto reg = SendPatched(live.ctx(), live.service().worker_endpoint(), RegisterMsg{"wQQ", "local", {}, 1, {}}, "wQQ",
                         "w\xC3(");
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  EXPECT_TRUE(std::holds_alternative<ErrorMsg>(reg.value()));
  RpcClient client(live.ctx(), live.service().client_endpoint());
  auto workers = client.Call(WorkersRequestMsg{}, 5000);
  ASSERT_TRUE(workers.ok()) << "still serving";
  EXPECT_TRUE(std::get<WorkersReplyMsg>(workers.value()).workers.empty());
  EXPECT_EQ(live.service().rejected_messages(), 2u);
  // Our own encoder never sends invalid UTF-8: it replaces bad bytes (U+FFFD).
  auto fixed = client.Call(SubmitSweepMsg{std::string(kTinySpec) + "# caf\xFF\n", ""}, 5000);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(std::holds_alternative<SubmitReplyMsg>(fixed.value()));
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

// GET over a real TCP connection; returns status code and body.
std::pair<int, std::string> Get(uint16_t port, const std::string& path) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  asio::io_context io;
  boost::beast::tcp_stream s(io);
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{http::verb::get, path, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {res.result_int(), res.body()};
}

TEST(HttpTest, MetricsAreValidPrometheusTextAndTheApiServesJson) {
  DashboardState dash;
  ServiceOptions o;
  o.tick_interval_ms = 50;
  o.dashboard = &dash;
  LiveService live(o);
  ASSERT_TRUE(live.bound().ok()) << live.bound().ToString();
  dash.store_write = &live.store().write_latency;
  dash.store_sync = &live.store().sync_latency;
  HttpServer web("127.0.0.1", 0, live.store(), dash);
  ASSERT_TRUE(web.Start().ok());
  RpcClient client(live.ctx(), live.service().client_endpoint());
  ASSERT_TRUE(client.Call(SubmitSweepMsg{"name: m\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n", ""}, 5000).ok());
  RpcClient worker(live.ctx(), live.service().worker_endpoint());
  ASSERT_TRUE(worker.Call(RegisterMsg{"w1", "local", {}, 1, {}}, 5000).ok());
  auto first = worker.Call(RequestWorkMsg{"w1", 0}, 5000);
  ASSERT_TRUE(first.ok() && std::holds_alternative<AssignMsg>(first.value()));
  // The next snapshot the event loop publishes is taken after the assignment was answered.
  ASSERT_TRUE(dash.WaitForPublishAfter(dash.published(), 10000)) << "the service published no snapshot";

  // Every line: "# HELP name ...", "# TYPE name kind", or "name{labels} number".
  auto scrape = [&](int* samples) {
    auto [code, text] = Get(web.port(), "/metrics");
    EXPECT_EQ(code, 200);
    std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
    std::regex meta(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
    std::istringstream lines(text);
    std::string line;
    std::map<std::string, double> values;
    *samples = 0;
    while (std::getline(lines, line)) {
      if (line.rfind("#", 0) == 0) {
        EXPECT_TRUE(std::regex_match(line, meta)) << line;
        continue;
      }
      std::smatch m;
      EXPECT_TRUE(std::regex_match(line, m, sample)) << "not Prometheus text: " << line;
      if (m.size() > 5) values[line.substr(0, line.rfind(' '))] = std::stod(m[5].str());
      ++*samples;
    }
    return values;
  };
  int samples = 0;
  auto values = scrape(&samples);
  EXPECT_GT(samples, 40);
  EXPECT_EQ(values["prunelab_tasks{state=\"running\"}"], 1);
  EXPECT_EQ(values["prunelab_workers{state=\"alive\"}"], 1);
  EXPECT_EQ(values["prunelab_dispatch_latency_seconds_count"], 1);
  EXPECT_EQ(values["prunelab_dispatch_latency_seconds_bucket{le=\"+Inf\"}"], 1);
  EXPECT_GE(values["prunelab_store_write_latency_seconds_count"], 2) << "the submission and the assignment";

  auto [scode, sweeps] = Get(web.port(), "/api/sweeps");
  EXPECT_EQ(scode, 200);
  auto j = nlohmann::json::parse(sweeps, nullptr, false);
  ASSERT_TRUE(j.is_array()) << sweeps;
  EXPECT_EQ(j[0]["id"], "sw-0001");
  auto [dcode, decisions] = Get(web.port(), "/api/sweeps/sw-0001/decisions");
  EXPECT_EQ(dcode, 200) << decisions;
  EXPECT_EQ(Get(web.port(), "/api/sweeps/sw-9999/decisions").first, 404);
  EXPECT_EQ(Get(web.port(), "/nope").first, 404);
  EXPECT_NE(Get(web.port(), "/").second.find("prunelab dashboard"), std::string::npos);

  // The sweep to its end: dense 90 % in 1000 bytes at 1 ms p90, the variant 87 % in 400 bytes
  // at 0.5 ms. No variant passes the default gates (3 points lost; the dense model is 100 % of
  // itself), so the candidate is the best-ranked variant, with its figures.
  Task task = std::get<AssignMsg>(first.value()).task;
  for (int i = 0; i < 10; ++i) {
    SubmitResultMsg m;
    m.worker_id = "w1";
    TrialResult& r = m.result;
    r.sweep_id = task.sweep_id;
    r.task_id = task.task_id;
    r.attempt = task.attempt;
    r.kind = task.kind;
    r.target = task.target;
    r.ok = true;
    r.worker_id = "w1";
    const bool base = task.kind == TaskKind::kTrainBaseline || task.kind == TaskKind::kEvaluateBaseline;
    r.baseline = base;  // as a worker reports it
    r.accuracy = base ? 0.90 : 0.87;
    r.model_bytes = base ? 1000 : 400;
    r.latency_p90_ms = task.task_id == "base@local" ? 1.0 : 0.5;
    if (task.kind == TaskKind::kTrainBaseline || task.kind == TaskKind::kPruneTrial) {
      m.artifact = "bytes of " + task.task_id;
      r.artifact_hash = ContentHash(m.artifact);
    }
    auto ack = worker.Call(m, 5000);
    ASSERT_TRUE(ack.ok() && std::holds_alternative<ResultAckMsg>(ack.value())) << task.task_id;
    auto more = worker.Call(RequestWorkMsg{"w1", 0}, 5000);
    ASSERT_TRUE(more.ok());
    if (!std::holds_alternative<AssignMsg>(more.value())) break;
    task = std::get<AssignMsg>(more.value()).task;
  }
  ASSERT_TRUE(dash.WaitForPublishAfter(dash.published(), 10000));
  values = scrape(&samples);
  const std::string where = "{sweep=\"sw-0001\",target=\"local\"}";
  const std::string cand = "{sweep=\"sw-0001\",target=\"local\",trial=\"t001@local\",recommended=\"false\"}";
  EXPECT_EQ(values["prunelab_results{target=\"local\"}"], 2);
  EXPECT_EQ(values["prunelab_failed_results{target=\"local\"}"], 0);
  ASSERT_TRUE(values.count("prunelab_sweep_recommendation" + where)) << "no candidate series";
  EXPECT_EQ(values["prunelab_sweep_recommendation" + where], 0);
  EXPECT_NEAR(values["prunelab_candidate_accuracy_drop_points" + cand], 3.0, 1e-6);
  EXPECT_NEAR(values["prunelab_candidate_memory_ratio" + cand], 0.4, 1e-9);
  EXPECT_NEAR(values["prunelab_candidate_latency_p90_seconds" + cand], 0.0005, 1e-12);
  web.Stop();
}

}  // namespace
}  // namespace prunelab::coordinator
