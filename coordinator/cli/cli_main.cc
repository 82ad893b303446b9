// prunelab: the command-line client. `run` embeds a coordinator and local workers;
// every other command talks to a coordinator (--coordinator) or reads a data directory
// (--data-dir) directly.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <set>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/printf.h>

#include "common/base/hash.h"
#include "common/flags/flags.h"
#include "common/net/artifact_fetch.h"
#include "common/base/clock.h"
#include "common/net/keys.h"
#include "common/codec/records.h"
#include "common/net/rpc.h"
#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "common/spec/zoo_names.h"
#include "common/spec/objectives.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/decide/decision.h"
#include "coordinator/decide/report.h"
#include "coordinator/decide/model_card.h"
#include "coordinator/decide/pareto.h"
#include "coordinator/cli/local_cluster.h"
#include "coordinator/cli/release_text.h"
#include "coordinator/service/service.h"
#include "coordinator/store/store_view.h"

namespace pl = prunelab;
namespace pc = prunelab::coordinator;
using nlohmann::json;

namespace {

std::atomic<bool> g_interrupted{false};
void OnSigint(int) { g_interrupted = true; }

const char* kUsage =
    "\nCommands in short:\n"
    "  run SPEC.yaml [--workers N] [--data-dir DIR] [--threads N] [--http PORT]\n"
    "        run a sweep locally: embedded coordinator + N worker processes; prints the Pareto table\n"
    "  submit SPEC.yaml [--coordinator tcp://HOST:PORT]      submit to a running coordinator; prints the sweep id\n"
    "  status [ID] [--wait]                                  progress of one or every sweep\n"
    "  results ID [--json]                                   every result of a sweep\n"
    "  pareto ID [--target NAME] [--json]                    Pareto fronts per target, release gates, the recommendation\n"
    "        [--objectives accuracy:max,latency_p90_ms:min,...] [--rule fastest|most_accurate|knee] [--max-drop PT] [--max-memory F]\n"
    "  report ID -o DIR                                      report.html (self-contained), report.md, results.json, results.csv, model cards\n"
    "  compare NEW OLD                                       gate a new sweep against a known-good one (exit 1 on a regression)\n"
    "  summary ID TRIAL [--scenario NAME]                    benchmark summaries (mlperf_log_summary style) of one result\n"
    "  export ID TRIAL -o DIR [--fold-preprocessing] [--format onnx]   the variant as TorchScript (model.pt; and model.onnx) + model card\n"
    "  sensitivity ID                                        per-layer accuracy curves of a sensitivity sweep\n"
    "  pause ID | resume ID | cancel ID                      hold a sweep's queued tasks / release them / fail what is unfinished\n"
    "  workers [--json]                                      registered workers and their hardware\n"
    "  sweeps [--json]                                       sweeps in the store\n"
    "  keygen DIR/NAME                                       CURVE key pair: NAME.key (secret, 0600) and NAME.pub\n"
    "  release ID TRIAL --target T [--note TEXT] [--force --reason TEXT] [--wait]   promote a variant (or 'recommended') to T's next release\n"
    "  releases [--target T] [--json]                        release history per target: versions, events, latest evaluations\n"
    "  rollback --target T [--to vN] [--reason TEXT]         back to the last known-good release (recorded as an event)\n"
    "  evaluate --target T --data DIR [--dense] [--every MIN | --watch DIR]   the current release on new data: accuracy, drift, latency\n"
    "  evaluations [--target T] [--limit N] [--json]         evaluation records with their levels\n"
    "  policy --target T [--on-critical notify|rollback|resweep] [--psi W,C] ...   thresholds and what happens on critical\n"
    "  export --release T -o DIR                             the current release of T (model.pt, card, release.json)\n"
    "  results, pareto, report, compare, summary, export, sensitivity and sweeps take --data-dir DIR instead of --coordinator to read a store directly.\n"
    "  --coordinator defaults to $PRUNELAB_COORDINATOR or tcp://127.0.0.1:5556 (the coordinator's client endpoint).\n"
    "  With a CURVE coordinator: --curve-key NAME.key --server-key coordinator.pub (or $PRUNELAB_CURVE_KEY,\n"
    "  $PRUNELAB_SERVER_KEY); NAME.pub must be in the coordinator's --allow-clients list.\n";

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool Has(const std::string& f) const { return flags.count(f) > 0; }
  std::string Get(const std::string& f, const std::string& def = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? def : it->second;
  }
};

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

// Sends one request; an ErrorMsg reply becomes a Status carrying its text.
// How long a remote command waits for each reply (--timeout-ms).
int g_timeout_ms = 15000;

pl::StatusOr<pl::Message> Ask(pl::RpcClient& rpc, const pl::Message& m, int timeout_ms = -1) {
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

pl::StatusOr<std::vector<pl::TrialResult>> FetchResults(const Args& a, const std::string& id) {
  auto d = FetchSweep(a, id);
  if (!d.ok()) return d.status();
  return std::move(d->results);
}

// Objectives, gates and rule: the sweep spec's `report` section, then command-line overrides.
pl::StatusOr<pc::DecisionOptions> DecisionOptionsFor(const Args& a, const std::string& spec_yaml) {
  pc::DecisionOptions o;
  if (!spec_yaml.empty()) {
    auto spec = pl::ParseSpec(spec_yaml);
    if (spec.ok()) {
      auto from = pc::OptionsFromSpec(spec->report);
      if (!from.ok()) return from.status();
      o = from.value();
    }
  }
  if (a.Has("--objectives")) {
    auto objs = pl::ParseObjectives(a.Get("--objectives"));
    if (!objs.ok()) return pl::Status::InvalidArgument("--objectives: " + objs.status().message());
    o.objectives = objs.value();
  }
  if (a.Has("--rule")) {
    std::string r = a.Get("--rule");
    if (r != "fastest" && r != "most_accurate" && r != "knee")
      return pl::Status::InvalidArgument("--rule '" + r + "' (allowed: fastest, most_accurate, knee)");
    o.rule = r;
  }
  // Numbers were validated by the command line parser.
  if (a.Has("--max-drop")) o.gates.max_accuracy_drop = std::stod(a.Get("--max-drop"));
  if (a.Has("--max-memory")) o.gates.max_memory_fraction = std::stod(a.Get("--max-memory"));
  return o;
}

std::string SweepName(const std::string& spec_yaml) {
  auto spec = pl::ParseSpec(spec_yaml);
  return spec.ok() ? spec->name : "";
}

std::vector<pl::TrialResult> ResultRows(std::vector<pl::TrialResult> all) {
  std::vector<pl::TrialResult> rows;
  for (auto& r : all)
    if (pl::IsTableRow(r)) rows.push_back(std::move(r));
  return rows;
}

json ParetoJson(const std::string& id, const std::vector<pl::TrialResult>& results, const std::string& target) {
  json out{{"sweep", id}, {"objectives", json::array({{{"field", "accuracy"}, {"direction", "max"}},
                                                      {{"field", "latency_p90_ms"}, {"direction", "min"}}})},
           {"targets", json::array()}};
  for (const auto& f : pc::FrontsByTarget(results)) {
    if (!target.empty() && f.target != target) continue;
    json front = json::array();
    for (const auto* r : f.front) front.push_back(pl::ToJson(*r));
    out["targets"].push_back({{"target", f.target},
                              {"baseline", f.baseline ? pl::ToJson(*f.baseline) : json(nullptr)},
                              {"front", front},
                              {"variants", f.ok_variants},
                              {"failed", f.failed}});
  }
  return out;
}

int CmdResults(const Args& a) {
  if (a.positional.empty()) return Fail("results needs a sweep id (see `prunelab sweeps`)");
  auto r = FetchResults(a, a.positional[0]);
  if (!r.ok()) return Fail(r.status().ToString());
  auto rows = ResultRows(std::move(r).value());
  if (a.Has("--json")) {
    for (const auto& row : rows) std::printf("%s\n", pl::DumpJson(pl::ToJson(row)).c_str());
  } else {
    std::printf("%s", pc::FormatResultsTable(rows).c_str());
  }
  return 0;
}

int CmdPareto(const Args& a) {
  if (a.positional.empty()) return Fail("pareto needs a sweep id (see `prunelab sweeps`)");
  auto d = FetchSweep(a, a.positional[0]);
  if (!d.ok()) return Fail(d.status().ToString());
  auto opts = DecisionOptionsFor(a, d->spec_yaml);
  if (!opts.ok()) return Fail(opts.status().ToString());
  std::string target = a.Get("--target");
  std::vector<pl::TrialResult> rows;
  for (const auto& r : d->results)
    if (target.empty() || r.target == target) rows.push_back(r);
  auto decisions = pc::Decide(rows, opts.value());
  if (a.Has("--json")) {
    json out = ParetoJson(a.positional[0], d->results, target);
    out["decisions"] = pc::DecisionsJson(decisions, opts.value());
    std::printf("%s\n", pl::DumpJson(out, 2).c_str());
  } else {
    std::printf("%s", pc::FormatParetoTable(d->results, target).c_str());
    std::printf("%s", pc::FormatDecisions(decisions, opts.value()).c_str());
  }
  return 0;
}

int CmdReport(const Args& a) {
  std::string dir = a.Get("--out");
  if (a.positional.empty() || dir.empty()) return Fail("report needs a sweep id and an output directory, e.g. prunelab report sw-0001 -o report/");
  auto d = FetchSweep(a, a.positional[0]);
  if (!d.ok()) return Fail(d.status().ToString());
  auto opts = DecisionOptionsFor(a, d->spec_yaml);
  if (!opts.ok()) return Fail(opts.status().ToString());
  pc::ReportInput in{a.positional[0], SweepName(d->spec_yaml), &d->results, opts.value()};
  auto written = pc::WriteReport(dir, in);
  if (!written.ok()) return Fail(written.status().ToString());
  for (const auto& t : pc::Decide(d->results, opts.value()))
    std::printf("%s: %s\n", t.target.c_str(),
                t.recommended ? (t.recommended->task_id + " (" + pc::DescribeVariant(*t.recommended) + ") — " + t.why).c_str()
                              : ("no recommendation — " + t.why).c_str());
  std::printf("wrote %zu files; open %s/report.html\n", written->size(), dir.c_str());
  return 0;
}

// Gates a new sweep against a known-good one: per target, the recommended variants compared.
int CmdCompare(const Args& a) {
  if (a.positional.size() < 2) return Fail("compare needs two sweep ids: prunelab compare NEW OLD");
  auto now = FetchSweep(a, a.positional[0]);
  if (!now.ok()) return Fail(now.status().ToString());
  auto old = FetchSweep(a, a.positional[1]);
  if (!old.ok()) return Fail(old.status().ToString());
  auto opts = DecisionOptionsFor(a, now->spec_yaml);
  if (!opts.ok()) return Fail(opts.status().ToString());
  auto new_spec = pl::ParseSpec(now->spec_yaml), old_spec = pl::ParseSpec(old->spec_yaml);
  if (new_spec.ok() && old_spec.ok() && new_spec->model != old_spec->model)
    return Fail("the sweeps are for different models (" + new_spec->model + " vs " + old_spec->model + "): nothing to compare");
  double acc_tol = a.Has("--accuracy-tolerance") ? std::stod(a.Get("--accuracy-tolerance")) : 0.5;
  double lat_tol = a.Has("--latency-tolerance") ? std::stod(a.Get("--latency-tolerance")) : 0.10;
  auto dn = pc::Decide(now->results, opts.value());
  auto dold = pc::Decide(old->results, opts.value());
  int regressions = 0;
  std::printf("comparing %s (new) with %s (known good); tolerances: accuracy %.2f points, p90 latency +%.0f%%\n",
              a.positional[0].c_str(), a.positional[1].c_str(), acc_tol, lat_tol * 100);
  for (const auto& t : dn) {
    const pc::TargetDecision* o = nullptr;
    for (const auto& x : dold)
      if (x.target == t.target) o = &x;
    if (!o || !o->recommended) {
      std::printf("  %s: no known-good recommendation to compare with\n", t.target.c_str());
      continue;
    }
    if (!t.recommended) {
      std::printf("  %s: REGRESSION: nothing passes the gates now (known good: %s, %s)\n", t.target.c_str(),
                  o->recommended->task_id.c_str(), pc::DescribeVariant(*o->recommended).c_str());
      ++regressions;
      continue;
    }
    const auto &n = *t.recommended, &k = *o->recommended;
    double dacc = (n.accuracy - k.accuracy) * 100;
    double dlat = k.latency_p90_ms > 0 ? n.latency_p90_ms / k.latency_p90_ms - 1 : 0;
    bool acc_bad = dacc < -acc_tol, lat_bad = dlat > lat_tol;
    regressions += acc_bad + lat_bad;
    std::printf("  %s: %s (%s) %.2f %%, p90 %.3f ms vs %s (%s) %.2f %%, p90 %.3f ms: accuracy %+.2f pt%s, p90 %+.1f%%%s\n",
                t.target.c_str(), n.task_id.c_str(), pc::DescribeVariant(n).c_str(), n.accuracy * 100, n.latency_p90_ms,
                k.task_id.c_str(), pc::DescribeVariant(k).c_str(), k.accuracy * 100, k.latency_p90_ms, dacc,
                acc_bad ? " REGRESSION" : "", dlat * 100, lat_bad ? " REGRESSION" : "");
  }
  std::printf(regressions ? "FAIL: %d regression(s)\n" : "PASS: no regression\n", regressions);
  return regressions ? 1 : 0;
}

int CmdSummary(const Args& a) {
  if (a.positional.size() < 2) return Fail("summary needs a sweep id and a trial, e.g. prunelab summary sw-0001 t003@local");
  auto r = FetchResults(a, a.positional[0]);
  if (!r.ok()) return Fail(r.status().ToString());
  for (const auto& row : r.value()) {
    if (row.task_id != a.positional[1]) continue;
    if (row.benchmark_json.empty()) return Fail(row.task_id + " has no benchmark detail (" + (row.ok ? "not benchmarked" : "failed: " + row.error) + ")");
    auto j = pl::ParseJson(row.benchmark_json);
    if (!j.ok()) return Fail("benchmark detail of " + row.task_id + " is not JSON");
    std::string only = a.Get("--scenario");
    int shown = 0;
    for (const auto& s : (*j)["scenarios"]) {
      if (!only.empty() && s.value("scenario", "") != only) continue;
      std::printf("%s\n", s.value("summary", "").c_str());
      ++shown;
    }
    if (j->contains("forms")) {
      std::printf("Execution forms measured (single-stream):\n");
      for (const auto& f : (*j)["forms"])
        std::printf("  %-6s p50 %.4f ms  p90 %.4f ms  p99 %.4f ms%s\n", f.value("form", "").c_str(), f.value("p50_ms", 0.0),
                    f.value("p90_ms", 0.0), f.value("p99_ms", 0.0), f.value("chosen", false) ? "  <- deployable" : "");
    }
    if (j->contains("ab")) {
      const auto& ab = (*j)["ab"];
      std::printf("Speedup vs dense baseline (p90, interleaved A/B, %zu rounds): median %.2fx, min %.2fx, max %.2fx\n",
                  ab["rounds"].size(), ab.value("speedup_p90_median", 0.0), ab.value("speedup_p90_min", 0.0),
                  ab.value("speedup_p90_max", 0.0));
    }
    if (j->contains("interference")) {
      const auto& in = (*j)["interference"];
      std::printf("Interference from the rest of the machine (%zu run(s)): %s\n", in["attempts"].size(),
                  in.value("verdict", "?").c_str());
      int n = 0;
      for (const auto& at : in["attempts"]) {
        std::printf("  run %d: other processes %.2f cores, steal %.1f %%%s%s\n", ++n, at.value("other_cores", 0.0),
                    100 * at.value("steal_fraction", 0.0),
                    at.contains("freq_min_ratio") ? (", frequency down to " +
                                                     std::to_string(static_cast<int>(100 * at.value("freq_min_ratio", 1.0))) + " %").c_str()
                                                  : ", frequency not visible",
                    at.contains("error") ? (" (" + at.value("error", "") + ")").c_str() : "");
        for (const auto& why : at.value("invalid_reasons", nlohmann::json::array())) std::printf("    %s\n", why.get<std::string>().c_str());
      }
    }
    if (!only.empty() && shown == 0) return Fail("no '" + only + "' run in " + row.task_id);
    return 0;
  }
  return Fail("no result '" + a.positional[1] + "' in " + a.positional[0] + " (see `prunelab results " + a.positional[0] + "`)");
}

pl::StatusOr<std::string> FetchArtifact(const Args& a, const std::string& hash) {
  if (a.Has("--data-dir")) {
    auto store = pc::OpenRocksDbStore(a.Get("--data-dir") + "/store", /*read_only=*/true);
    if (!store.ok()) return store.status();
    auto artifacts = pc::OpenFileArtifactStore(a.Get("--data-dir") + "/artifacts", store.value().get(), 0, /*read_only=*/true);
    if (!artifacts.ok()) return artifacts.status();
    auto size = artifacts.value()->Size(hash);
    if (!size.ok()) return size.status();
    if (!size.value()) return pl::Status::NotFound("artifact " + hash + " is not in " + a.Get("--data-dir"));
    auto bytes = artifacts.value()->Read(hash, 0, *size.value());
    if (bytes.ok() && !pl::MatchesContentName(hash, bytes.value()))
      return pl::Status::Corruption("artifact " + hash + " in " + a.Get("--data-dir") + " does not match its hash");
    return bytes;
  }
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  return pl::FetchArtifactChunked([&](const pl::Message& m) { return rpc.Call(m, 60000); }, hash);
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  return static_cast<bool>(out);
}

// Runs a program (no shell) and waits; its exit status, or -1 when it could not start.
int RunProgram(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid < 0) return -1;
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string Csv(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ",") + fmt::sprintf("%.9g", x);
  return s;
}

// --fold-preprocessing: what the worker did to the sweep's data before the model saw it,
// folded into model.pt by prunelab-fold (beside this binary; it links LibTorch, the CLI does not).
pl::Status FoldInto(const std::string& model_path, const std::string& spec_yaml, json* card) {
  auto spec = pl::ParseSpec(spec_yaml);
  if (!spec.ok()) return pl::Status::InvalidArgument("the sweep's spec is not readable: " + spec.status().message());
  std::vector<int64_t> shape = pl::SampleShapeOr(spec->input_shape);
  std::vector<double> mean = spec->dataset.mean, stdev = spec->dataset.std;
  if (spec->dataset.name != "npy" && spec->dataset.name != "folder") mean = {0.2860}, stdev = {0.3530};
  std::string shape_csv;
  for (int64_t d : shape) shape_csv += (shape_csv.empty() ? "" : ",") + std::to_string(d);
  std::error_code ec;
  const std::string bin = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "prunelab-fold").string();
  const std::string folded = model_path + ".folded";
  std::vector<std::string> argv{bin, "--in", model_path, "--out", folded, "--input-shape", shape_csv};
  if (!mean.empty()) argv.insert(argv.end(), {"--mean", Csv(mean)});
  if (!stdev.empty()) argv.insert(argv.end(), {"--std", Csv(stdev)});
  const int rc = RunProgram(argv);
  if (rc != 0)
    return pl::Status::Internal(rc == 127 || rc == -1 ? "prunelab-fold not found at " + bin + " (build it)"
                                                      : "prunelab-fold failed (exit " + std::to_string(rc) + ", see above)");
  std::filesystem::rename(folded, model_path, ec);
  if (ec) return pl::Status::IoError("cannot move " + folded + " into place: " + ec.message());
  auto& in = (*card)["input"];
  in["dtype"] = "pixel values 0-255, uint8 or float";
  in["layout"] = "N x C x H x W, C of 1, 3 or 4 (alpha dropped; gray and RGB converted), any H x W (resized)";
  in["preprocessing"] = "folded into the module: / 255, channels converted, bilinear resize to " + shape_csv +
                        ", (x - [" + Csv(mean) + "]) / [" + Csv(stdev) + "]; give it raw pixels";
  in["folded"] = true;
  return pl::Status::Ok();
}

// --format onnx: model.onnx beside model.pt, made and validated by prunelab-onnx (beside this
// binary: it links LibTorch and OpenCV; PyTorch's exporter runs in python3-torch).
pl::Status OnnxInto(const std::string& dir, const std::string& spec_yaml, json* card) {
  std::error_code ec;
  const std::string bin = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "prunelab-onnx").string();
  if (!std::filesystem::exists(bin))
    return pl::Status::Internal("prunelab-onnx not found at " + bin +
                                " (it is built where OpenCV DNN is installed: cluster/install-deps.sh installs libopencv-dnn-dev)");
  const std::string spec = dir + "/.sweep-spec.yaml", report = dir + "/.onnx-report.json";
  if (!WriteFile(spec, spec_yaml)) return pl::Status::IoError("cannot write into " + dir);
  const int rc = RunProgram({bin, "--model", dir + "/model.pt", "--onnx", dir + "/model.onnx", "--spec", spec, "--report", report});
  std::filesystem::remove(spec, ec);
  std::ifstream in(report, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(report, ec);
  if (rc != 0 && rc != 3) return pl::Status::InvalidArgument("the variant was not exported to ONNX (prunelab-onnx exit " + std::to_string(rc) + ", the reason is above)");
  auto j = pl::ParseJson(text);
  if (!j.ok()) return pl::Status::Internal("prunelab-onnx wrote no report");
  (*card)["onnx"] = j.value();
  (*card)["onnx"]["file"] = "model.onnx";
  if (rc == 3) return pl::Status::InvalidArgument("OpenCV's test accuracy differs from LibTorch's (model_card.json: onnx)");
  return pl::Status::Ok();
}

pl::StatusOr<json> RequestRelease(const Args& a, pl::ReleaseCommandMsg m);
int ExportRelease(const Args& a);

int CmdExport(const Args& a) {
  std::string dir = a.Get("--out");
  const bool onnx = a.Get("--format") == "onnx";
  if (a.Has("--release")) return ExportRelease(a);
  if (onnx && a.Has("--fold-preprocessing"))
    return Fail("--fold-preprocessing applies to --format torchscript (ONNX takes the model's own input; see the card)");
  if (a.positional.size() < 2 || dir.empty())
    return Fail("export needs a sweep id, a trial (or base@TARGET) and an output directory, e.g. prunelab export sw-0001 t003@local -o out/"
                " (or --release TARGET for the target's current release)");
  auto sweep = FetchSweep(a, a.positional[0]);
  if (!sweep.ok()) return Fail(sweep.status().ToString());
  pl::StatusOr<std::vector<pl::TrialResult>> rows = std::move(sweep->results);
  const pl::TrialResult* row = nullptr;
  const pl::TrialResult* base = nullptr;
  for (const auto& r : rows.value())
    if (r.task_id == a.positional[1]) row = &r;
  if (!row) return Fail("no result '" + a.positional[1] + "' in " + a.positional[0] + " (see `prunelab results " + a.positional[0] + "`)");
  for (const auto& r : rows.value())
    if (r.baseline && r.ok && r.target == row->target) base = &r;
  if (!row->ok) return Fail(row->task_id + " failed (" + row->error + "): nothing to export");
  std::string artifact = row->artifact_hash;
  // A dense baseline's benchmark rows (base@TARGET) measure the model the sweep's training
  // task stored: export that one.
  if (artifact.empty() && row->baseline)
    for (const auto& r : rows.value())
      if (r.kind == pl::TaskKind::kTrainBaseline && r.ok && !r.artifact_hash.empty()) artifact = r.artifact_hash;
  if (artifact.empty())
    return Fail(row->task_id + " has no stored model (intermediate rounds and sensitivity trials are not kept; export a final trial)");
  auto bytes = FetchArtifact(a, artifact);
  if (!bytes.ok()) return Fail(bytes.status().ToString());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail("cannot create " + dir + ": " + ec.message());
  json card = pc::ModelCard(*row, base);
  if (card.contains("perplexity") && (onnx || a.Has("--fold-preprocessing")))
    return Fail(std::string(onnx ? "--format onnx" : "--fold-preprocessing") +
                ": not built yet for language models (their export is the TorchScript file and its card; run without it)");
  if (!WriteFile(dir + "/model.pt", bytes.value())) return Fail("cannot write into " + dir);
  if (a.Has("--fold-preprocessing"))
    if (pl::Status st = FoldInto(dir + "/model.pt", sweep->spec_yaml, &card); !st.ok())
      return Fail("--fold-preprocessing: " + st.ToString());
  pl::Status onnx_status = onnx ? OnnxInto(dir, sweep->spec_yaml, &card) : pl::Status::Ok();
  if (!WriteFile(dir + "/model_card.json", pl::DumpJson(card, 2) + "\n") ||
      !WriteFile(dir + "/model_card.md", pc::ModelCardMarkdown(card)))
    return Fail("cannot write into " + dir);
  if (!onnx_status.ok()) return Fail("--format onnx: " + onnx_status.ToString());
  if (onnx) {
    const json& o = card["onnx"];
    std::printf("model.onnx (opset %d): onnx.checker ok; %s: max |difference| %.3g over %d test samples (outputs up to %.3g); "
                "test accuracy %.2f %% in LibTorch and in OpenCV (%d samples)\n",
                o.value("opset", 0), o.value("runtime", std::string("?")).c_str(), o.value("max_abs_diff", 0.0),
                o.value("samples_compared", 0), o.value("output_max_abs", 0.0), 100 * o.value("accuracy_opencv", 0.0),
                o.value("test_samples", 0));
  }
  std::error_code size_ec;
  std::printf("exported %s %s to %s: model.pt (%ju bytes%s), model_card.json, model_card.md\n", a.positional[0].c_str(),
              row->task_id.c_str(), dir.c_str(), static_cast<uintmax_t>(std::filesystem::file_size(dir + "/model.pt", size_ec)),
              a.Has("--fold-preprocessing") ? "; takes raw pixels 0-255, preprocessing folded in" : "");
  std::printf("load it in Python: torch.jit.load('%s/model.pt')\n", dir.c_str());
  return 0;
}

// export --release T: the target's current release, as `export SWEEP TRIAL` writes it, plus
// release.json (version, who, when, gates, changelog, reference).
int ExportRelease(const Args& a) {
  if (!a.positional.empty()) return Fail("export --release takes no sweep id or trial (the release names them)");
  pl::ReleaseCommandMsg m;
  m.action = "releases";
  m.target = a.Get("--release");
  auto h = RequestRelease(a, m);
  if (!h.ok()) return Fail(h.status().ToString());
  json current;
  for (const auto& t : (*h)["targets"])
    for (const auto& r : t["releases"])
      if (r.value("current", false)) current = r;
  if (!current.is_object()) return Fail("target '" + m.target + "' has no release (prunelab releases lists them)");
  Args inner = a;
  inner.flags.erase("--release");
  inner.positional = {current.value("sweep", ""), current.value("trial", "")};
  if (int rc = CmdExport(inner); rc != 0) return rc;
  if (!WriteFile(a.Get("--out") + "/release.json", pl::DumpJson(current, 2) + "\n")) return Fail("cannot write into " + a.Get("--out"));
  std::printf("release %s of target %s (%s %s): release.json written beside it\n", current.value("version", "").c_str(),
              m.target.c_str(), current.value("sweep", "").c_str(), current.value("trial", "").c_str());
  return 0;
}

// Per-layer curves of a sensitivity sweep: accuracy when only that layer is pruned.
int CmdSensitivity(const Args& a) {
  if (a.positional.empty()) return Fail("sensitivity needs a sweep id, e.g. prunelab sensitivity sw-0002");
  auto rows = FetchResults(a, a.positional[0]);
  if (!rows.ok()) return Fail(rows.status().ToString());
  std::map<std::string, std::map<double, const pl::TrialResult*>> curves;  // "target layer crit gran" -> sparsity -> row
  std::set<double> sparsities;
  double base = -1;
  for (const auto& r : rows.value()) {
    if (r.baseline && r.ok) base = r.accuracy;
    if (r.schedule != "sensitivity") continue;
    curves[r.target + "  " + r.layer + "  " + r.criterion + " " + r.granularity][r.sparsity] = &r;
    sparsities.insert(r.sparsity);
  }
  if (curves.empty()) return Fail(a.positional[0] + " has no sensitivity trials (use sweep.mode: sensitivity)");
  if (a.Has("--json")) {
    json out = json::array();
    for (const auto& [key, pts] : curves) {
      json p = json::array();
      for (const auto& [s, r] : pts)
        p.push_back({{"sparsity", s}, {"status", r->ok ? "ok" : "failed"}, {"accuracy", r->accuracy}, {"error", r->error}});
      out.push_back({{"curve", key}, {"points", p}});
    }
    std::printf("%s\n", pl::DumpJson(out, 2).c_str());
    return 0;
  }
  std::printf("%-44s", "target  layer  criterion granularity");
  for (double s : sparsities) std::printf(" %7.0f%%", 100 * s);
  std::printf("\n");
  for (const auto& [key, pts] : curves) {
    std::printf("%-44s", key.c_str());
    for (double s : sparsities) {
      auto it = pts.find(s);
      if (it == pts.end()) std::printf(" %8s", "-");
      else if (!it->second->ok) std::printf(" %8s", "failed");
      else std::printf(" %7.2f%%", 100 * it->second->accuracy);
    }
    std::printf("\n");
  }
  if (base >= 0) std::printf("(top-1 test accuracy with only that layer pruned, no fine-tuning; dense baseline %.2f%%)\n", 100 * base);
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
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
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


// ---- releases, rollback, continuous evaluation ----

double SecondsSince(std::chrono::steady_clock::time_point start);

// Who is asking, as the OS knows it (under CURVE the coordinator records the client's key instead).
std::string OsUser() {
  if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_name) return pw->pw_name;
  const char* u = std::getenv("USER");
  return u ? u : "unknown";
}

pl::StatusOr<json> AskRelease(pl::RpcClient& rpc, pl::ReleaseCommandMsg m) {
  m.released_by = OsUser();
  auto r = AskFor<pl::ReleaseReplyMsg>(rpc, m);
  if (!r.ok()) return r.status();
  auto j = pl::ParseJson(r->json);
  if (!j.ok()) return pl::Status::Internal("the coordinator's reply is not JSON");
  return j;
}

// One request on its own connection (commands that do not wait for anything).
pl::StatusOr<json> RequestRelease(const Args& a, pl::ReleaseCommandMsg m) {
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  return AskRelease(rpc, std::move(m));
}

// Prints a reply document as JSON (--json) or as `text` makes it.
int Show(const Args& a, const pl::StatusOr<json>& r, const std::function<std::string(const json&)>& text) {
  if (!r.ok()) return Fail(r.status().ToString());
  if (a.Has("--json")) std::printf("%s\n", pl::DumpJson(r.value(), 2).c_str());
  else std::printf("%s", text(r.value()).c_str());
  return 0;
}

// Waits for a one-task evaluation job (ev-NNNNNN) to end, showing progress.
pl::Status WaitForJob(pl::RpcClient& rpc, const std::string& id) {
  const bool tty = isatty(2);
  auto start = std::chrono::steady_clock::now();
  auto last = start;
  while (!g_interrupted) {
    auto st = AskFor<pl::StatusReplyMsg>(rpc, pl::StatusRequestMsg{id});
    if (!st.ok()) return st.status();
    if (st->sweeps.empty()) return pl::Status::NotFound("no evaluation job " + id);
    const auto& s = st->sweeps[0];
    if (s.state == "done" || s.state == "cancelled") break;
    auto wk = AskFor<pl::WorkersReplyMsg>(rpc, pl::WorkersRequestMsg{});
    std::string where = s.running ? "running" : "waiting for a worker of its target";
    if (wk.ok())
      for (const auto& w : wk->workers)
        if (w.alive && w.task_id.rfind(id + "/", 0) == 0) where = "on " + w.worker_id + ": " + w.phase;
    std::string line = fmt::sprintf("[%4.0f s] %s %s", SecondsSince(start), id, where);
    if (tty) std::fprintf(stderr, "\r\033[K%s", line.substr(0, 160).c_str());
    else if (std::chrono::steady_clock::now() - last > std::chrono::seconds(10)) std::fprintf(stderr, "%s\n", line.c_str()), last = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (g_interrupted) return pl::Status::Unavailable("interrupted; the evaluation goes on (prunelab evaluations shows it)");
  return pl::Status::Ok();
}

pl::StatusOr<json> FindEvaluation(pl::RpcClient& rpc, const std::string& target, const std::string& id) {
  pl::ReleaseCommandMsg m;
  m.action = "evaluations";
  m.target = target;
  m.limit = 1000;
  auto j = AskRelease(rpc, m);
  if (!j.ok()) return j.status();
  for (const auto& e : (*j)["evaluations"])
    if (e.value("id", "") == id) return e;
  return pl::Status::NotFound("no evaluation " + id + " of " + target);
}

int CmdRelease(const Args& a) {
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  pl::ReleaseCommandMsg m;
  m.action = "release";
  m.sweep_id = a.positional[0];
  m.trial = a.positional[1];
  m.target = a.Get("--target");
  m.note = a.Get("--note");
  m.force = a.Has("--force");
  m.reason = a.Get("--reason");
  auto r = AskRelease(rpc, m);
  if (!r.ok()) return Fail(r.status().ToString());
  const std::string ref = r->value("reference_evaluation", "");
  if (!a.Has("--json")) {
    std::printf("released %s", pc::FormatRelease(r.value()).c_str());
    std::printf("  reference run %s queued on target %s: it fixes the drift bins and the teacher's figures on this data\n",
                ref.c_str(), m.target.c_str());
  }
  if (!a.Has("--wait")) {
    if (a.Has("--json")) std::printf("%s\n", pl::DumpJson(r.value(), 2).c_str());
    else std::printf("  follow it: prunelab releases --target %s (or release with --wait)\n", m.target.c_str());
    return 0;
  }
  if (auto st = WaitForJob(rpc, ref); !st.ok()) return Fail(st.ToString());
  auto e = FindEvaluation(rpc, m.target, ref);
  if (!e.ok()) return Fail(e.status().ToString());
  if (a.Has("--json")) std::printf("%s\n", pl::DumpJson(json{{"release", r.value()}, {"reference", e.value()}}, 2).c_str());
  else std::printf("%s", pc::FormatEvaluation(e.value()).c_str());
  return e->value("state", "") == "done" ? 0 : 1;
}

int CmdReleases(const Args& a) {
  pl::ReleaseCommandMsg m;
  m.action = "releases";
  m.target = a.Get("--target");
  return Show(a, RequestRelease(a, m), [](const json& r) { return pc::FormatReleaseHistory(r); });
}

int CmdRollback(const Args& a) {
  pl::ReleaseCommandMsg m;
  m.action = "rollback";
  m.target = a.Get("--target");
  m.version = a.Get("--to");
  m.reason = a.Get("--reason");
  return Show(a, RequestRelease(a, m), [&](const json& r) {
    return "target " + m.target + " rolled back from " + r.value("from", "") + " to " + r.value("to", "") +
           " (recorded as an event; nothing deleted)\n";
  });
}

// The format of a dataset directory, from the files in it.
std::string DetectFormat(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir + "/test_images.npy", ec)) return "npy";
  if (fs::exists(dir + "/t10k-images-idx3-ubyte.gz", ec) || fs::exists(dir + "/t10k-images-idx3-ubyte", ec)) return "fashion-mnist";
  if (fs::is_directory(dir + "/test", ec) || fs::is_directory(dir + "/val", ec)) return "folder";
  return "";
}

// One evaluation of the target's current release on `dir`; prints it. 0 when it ran.
int EvaluateOnce(pl::RpcClient& rpc, const Args& a, const std::string& dir) {
  pl::ReleaseCommandMsg m;
  m.action = "evaluate";
  m.target = a.Get("--target");
  std::error_code ec;
  m.data_path = std::filesystem::absolute(dir, ec).lexically_normal().string();
  m.data_format = a.Get("--format", DetectFormat(m.data_path));
  if (m.data_format.empty())
    return Fail("--data " + dir + ": no test_images.npy (npy), t10k-images-idx3-ubyte[.gz] (fashion-mnist) or test/ (folder) "
                "in it; pass --format if the target's workers see files this machine does not");
  m.compare_dense = a.Has("--dense");
  if (a.Has("--subset")) m.subset = static_cast<uint32_t>(std::stoul(a.Get("--subset")));
  auto r = AskRelease(rpc, m);
  if (!r.ok()) return Fail(r.status().ToString());
  const std::string id = r->value("id", "");
  std::fprintf(stderr, "prunelab: evaluation %s of %s %s on %s queued\n", id.c_str(), m.target.c_str(),
               r->value("release", "").c_str(), m.data_path.c_str());
  if (a.Has("--no-wait")) {
    std::printf("%s\n", id.c_str());
    return 0;
  }
  if (auto st = WaitForJob(rpc, id); !st.ok()) return Fail(st.ToString());
  auto e = FindEvaluation(rpc, m.target, id);
  if (!e.ok()) return Fail(e.status().ToString());
  if (a.Has("--json")) std::printf("%s\n", pl::DumpJson(e.value()).c_str());
  else std::printf("%s", pc::FormatEvaluation(e.value()).c_str());
  std::fflush(stdout);
  return e->value("state", "") == "done" ? 0 : 1;
}

// evaluate: once on --data; every --every minutes on --data; or each new sub-directory of
// --watch (those already evaluated for the target, by path, are skipped), until Ctrl-C or
// --max-evaluations.
int CmdEvaluate(const Args& a) {
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  signal(SIGINT, OnSigint);
  signal(SIGTERM, OnSigint);
  const long max = a.Has("--max-evaluations") ? std::stol(a.Get("--max-evaluations")) : -1;
  long done = 0;
  if (!a.Has("--watch")) {
    if (!a.Has("--data")) return Fail("evaluate needs --data DIR (or --watch DIR)");
    if (!a.Has("--every")) return EvaluateOnce(rpc, a, a.Get("--data"));
    const double minutes = std::stod(a.Get("--every"));
    int rc = 0;
    while (!g_interrupted && (max < 0 || done < max)) {
      rc = EvaluateOnce(rpc, a, a.Get("--data"));
      ++done;
      if (max >= 0 && done >= max) break;
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(minutes * 60000));
      while (!g_interrupted && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return rc;
  }
  const std::string watch = a.Get("--watch");
  std::error_code ec;
  if (!std::filesystem::is_directory(watch, ec)) return Fail("--watch " + watch + ": not a directory");
  std::set<std::string> seen;
  {
    pl::ReleaseCommandMsg m;
    m.action = "evaluations";
    m.target = a.Get("--target");
    m.limit = 100000;
    auto j = AskRelease(rpc, m);
    if (!j.ok()) return Fail(j.status().ToString());
    for (const auto& e : (*j)["evaluations"]) seen.insert(e.value("data", json::object()).value("path", ""));
  }
  std::fprintf(stderr, "prunelab: watching %s for new datasets (one sub-directory each; %zu evaluated before); Ctrl-C stops\n",
               watch.c_str(), seen.size());
  int rc = 0;
  while (!g_interrupted && (max < 0 || done < max)) {
    std::vector<std::string> dirs;
    for (const auto& entry : std::filesystem::directory_iterator(watch, ec))
      if (entry.is_directory(ec)) dirs.push_back(std::filesystem::absolute(entry.path(), ec).lexically_normal().string());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) {
      if (seen.count(d) || DetectFormat(d).empty() || g_interrupted) continue;  // empty: still being written, or not data
      seen.insert(d);
      rc = EvaluateOnce(rpc, a, d);
      if (max >= 0 && ++done >= max) break;
    }
    for (int i = 0; i < 10 && !g_interrupted; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return rc;
}

int CmdEvaluations(const Args& a) {
  pl::ReleaseCommandMsg m;
  m.action = "evaluations";
  m.target = a.Get("--target");
  if (a.Has("--limit")) m.limit = static_cast<uint32_t>(std::stoul(a.Get("--limit")));
  return Show(a, RequestRelease(a, m), [](const json& r) {
    std::string text = r["evaluations"].empty() ? "no evaluations\n" : "";
    for (const auto& e : r["evaluations"]) text += pc::FormatEvaluation(e) + "\n";
    return text;
  });
}

// "W,C" -> [W, C]; the policy's own check names the field on a bad value.
pl::StatusOr<json> Pair(const std::string& flag, const std::string& v) {
  auto comma = v.find(',');
  try {
    if (comma == std::string::npos) throw std::invalid_argument("");
    size_t used = 0;
    double w = std::stod(v.substr(0, comma), &used);
    double c = std::stod(v.substr(comma + 1));
    return json::array({w, c});
  } catch (const std::exception&) {
    return pl::Status::InvalidArgument(flag + " '" + v + "': WARNING,CRITICAL, two numbers, e.g. 0.1,0.25");
  }
}

int CmdPolicy(const Args& a) {
  pl::ReleaseCommandMsg m;
  m.action = "policy";
  m.target = a.Get("--target");
  json p = json::object();
  if (a.Has("--on-critical")) p["on_critical"] = a.Get("--on-critical");
  for (auto [flag, field] : std::vector<std::pair<std::string, std::string>>{
           {"--accuracy-drop", "accuracy_drop"}, {"--class-drop", "class_drop"}, {"--psi", "psi"}, {"--memory", "memory"},
           {"--throughput", "throughput_sps"}, {"--latency-p95-ms", "latency_p95_ms"}})
    if (a.Has(flag)) {
      auto v = Pair(flag, a.Get(flag));
      if (!v.ok()) return Fail(v.status().ToString());
      p[field] = v.value();
    }
  if (a.Has("--gate-max-drop")) p["gate_max_accuracy_drop"] = std::stod(a.Get("--gate-max-drop"));
  if (a.Has("--gate-max-memory")) p["gate_max_memory_fraction"] = std::stod(a.Get("--gate-max-memory"));
  if (!p.empty()) m.policy_json = p.dump();
  auto r = RequestRelease(a, m);
  if (!r.ok()) return Fail(r.status().ToString());
  if (a.Has("--json")) {
    std::printf("%s\n", pl::DumpJson(r.value(), 2).c_str());
    return 0;
  }
  const json& q = (*r)["policy"];
  std::printf("policy of target %s%s:\n  on critical: %s\n", m.target.c_str(), p.empty() ? "" : " (updated)",
              q.value("on_critical", "").c_str());
  for (const char* k : {"accuracy_drop", "class_drop", "psi", "memory", "throughput_sps", "latency_p95_ms"}) {
    const json& b = q[k];
    if (b[0].get<double>() == 0 && b[1].get<double>() == 0) std::printf("  %-15s not checked%s\n", k, std::string(k) == "latency_p95_ms" ? " (the sweep's p95 budget when it has one)" : "");
    else std::printf("  %-15s warning at %g, critical at %g\n", k, b[0].get<double>(), b[1].get<double>());
  }
  const double gd = q.value("gate_max_accuracy_drop", -1.0), gm = q.value("gate_max_memory_fraction", -1.0);
  std::printf("  release gates: %s\n", gd < 0 && gm < 0 ? "the sweep's" : fmt::sprintf("max drop %g points, max memory %g of dense (target's own)", gd, gm).c_str());
  return 0;
}

// ---- run: embedded coordinator + local worker processes ----

std::string WorkerBinary() {
  if (const char* env = std::getenv("PRUNELAB_WORKER_BIN")) return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "prunelab-worker").string();
}

std::string ProgressLine(const pl::SweepStatus& s, const std::vector<pl::WorkerStatus>& workers, double elapsed) {
  std::string line = fmt::sprintf("[%5.0f s] %s: %u/%u results (%u failed), %u running", elapsed, s.id,
                                  s.done + s.failed, s.trials, s.failed, s.running);
  for (const auto& w : workers) {
    if (!w.alive) continue;
    line += " | " + w.worker_id.substr(0, 4) + ": ";
    if (w.task_id.empty()) {
      line += "idle";
    } else {
      auto slash = w.task_id.find('/');
      line += fmt::sprintf("%s %s %.0f%%", w.task_id.substr(slash + 1), w.phase, w.progress * 100);
    }
  }
  return line;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Polls the embedded coordinator until the sweep ends, every worker has exited, or Ctrl-C;
// shows progress. Returns 0 when the sweep ended, the exit code otherwise.
int FollowSweep(pl::RpcClient& rpc, const std::string& id, pc::LocalWorkers& workers, const std::string& data_dir) {
  const bool tty = isatty(2);
  auto start = std::chrono::steady_clock::now();
  auto last_print = start;
  int rc = 0;
  while (!g_interrupted) {
    auto st = AskFor<pl::StatusReplyMsg>(rpc, pl::StatusRequestMsg{id});
    auto wk = AskFor<pl::WorkersReplyMsg>(rpc, pl::WorkersRequestMsg{});
    if (!st.ok() || st->sweeps.empty()) {
      rc = Fail("lost the embedded coordinator: " + st.status().ToString());
      break;
    }
    const auto& s = st->sweeps[0];
    const bool ended = s.state == "done" || s.state == "cancelled";
    std::string line = ProgressLine(s, wk.ok() ? wk->workers : std::vector<pl::WorkerStatus>{}, SecondsSince(start));
    auto now = std::chrono::steady_clock::now();
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", line.substr(0, 200).c_str());
    } else if (now - last_print > std::chrono::seconds(10) || ended) {
      std::fprintf(stderr, "%s\n", line.c_str());
      last_print = now;
    }
    if (ended) break;
    int alive = workers.Poll([](size_t i, int status, const std::string& log) {
      std::fprintf(stderr, "\nprunelab: worker %zu exited (status %d); see %s\n", i + 1, status, log.c_str());
    });
    if (alive == 0) {
      rc = Fail("every worker has exited before the sweep finished; see the logs in " + data_dir + "/logs");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (tty) std::fprintf(stderr, "\n");
  return rc;
}

int PrintFinalResults(pl::RpcClient& rpc, const std::string& id, const pl::SweepSpec& spec, const std::string& data_dir,
                      double elapsed) {
  auto res = AskFor<pl::ResultsReplyMsg>(rpc, pl::ResultsRequestMsg{id}, 60000);
  if (!res.ok()) return Fail(res.status().ToString());
  auto rows = ResultRows(res->results);
  std::printf("\nSweep %s '%s' finished in %.1f s.\n\nAll results:\n%s\n", id.c_str(), spec.name.c_str(), elapsed,
              pc::FormatResultsTable(rows).c_str());
  std::printf("%s", pc::FormatParetoTable(res->results, "").c_str());
  auto opts = pc::OptionsFromSpec(spec.report);
  if (opts.ok()) std::printf("%s\n", pc::FormatDecisions(pc::Decide(res->results, opts.value()), opts.value()).c_str());
  std::printf("Stored in %s. More: prunelab report %s -o report/ --data-dir %s (HTML) | prunelab pareto %s --data-dir %s --json\n",
              data_dir.c_str(), id.c_str(), data_dir.c_str(), id.c_str(), data_dir.c_str());
  return 0;
}

// prunelab run: everything is checked before anything starts; the embedded coordinator and
// the workers are owners, so each return below stops and reaps them.
int CmdRun(const Args& a) {
  const std::string spec_path = a.positional[0];
  auto text = pl::ReadSpecFile(spec_path);
  if (!text.ok()) return Fail(text.status().ToString());
  auto spec = pl::ParseSpec(text.value());
  if (!spec.ok()) return Fail(spec_path + ": " + spec.status().message());
  auto msg = SubmitMessage(spec_path, text.value(), spec.value());
  if (!msg.ok()) return Fail(msg.status().ToString());
  // The workers are local: their dataset is on this machine, so check it now.
  if (auto st = pl::CheckDatasetFiles(spec->dataset); !st.ok()) return Fail(st.ToString());
  const int n_workers = std::stoi(a.Get("--workers", "2"));
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = a.Has("--threads") ? std::stoi(a.Get("--threads")) : std::max(1, cores / n_workers);
  const std::string data_dir = a.Get("--data-dir", "prunelab-data");
  const std::string bin = WorkerBinary();
  if (access(bin.c_str(), X_OK) != 0) return Fail("worker binary not found at " + bin + " (build it, or set PRUNELAB_WORKER_BIN)");
  std::error_code ec;
  std::filesystem::create_directories(data_dir + "/logs", ec);
  if (ec) return Fail("cannot create " + data_dir + "/logs: " + ec.message() + "; use another --data-dir");

  auto embedded = pc::EmbeddedCoordinator::Start(data_dir, a.Has("--http") ? std::stoi(a.Get("--http")) : -1);
  if (!embedded.ok()) return Fail(embedded.status().ToString());
  pc::EmbeddedCoordinator& coord = *embedded.value();
  std::fprintf(stderr, "embedded coordinator on %s (plain mode, loopback only: no authentication; for a lab network "
                       "see README \"Authentication\")\n", coord.worker_endpoint().c_str());
  if (coord.http_port()) std::fprintf(stderr, "prunelab: dashboard at http://127.0.0.1:%u/ (metrics at /metrics)\n", coord.http_port());
  signal(SIGINT, OnSigint);
  signal(SIGTERM, OnSigint);

  pc::LocalWorkers workers(bin);
  for (int i = 0; i < n_workers; ++i) {
    const std::string n = std::to_string(i + 1);
    workers.Spawn({"--coordinator", coord.worker_endpoint(), "--target", spec->targets[i % spec->targets.size()],
                   "--threads", std::to_string(threads), "--cache-dir", data_dir + "/cache/worker-" + n},
                  data_dir + "/logs/worker-" + n + ".log");
  }
  std::fprintf(stderr, "prunelab: embedded coordinator on %s; %d local worker(s) with %d thread(s) each; logs in %s/logs\n",
               coord.worker_endpoint().c_str(), n_workers, threads, data_dir.c_str());

  pl::RpcClient rpc(coord.context(), coord.client_endpoint());
  auto sub = Submit(rpc, msg.value());
  if (!sub.ok()) return Fail(sub.status().ToString());
  const std::string id = sub->sweep_id;
  std::fprintf(stderr, "prunelab: sweep '%s' is %s: %zu trial(s) x %zu target(s) + dense baseline\n", spec->name.c_str(),
               id.c_str(), pl::TrialCount(spec.value()), spec->targets.size());
  auto start = std::chrono::steady_clock::now();
  int rc = FollowSweep(rpc, id, workers, data_dir);
  // Workers drain on the first SIGTERM; after an interrupt the embedded coordinator is going
  // away, so they are told to stop at once.
  workers.Stop(/*immediately=*/g_interrupted.load());
  if (g_interrupted) {
    std::fprintf(stderr, "prunelab: interrupted; everything recorded so far is in %s. Results so far:\n"
                         "  prunelab results %s --data-dir %s\n", data_dir.c_str(), id.c_str(), data_dir.c_str());
    return 130;
  }
  if (rc != 0) return rc;
  return PrintFinalResults(rpc, id, spec.value(), data_dir, SecondsSince(start));
}

// The command line: every command with the flags it takes (CLI11). Parsing fills Args, which
// the commands read; a flag a command does not take is an error naming the closest one.
class CommandLine {
 public:
  CommandLine() : app_("prunelab: pruning sweeps over a coordinator and workers", "prunelab") {
    app_.require_subcommand(1, 1);
    app_.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a flag given twice: the last wins
    app_.footer(kUsage);
    Command("run", "run a sweep locally: embedded coordinator + N worker processes; prints the Pareto table", {"SPEC.yaml"});
    Option("--workers", "local worker processes (default 2)")->check(CLI::Range(1, 64));
    Option("--data-dir", "where the store and logs go (default ./prunelab-data)");
    Option("--threads", "LibTorch threads per worker (default cores / workers)")->check(CLI::Range(1, 1024));
    Option("--http", "serve the dashboard on 127.0.0.1:PORT")->check(CLI::Range(0, 65535));
    Command("submit", "submit to a running coordinator; prints the sweep id", {"SPEC.yaml"}, kRemote);
    Command("status", "progress of one or every sweep", {"[ID]"}, kRemote | kJson);
    Flag("--wait", "poll until every sweep shown is done");
    Command("results", "every result of a sweep", {"ID"}, kRemote | kStore | kJson);
    Command("pareto", "Pareto fronts per target, release gates, the recommendation", {"ID"}, kRemote | kStore | kJson | kDecide);
    Option("--target", "only this hardware target");
    Command("report", "report.html (self-contained), report.md, results.json, results.csv, model cards", {"ID"},
            kRemote | kStore | kDecide);
    Option("-o,--out", "output directory")->required();
    Command("compare", "gate a new sweep against a known-good one (exit 1 on a regression)", {"NEW", "OLD"},
            kRemote | kStore | kDecide);
    Option("--accuracy-tolerance", "accuracy points the new recommendation may lose (default 0.5)")->check(CLI::NonNegativeNumber);
    Option("--latency-tolerance", "fraction p90 latency may grow (default 0.10)")->check(CLI::NonNegativeNumber);
    Command("summary", "benchmark summaries (mlperf_log_summary style) of one result", {"ID", "TRIAL"}, kRemote | kStore);
    Option("--scenario", "single_stream, multi_stream, server or offline");
    Command("export", "the variant (or the dense baseline) as TorchScript model.pt + model card", {"[ID]", "[TRIAL]"},
            kRemote | kStore);
    Option("--release", "export the current release of this target instead of ID TRIAL (adds release.json)");
    Option("-o,--out", "output directory")->required();
    Flag("--fold-preprocessing", "model.pt takes pixel values 0-255 (any size): scaling, channels, resize and "
                                 "mean/std of the sweep's data are folded in");
    Option("--format", "torchscript (default) or onnx: also model.onnx, checked by onnx.checker and run in OpenCV DNN "
                       "against LibTorch on the sweep's test set")
        ->check(CLI::IsMember({"torchscript", "onnx"}));
    Command("sensitivity", "per-layer accuracy curves of a sensitivity sweep", {"ID"}, kRemote | kStore | kJson);
    for (const char* c : {"pause", "resume", "cancel"})
      Command(c, std::string(c) + " a sweep (hold / release its queued tasks / fail what is unfinished)", {"ID"},
              kRemote | kJson);
    Command("workers", "registered workers and their hardware", {}, kRemote | kJson);
    Command("sweeps", "sweeps in the store", {}, kRemote | kStore | kJson);
    Command("keygen", "CURVE key pair: NAME.key (secret, 0600) and NAME.pub", {"DIR/NAME"});
    Command("release", "promote a benchmarked variant to the next release of a target (gates checked)", {"ID", "TRIAL"},
            kRemote | kJson);
    Option("--target", "the hardware target released for")->required();
    Option("--note", "recorded with the release");
    Flag("--force", "release a variant that fails the gates (needs --reason)");
    Option("--reason", "why the gates are overridden (recorded)");
    Flag("--wait", "wait for the reference run and print it");
    Command("releases", "release history per target: versions, events, latest evaluations", {}, kRemote | kJson);
    Option("--target", "only this target");
    Command("rollback", "make an earlier release current again (default: the last known-good); recorded as an event",
            {}, kRemote | kJson);
    Option("--target", "the target")->required();
    Option("--to", "the release to go back to, e.g. v1");
    Option("--reason", "recorded with the rollback");
    Command("evaluate", "evaluate the target's current release on new data (accuracy, per class, drift, latency)", {},
            kRemote | kJson);
    Option("--target", "the target whose current release is evaluated")->required();
    Option("--data", "dataset directory as the target's workers see it (its test split is used)");
    Option("--format", "npy, fashion-mnist or folder (default: from the files in --data)")
        ->check(CLI::IsMember({"npy", "fashion-mnist", "folder"}));
    Flag("--dense", "also evaluate and time the dense teacher on the same data (A/B)");
    Option("--subset", "the first N samples only")->check(CLI::Range(1, 100000000));
    Option("--every", "evaluate --data again every MIN minutes until Ctrl-C")->check(CLI::PositiveNumber);
    Option("--watch", "evaluate each new sub-directory of DIR (a dataset each) as it appears");
    Option("--max-evaluations", "stop after N evaluations (--every, --watch)")->check(CLI::Range(1, 1000000));
    Flag("--no-wait", "print the evaluation id and return");
    Command("evaluations", "evaluation records of releases with their levels", {}, kRemote | kJson);
    Option("--target", "only this target");
    Option("--limit", "newest N (default 20)")->check(CLI::Range(1, 100000));
    Command("policy", "show or set a target's thresholds and what happens on critical", {}, kRemote | kJson);
    Option("--target", "the target")->required();
    Option("--on-critical", "notify (log + metric), rollback (to the last known-good) or resweep (the release's sweep on the new data)")
        ->check(CLI::IsMember({"notify", "rollback", "resweep"}));
    Option("--accuracy-drop", "WARN,CRIT points below the dense teacher (default 2,5)");
    Option("--class-drop", "WARN,CRIT worst-class points below the teacher (default 5,10)");
    Option("--psi", "WARN,CRIT population stability index (default 0.1,0.25)");
    Option("--memory", "WARN,CRIT model bytes as a fraction of dense (default 0.5,0.7)");
    Option("--throughput", "WARN,CRIT offline samples/s, lower is worse (default 1000,500)");
    Option("--latency-p95-ms", "WARN,CRIT single-stream p95 in ms (default: the sweep's p95 budget, x1.2 critical)");
    Option("--gate-max-drop", "this target's release gate: accuracy drop in points (instead of the sweep's)")->check(CLI::NonNegativeNumber);
    Option("--gate-max-memory", "this target's release gate: memory fraction of dense")->check(CLI::Range(0.0, 10.0));
  }

  // nullopt: go on with args(); otherwise the exit code.
  std::optional<int> Parse(int argc, char** argv) {
    if (auto rc = pl::flags::Parse(app_, argc, argv)) return rc;
    for (auto& c : commands_) {
      if (!c.app->parsed()) continue;
      args_.command = c.app->get_name();
      for (auto& p : c.positionals)
        if (p.option->count() > 0) args_.positional.push_back(*p.value);
      for (auto& o : c.options)
        if (o.option->count() > 0) args_.flags[o.key] = o.is_flag ? "1" : *o.value;
    }
    return std::nullopt;
  }
  const Args& args() const { return args_; }

 private:
  enum Groups : unsigned { kRemote = 1, kStore = 2, kJson = 4, kDecide = 8 };
  struct Bound {
    CLI::Option* option;
    std::string key;  // the long name, e.g. "--out"
    std::unique_ptr<std::string> value;
    bool is_flag = false;
  };
  struct Cmd {
    CLI::App* app;
    std::vector<Bound> positionals;
    std::vector<Bound> options;
  };

  void Command(const std::string& name, const std::string& help, std::vector<std::string> positionals,
               unsigned groups = 0) {
    commands_.push_back(Cmd{app_.add_subcommand(name, help), {}, {}});
    for (const std::string& p : positionals) {
      bool optional = p.front() == '[';
      std::string label = optional ? p.substr(1, p.size() - 2) : p;
      auto value = std::make_unique<std::string>();
      CLI::Option* o = commands_.back().app->add_option(label, *value);
      if (!optional) o->required();
      commands_.back().positionals.push_back(Bound{o, label, std::move(value)});
    }
    if (groups & kRemote) {
      Option("--coordinator", "client endpoint (default $PRUNELAB_COORDINATOR or tcp://127.0.0.1:5556)");
      Option("--curve-key", "this client's CURVE secret key file (or $PRUNELAB_CURVE_KEY)");
      Option("--server-key", "the coordinator's public key file (or $PRUNELAB_SERVER_KEY)");
      Option("--timeout-ms", "how long to wait for each reply (default 15000)")->check(CLI::Range(100, 3600000));
    }
    if (groups & kStore) Option("--data-dir", "read this data directory's store instead of asking a coordinator");
    if (groups & kJson) Flag("--json", "machine-readable output");
    if (groups & kDecide) {
      Option("--objectives", "e.g. accuracy:max,latency_p90_ms:min (default: the spec's report.objectives)");
      Option("--rule", "fastest, most_accurate or knee")->check(CLI::IsMember({"fastest", "most_accurate", "knee"}));
      Option("--max-drop", "release gate: accuracy drop in points vs dense (default 2)")->check(CLI::NonNegativeNumber);
      Option("--max-memory", "release gate: model memory as a fraction of dense (default 0.5)")
          ->check(CLI::Range(0.0, 1.0));
    }
  }
  CLI::Option* Option(const std::string& names, const std::string& help) {
    auto value = std::make_unique<std::string>();
    CLI::Option* o = commands_.back().app->add_option(names, *value, help);
    commands_.back().options.push_back(Bound{o, "--" + o->get_lnames().front(), std::move(value)});
    return o;
  }
  void Flag(const std::string& name, const std::string& help) {
    CLI::Option* o = commands_.back().app->add_flag(name, help);
    commands_.back().options.push_back(Bound{o, name, nullptr, true});
  }

  CLI::App app_;
  std::vector<Cmd> commands_;
  Args args_;
};

}  // namespace

int main(int argc, char** argv) {
  CommandLine line;
  if (auto rc = line.Parse(argc, argv)) return *rc;
  const Args& a = line.args();
  if (a.Has("--timeout-ms")) g_timeout_ms = std::stoi(a.Get("--timeout-ms"));
  signal(SIGPIPE, SIG_IGN);
  if (a.command == "run") return CmdRun(a);
  if (a.command == "submit") return CmdSubmit(a);
  if (a.command == "status") return CmdStatus(a);
  if (a.command == "results") return CmdResults(a);
  if (a.command == "pareto") return CmdPareto(a);
  if (a.command == "workers") return CmdWorkers(a);
  if (a.command == "summary") return CmdSummary(a);
  if (a.command == "sweeps") return CmdSweeps(a);
  if (a.command == "export") return CmdExport(a);
  if (a.command == "pause" || a.command == "resume" || a.command == "cancel") return CmdSweepControl(a);
  if (a.command == "sensitivity") return CmdSensitivity(a);
  if (a.command == "keygen") return CmdKeygen(a);
  if (a.command == "report") return CmdReport(a);
  if (a.command == "compare") return CmdCompare(a);
  if (a.command == "release") return CmdRelease(a);
  if (a.command == "releases") return CmdReleases(a);
  if (a.command == "rollback") return CmdRollback(a);
  if (a.command == "evaluate") return CmdEvaluate(a);
  if (a.command == "evaluations") return CmdEvaluations(a);
  if (a.command == "policy") return CmdPolicy(a);
  return 2;  // unreachable: the parser accepts only the commands above
}
