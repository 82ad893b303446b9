// prunelab results, pareto, report, compare, summary, sensitivity: reading a sweep's rows
// and deciding from them.
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/codec/records.h"
#include "common/spec/objectives.h"
#include "common/spec/spec.h"
#include "coordinator/cli/cli.h"
#include "coordinator/decide/decision.h"
#include "coordinator/decide/pareto.h"
#include "coordinator/decide/report.h"

namespace prunelab::cli {

namespace pc = ::prunelab::coordinator;

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
  o.gates.max_accuracy_drop = a.Number("--max-drop", o.gates.max_accuracy_drop);
  o.gates.max_memory_fraction = a.Number("--max-memory", o.gates.max_memory_fraction);
  return o;
}

std::string SweepName(const std::string& spec_yaml) {
  auto spec = pl::ParseSpec(spec_yaml);
  return spec.ok() ? spec->name : "";
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
  double acc_tol = a.Number("--accuracy-tolerance", 0.5);
  double lat_tol = a.Number("--latency-tolerance", 0.10);
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

}  // namespace prunelab::cli
