// prunelab release, releases, rollback, evaluate, evaluations, policy: releases per target
// and their continuous evaluation.
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/printf.h>

#include "common/codec/records.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/local_cluster.h"
#include "coordinator/cli/release_text.h"

namespace prunelab::cli {

namespace pc = ::prunelab::coordinator;


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
  m.subset = static_cast<uint32_t>(a.Integer("--subset", 0));
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
  const long max = static_cast<long>(a.Integer("--max-evaluations", -1));
  long done = 0;
  if (!a.Has("--watch")) {
    if (!a.Has("--data")) return Fail("evaluate needs --data DIR (or --watch DIR)");
    if (!a.Has("--every")) return EvaluateOnce(rpc, a, a.Get("--data"));
    const double minutes = a.Number("--every", 0);
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
  m.limit = static_cast<uint32_t>(a.Integer("--limit", 0));
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
  if (a.Has("--gate-max-drop")) p["gate_max_accuracy_drop"] = a.Number("--gate-max-drop", 0);
  if (a.Has("--gate-max-memory")) p["gate_max_memory_fraction"] = a.Number("--gate-max-memory", 0);
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

}  // namespace prunelab::cli
