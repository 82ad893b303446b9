// What the prunelab command-line client's command groups share: the parsed command line
// (Args), how a remote command asks the coordinator, how a command reads a sweep from a
// coordinator or a store, and every command's entry point. One file per command group:
//   cmd_run.cc      run (embedded coordinator + local workers)
//   cmd_sweeps.cc   submit, status, workers, sweeps, pause/resume/cancel, keygen
//   cmd_results.cc  results, pareto, report, compare, summary, sensitivity
//   cmd_export.cc   export (TorchScript, folded preprocessing, ONNX, a release)
//   cmd_release.cc  release, releases, rollback, evaluate, evaluations, policy
//   cli_main.cc     the command line (CLI11) and dispatch
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/status.h"
#include "common/base/types.h"
#include "common/codec/codec.h"
#include "common/net/keys.h"
#include "common/net/rpc.h"

namespace prunelab {
struct SweepSpec;
}

namespace prunelab::cli {

namespace pl = ::prunelab;
using nlohmann::json;

// Set by SIGINT/SIGTERM where a command installs the handler (run, evaluate --every/--watch).
extern std::atomic<bool> g_interrupted;
void OnSigint(int);
// How long a remote command waits for each reply (--timeout-ms).
extern int g_timeout_ms;

// The parsed command line. Numeric options arrive typed: CLI11 converted and range-checked
// them (an integer option refuses "1.5"), so commands read numbers, never re-parse text.
struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // every option given, as typed (Has, Get)
  std::map<std::string, double> numbers;     // numeric options, converted by CLI11
  bool Has(const std::string& f) const { return flags.count(f) > 0; }
  std::string Get(const std::string& f, const std::string& def = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? def : it->second;
  }
  double Number(const std::string& f, double def) const {
    auto it = numbers.find(f);
    return it == numbers.end() ? def : it->second;
  }
  int64_t Integer(const std::string& f, int64_t def) const { return static_cast<int64_t>(Number(f, def)); }
};

// Prints "prunelab: MSG" to stderr; returns the exit code 1.
int Fail(const std::string& msg);
std::string CoordinatorEndpoint(const Args& a);
// CURVE keys of this client, from flags or the environment; plain when neither is set.
pl::ClientSecurity ClientSec(const Args& a);

// Sends one request; an ErrorMsg reply becomes a Status carrying its text.
pl::StatusOr<pl::Message> Ask(pl::RpcClient& rpc, const pl::Message& m, int timeout_ms = -1);

template <typename T>
pl::StatusOr<T> AskFor(pl::RpcClient& rpc, const pl::Message& m, int timeout_ms = -1) {
  auto r = Ask(rpc, m, timeout_ms);
  if (!r.ok()) return r.status();
  if (auto* v = std::get_if<T>(&r.value())) return *v;
  return pl::Status::Internal(std::string("unexpected reply ") + pl::MessageName(r.value()));
}

struct SweepData {
  std::vector<pl::TrialResult> results;
  std::string spec_yaml;
};

// A sweep's results and spec, from --data-dir's store or the coordinator.
pl::StatusOr<SweepData> FetchSweep(const Args& a, const std::string& id);
// The rows the tables show (IsTableRow).
std::vector<pl::TrialResult> ResultRows(std::vector<pl::TrialResult> all);
double SecondsSince(std::chrono::steady_clock::time_point start);

// Used across groups: run submits as `submit` does; export --release asks as `release` does.
pl::StatusOr<pl::SubmitReplyMsg> Submit(pl::RpcClient& rpc, pl::SubmitSweepMsg msg);
pl::StatusOr<pl::SubmitSweepMsg> SubmitMessage(const std::string& spec_path, const std::string& text,
                                               const pl::SweepSpec& spec);
pl::StatusOr<json> RequestRelease(const Args& a, pl::ReleaseCommandMsg m);

int CmdRun(const Args& a);
int CmdSubmit(const Args& a);
int CmdStatus(const Args& a);
int CmdWorkers(const Args& a);
int CmdSweeps(const Args& a);
int CmdSweepControl(const Args& a);
int CmdKeygen(const Args& a);
int CmdResults(const Args& a);
int CmdPareto(const Args& a);
int CmdReport(const Args& a);
int CmdCompare(const Args& a);
int CmdSummary(const Args& a);
int CmdSensitivity(const Args& a);
int CmdExport(const Args& a);
int ExportRelease(const Args& a);
int CmdRelease(const Args& a);
int CmdReleases(const Args& a);
int CmdRollback(const Args& a);
int CmdEvaluate(const Args& a);
int CmdEvaluations(const Args& a);
int CmdPolicy(const Args& a);

}  // namespace prunelab::cli
