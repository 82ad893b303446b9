// prunelab submit, status, workers, sweeps, pause/resume/cancel, keygen.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/printf.h>

#include "common/base/hash.h"
#include "common/codec/records.h"
#include "common/net/artifact_fetch.h"
#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/local_cluster.h"
#include "coordinator/store/store_view.h"

namespace prunelab::cli {

namespace pc = ::prunelab::coordinator;

int CmdKeygen(const Args& a) {
  if (a.positional.empty()) return Fail("keygen needs a path prefix, e.g. prunelab keygen keys/worker-a");
  if (!pl::CurveAvailable()) return Fail("this libzmq has no CURVE support");
  auto keys = pl::GenerateCurveKeyPair();
  if (!keys.ok()) return Fail(keys.status().ToString());
  const std::string base = a.positional[0];
  if (auto st = pl::WriteKeyPair(base, keys.value()); !st.ok()) return Fail(st.ToString());
  std::printf("wrote %s.key (secret: keep it on this machine) and %s.pub (public key %s)\n"
              "add the .pub line to the coordinator's --allow-workers or --allow-clients file\n",
              base.c_str(), base.c_str(), keys->public_key.c_str());
  return 0;
}

void PrintSweeps(const std::vector<pl::SweepStatus>& sweeps, bool as_json) {
  if (as_json) {
    json arr = json::array();
    for (const auto& s : sweeps) arr.push_back(pl::ToJson(s));
    std::printf("%s\n", pl::DumpJson(arr, 2).c_str());
    return;
  }
  if (sweeps.empty()) std::printf("no sweeps\n");
  for (const auto& s : sweeps)
    std::printf("%-8s %-28s %-10s %u trials: %u done, %u failed, %u running, %u pending%s%s\n", s.id.c_str(),
                s.name.c_str(), s.state.c_str(), s.trials, s.done, s.failed, s.running, s.pending,
                s.note.empty() ? "" : " - ", s.note.c_str());
}

int CmdSweeps(const Args& a) {
  if (a.Has("--data-dir")) {
    auto store = pc::OpenRocksDbStore(a.Get("--data-dir") + "/store", true);
    if (!store.ok()) return Fail(store.status().ToString());
    auto s = pc::ReadSweepStatuses(*store.value());
    if (!s.ok()) return Fail(s.status().ToString());
    PrintSweeps(s.value(), a.Has("--json"));
    return 0;
  }
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  auto s = AskFor<pl::StatusReplyMsg>(rpc, pl::StatusRequestMsg{""});
  if (!s.ok()) return Fail(s.status().ToString());
  PrintSweeps(s->sweeps, a.Has("--json"));
  return 0;
}

int CmdStatus(const Args& a) {
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  std::string id = a.positional.empty() ? "" : a.positional[0];
  while (true) {
    auto s = AskFor<pl::StatusReplyMsg>(rpc, pl::StatusRequestMsg{id});
    if (!s.ok()) return Fail(s.status().ToString());
    bool all_done = true;
    for (const auto& sw : s->sweeps) all_done &= sw.state == "done" || sw.state == "cancelled";
    if (!a.Has("--wait") || all_done || g_interrupted) {
      PrintSweeps(s->sweeps, a.Has("--json"));
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
}

int CmdWorkers(const Args& a) {
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  auto w = AskFor<pl::WorkersReplyMsg>(rpc, pl::WorkersRequestMsg{});
  if (!w.ok()) return Fail(w.status().ToString());
  if (a.Has("--json")) {
    json arr = json::array();
    for (const auto& x : w->workers) arr.push_back(pl::ToJson(x));
    std::printf("%s\n", pl::DumpJson(arr, 2).c_str());
    return 0;
  }
  if (w->workers.empty()) std::printf("no workers registered\n");
  for (const auto& x : w->workers)
    std::printf("%-24s target=%-10s %-5s seen %.1f s ago  %s %s  | %s, %u cores, %u threads, %.1f GiB, torch %s, BLAS %s\n",
                x.worker_id.c_str(), x.target.c_str(), x.alive ? "alive" : "DEAD", x.last_seen_ms_ago / 1000.0,
                x.task_id.empty() ? "idle" : x.task_id.c_str(), x.phase.c_str(), x.hardware.cpu_model.c_str(),
                x.hardware.cores, x.hardware.threads, x.hardware.memory_bytes / 1073741824.0,
                x.hardware.torch_version.c_str(), x.hardware.blas.c_str());
  return 0;
}

// 128 random bits, hex: names one submission across resends.
std::string NewSubmissionId() {
  std::random_device rd;
  return fmt::sprintf("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}

// Submits, and when a reply does not come in time asks again with the same submission id
// (the coordinator stores a submission once and answers a resend with the sweep it stored), so
// the user learns the truth: the sweep's id, or that it was not confirmed.
// The user's model goes first, in hash-checked chunks (any size up to the coordinator's
// --max-artifact-mb; a refusal, e.g. the size limit, comes back on the first chunk), with
// progress on stderr; the submission then names it by its hash.
pl::Status UploadModel(pl::RpcClient& rpc, const std::string& hash, const std::string& bytes) {
  const bool tty = isatty(2);
  int last_decile = -1;
  pl::ChunkedUploadOptions uo;
  uo.on_progress = [&](uint64_t done, uint64_t total) {
    const int decile = static_cast<int>(10 * done / std::max<uint64_t>(1, total));
    if (tty || decile != last_decile)
      std::fprintf(stderr, "%suploading model.torchscript: %.1f / %.1f MiB%s", tty ? "\r" : "", done / 1048576.0,
                   total / 1048576.0, tty ? "" : "\n");
    last_decile = decile;
    return !g_interrupted;
  };
  pl::ChunkedUploadStats us;
  pl::Status st = pl::UploadArtifactChunked([&](const pl::Message& m) { return rpc.Call(m, g_timeout_ms); }, hash, bytes,
                                            uo, &us);
  if (tty && last_decile >= 0) std::fprintf(stderr, "\n");
  if (us.corrupt_chunks > 0) std::fprintf(stderr, "prunelab: %u chunk(s) arrived corrupted and were sent again\n", us.corrupt_chunks);
  if (st.ok()) return st;
  if (st.code() == pl::Status::Code::kUnavailable)
    return pl::Status::Unavailable("model upload: " + st.message() + ". Nothing was submitted; submit again when the coordinator answers");
  return pl::Status::InvalidArgument("model.torchscript refused by the coordinator: " + st.message());
}

pl::StatusOr<pl::SubmitReplyMsg> Submit(pl::RpcClient& rpc, pl::SubmitSweepMsg msg) {
  if (!msg.user_model.empty()) {
    msg.user_model_hash = pl::ContentHash(msg.user_model);
    PRUNELAB_RETURN_IF_ERROR(UploadModel(rpc, msg.user_model_hash, msg.user_model));
    msg.user_model.clear();
  }
  int timeout_ms = g_timeout_ms;
  pl::Status last = pl::Status::Ok();
  for (int attempt = 0; attempt < 4; ++attempt, timeout_ms *= 2) {
    auto reply = AskFor<pl::SubmitReplyMsg>(rpc, msg, timeout_ms);
    if (reply.ok()) {
      if (reply->already_stored)
        std::fprintf(stderr, "prunelab: the coordinator had stored this submission already as %s (an earlier reply "
                             "was lost); it is stored once\n", reply->sweep_id.c_str());
      return reply;
    }
    if (reply.status().code() != pl::Status::Code::kUnavailable) return reply.status();
    last = reply.status();
    std::fprintf(stderr, "prunelab: no reply within %.0f s; asking again with the same submission id (it is never "
                         "stored twice)\n", timeout_ms / 1000.0);
  }
  return pl::Status::Unavailable(last.message() + ". The submission was NOT confirmed: it may or may not be stored; "
                                 "`prunelab sweeps` shows what the coordinator has");
}

// The submit message for a spec file: the YAML, plus the user's TorchScript model file
// (model.torchscript, relative to the spec's directory) so remote workers can fetch it.
pl::StatusOr<pl::SubmitSweepMsg> SubmitMessage(const std::string& spec_path, const std::string& text,
                                               const pl::SweepSpec& spec) {
  pl::SubmitSweepMsg msg{text, "", NewSubmissionId()};
  if (spec.model_path.empty()) return msg;
  std::filesystem::path p(spec.model_path);
  if (p.is_relative()) p = std::filesystem::path(spec_path).parent_path() / p;
  auto bytes = pl::ReadRegularFile(p.string(), pl::kMaxUserModelBytes, "model.torchscript (a path relative to the spec file)");
  if (!bytes.ok()) return bytes.status();
  PRUNELAB_RETURN_IF_ERROR(pl::CheckTorchScriptBytes(bytes.value(), "model.torchscript '" + p.string() + "'"));
  msg.user_model = std::move(bytes).value();
  return msg;
}

// pause | resume | cancel a sweep on a running coordinator.
int CmdSweepControl(const Args& a) {
  if (a.positional.empty()) return Fail(a.command + " needs a sweep id, e.g. prunelab " + a.command + " sw-0001");
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  auto r = AskFor<pl::StatusReplyMsg>(rpc, pl::SweepControlMsg{a.positional[0], a.command});
  if (!r.ok()) return Fail(r.status().ToString());
  PrintSweeps(r->sweeps, a.Has("--json"));
  return 0;
}

int CmdSubmit(const Args& a) {
  if (a.positional.empty()) return Fail("submit needs a spec file, e.g. prunelab submit examples/fashion-mnist-quick.yaml");
  auto text = pl::ReadSpecFile(a.positional[0]);
  if (!text.ok()) return Fail(text.status().ToString());
  auto spec = pl::ParseSpec(text.value());  // fail fast, before the network
  if (!spec.ok()) return Fail(a.positional[0] + ": " + spec.status().message());
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  auto msg = SubmitMessage(a.positional[0], text.value(), spec.value());
  if (!msg.ok()) return Fail(msg.status().ToString());
  auto r = Submit(rpc, msg.value());
  if (!r.ok()) return Fail(r.status().ToString());
  std::printf("%s\n", r->sweep_id.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "submitted '%s' as %s (%u tasks); follow it with: prunelab status %s --wait\n",
               spec->name.c_str(), r->sweep_id.c_str(), r->tasks, r->sweep_id.c_str());
  return 0;
}


}  // namespace prunelab::cli
