// What the command groups share: errors, the coordinator's endpoint and keys, asking it,
// and reading a sweep from it or from a store.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/codec/records.h"
#include "coordinator/cli/cli.h"
#include "coordinator/store/store_view.h"

namespace prunelab::cli {

namespace pc = ::prunelab::coordinator;

std::atomic<bool> g_interrupted{false};
void OnSigint(int) { g_interrupted = true; }
int g_timeout_ms = 15000;

int Fail(const std::string& msg) {
  std::fprintf(stderr, "prunelab: %s\n", msg.c_str());
  return 1;
}

std::string CoordinatorEndpoint(const Args& a) {
  if (a.Has("--coordinator")) return a.Get("--coordinator");
  const char* env = std::getenv("PRUNELAB_COORDINATOR");
  return env ? env : "tcp://127.0.0.1:5556";
}

// CURVE keys of this client, from flags or the environment; plain when neither is set.
pl::ClientSecurity ClientSec(const Args& a) {
  auto pick = [&](const char* flag, const char* env) {
    if (a.Has(flag)) return a.Get(flag);
    const char* v = std::getenv(env);
    return std::string(v ? v : "");
  };
  auto sec = pl::LoadClientSecurity(pick("--curve-key", "PRUNELAB_CURVE_KEY"), pick("--server-key", "PRUNELAB_SERVER_KEY"));
  if (!sec.ok()) {
    std::fprintf(stderr, "prunelab: %s\n", sec.status().ToString().c_str());
    std::exit(2);
  }
  return sec.value();
}

pl::StatusOr<pl::Message> Ask(pl::RpcClient& rpc, const pl::Message& m, int timeout_ms) {
  if (timeout_ms < 0) timeout_ms = g_timeout_ms;
  auto reply = rpc.Call(m, timeout_ms);
  if (!reply.ok())
    return pl::Status::Unavailable(reply.status().message() +
                                   " (is prunelab-coordinator running there? pass --coordinator tcp://HOST:PORT)");
  if (auto* e = std::get_if<pl::ErrorMsg>(&reply.value())) {
    if (e->code == "invalid_spec") return pl::Status::InvalidArgument(e->message);
    if (e->code == "not_found") return pl::Status::NotFound(e->message);
    return pl::Status::Internal(e->code + ": " + e->message);
  }
  return reply;
}

pl::StatusOr<SweepData> FetchSweep(const Args& a, const std::string& id) {
  if (a.Has("--data-dir")) {
    auto store = pc::OpenRocksDbStore(a.Get("--data-dir") + "/store", /*read_only=*/true);
    if (!store.ok()) return store.status();
    auto results = pc::ReadResults(*store.value(), id);
    if (!results.ok()) return results.status();
    auto spec = pc::ReadSpecYaml(*store.value(), id);
    return SweepData{std::move(results).value(), spec.ok() ? spec.value() : ""};
  }
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  auto r = AskFor<pl::ResultsReplyMsg>(rpc, pl::ResultsRequestMsg{id}, 60000);
  if (!r.ok()) return r.status();
  return SweepData{std::move(r->results), std::move(r->spec_yaml)};
}

std::vector<pl::TrialResult> ResultRows(std::vector<pl::TrialResult> all) {
  std::vector<pl::TrialResult> rows;
  for (auto& r : all)
    if (pl::IsTableRow(r)) rows.push_back(std::move(r));
  return rows;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace prunelab::cli
