#include "coordinator/decide/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <fmt/printf.h>

#include "common/codec/records.h"
#include "coordinator/decide/front.h"
#include "coordinator/decide/model_card.h"

namespace prunelab::coordinator {
namespace {

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string F(const char* fmt, double v) {
  return fmt::sprintf(fmt, v);
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

// Accuracy (y) against p90 latency (x): every benchmarked row, the rank-1 points in colour,
// the 2-D front as a staircase, the recommendation ringed, the baseline a square.
std::string Scatter(const TargetDecision& d) {
  const double W = 640, H = 380, L = 64, R = 20, T = 20, B = 48;
  if (d.variants.empty()) return "<p>No benchmarked results on this target yet.</p>";
  double x0 = 1e300, x1 = 0, y0 = 1e300, y1 = 0;
  for (const auto& v : d.variants) {
    x0 = std::min(x0, v.row->latency_p90_ms);
    x1 = std::max(x1, v.row->latency_p90_ms);
    y0 = std::min(y0, v.row->accuracy * 100);
    y1 = std::max(y1, v.row->accuracy * 100);
  }
  double xpad = std::max(1e-3, (x1 - x0) * 0.08), ypad = std::max(0.2, (y1 - y0) * 0.08);
  x0 = std::max(0.0, x0 - xpad), x1 += xpad, y0 -= ypad, y1 += ypad;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string s = "<svg class=\"plot\" viewBox=\"0 0 640 380\" role=\"img\" aria-label=\"accuracy against p90 latency for " +
                  Esc(d.target) + "\">";
  s += "<rect x=\"" + F("%.1f", L) + "\" y=\"" + F("%.1f", T) + "\" width=\"" + F("%.1f", W - L - R) + "\" height=\"" +
       F("%.1f", H - T - B) + "\" class=\"frame\"/>";
  for (int i = 0; i <= 4; ++i) {
    double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    s += "<text x=\"" + F("%.1f", X(xv)) + "\" y=\"" + F("%.1f", H - B + 16) + "\" class=\"tick\" text-anchor=\"middle\">" +
         F("%.3f", xv) + "</text>";
    s += "<text x=\"" + F("%.1f", L - 6) + "\" y=\"" + F("%.1f", Y(yv) + 4) + "\" class=\"tick\" text-anchor=\"end\">" +
         F("%.2f", yv) + "</text>";
  }
  s += "<text x=\"" + F("%.1f", L + (W - L - R) / 2) + "\" y=\"" + F("%.1f", H - 8) +
       "\" text-anchor=\"middle\" class=\"axis\">single-stream p90 latency (ms), lower is better</text>";
  s += "<text x=\"14\" y=\"" + F("%.1f", T + (H - T - B) / 2) + "\" transform=\"rotate(-90 14 " + F("%.1f", T + (H - T - B) / 2) +
       ")\" text-anchor=\"middle\" class=\"axis\">top-1 accuracy (%)</text>";
  // The 2-D front (accuracy max, p90 min) as a staircase.
  PointSet p;
  p.dims = 2;
  for (const auto& v : d.variants) {
    p.values.push_back(v.row->latency_p90_ms);
    p.values.push_back(-v.row->accuracy);
  }
  std::vector<size_t> front = NondominatedFront(p);
  std::string path;
  for (size_t k = 0; k < front.size(); ++k) {
    const auto* r = d.variants[front[k]].row;
    if (k == 0) path += "M" + F("%.1f", X(r->latency_p90_ms)) + "," + F("%.1f", Y(r->accuracy * 100));
    else {
      path += " H" + F("%.1f", X(r->latency_p90_ms));
      path += " V" + F("%.1f", Y(r->accuracy * 100));
    }
  }
  if (!path.empty()) s += "<path d=\"" + path + "\" class=\"front\"/>";
  for (const auto& v : d.variants) {
    double cx = X(v.row->latency_p90_ms), cy = Y(v.row->accuracy * 100);
    std::string cls = std::string(v.rank == 1 ? "pt front-pt" : "pt") + (v.pass ? "" : " fail");
    std::string title = "<title>" + Esc(v.row->task_id + " " + DescribeVariant(*v.row)) + F(": %.2f %%", v.row->accuracy * 100) +
                        F(", p90 %.3f ms", v.row->latency_p90_ms) + ", rank " + std::to_string(v.rank) +
                        (v.pass ? ", passes gates" : ", fails gates") + "</title>";
    if (v.row->baseline)
      s += "<rect x=\"" + F("%.1f", cx - 5) + "\" y=\"" + F("%.1f", cy - 5) + "\" width=\"10\" height=\"10\" class=\"" + cls +
           " base\" data-trial=\"" + Esc(v.row->task_id) + "\">" + title + "</rect>";
    else
      s += "<circle cx=\"" + F("%.1f", cx) + "\" cy=\"" + F("%.1f", cy) + "\" r=\"5\" class=\"" + cls + "\" data-trial=\"" +
           Esc(v.row->task_id) + "\">" + title + "</circle>";
    if (v.rank == 1)
      s += "<text x=\"" + F("%.1f", cx + 7) + "\" y=\"" + F("%.1f", cy - 7) + "\" class=\"lbl\">" + Esc(v.row->task_id) + "</text>";
    if (v.row == d.recommended)
      s += "<circle cx=\"" + F("%.1f", cx) + "\" cy=\"" + F("%.1f", cy) + "\" r=\"11\" class=\"rec\"/>";
  }
  s += "</svg>";
  return s;
}

// Accuracy against achieved sparsity for iterative runs (their rNN rows and final row).
std::string SparsityCurves(const std::vector<TrialResult>& results, const std::string& target) {
  std::map<std::string, std::vector<std::pair<double, double>>> curves;  // trial -> (sparsity, accuracy)
  for (const auto& r : results) {
    if (!r.ok || r.target != target || r.schedule != "iterative") continue;
    std::string trial = r.task_id.substr(0, r.task_id.find('/'));
    curves[trial].push_back({r.achieved_sparsity * 100, r.accuracy * 100});
  }
  if (curves.empty()) return "<p>No iterative runs on this target.</p>";
  double y0 = 100, y1 = 0;
  for (auto& [t, c] : curves) {
    std::sort(c.begin(), c.end());
    for (auto& [x, y] : c) y0 = std::min(y0, y), y1 = std::max(y1, y);
  }
  y0 -= 0.5, y1 += 0.5;
  auto X = [](double x) { return 60 + x / 100 * 560; };
  auto Y = [&](double y) { return 250 - (y - y0) / (y1 - y0) * 220; };
  std::string s = "<svg class=\"plot\" viewBox=\"0 0 640 290\" role=\"img\" aria-label=\"sparsity curves\">";
  s += "<rect x=\"60\" y=\"30\" width=\"560\" height=\"220\" class=\"frame\"/>";
  for (int i = 0; i <= 4; ++i) {
    s += "<text x=\"" + F("%.1f", X(i * 25)) + "\" y=\"266\" class=\"tick\" text-anchor=\"middle\">" + F("%.0f%%", i * 25) + "</text>";
    double yv = y0 + (y1 - y0) * i / 4;
    s += "<text x=\"54\" y=\"" + F("%.1f", Y(yv) + 4) + "\" class=\"tick\" text-anchor=\"end\">" + F("%.1f", yv) + "</text>";
  }
  s += "<text x=\"340\" y=\"284\" text-anchor=\"middle\" class=\"axis\">achieved sparsity; accuracy (%) after each round</text>";
  for (const auto& [t, c] : curves) {
    std::string path;
    for (size_t i = 0; i < c.size(); ++i)
      path += (i ? " L" : "M") + F("%.1f", X(c[i].first)) + "," + F("%.1f", Y(c[i].second));
    s += "<path d=\"" + path + "\" class=\"curve\"><title>" + Esc(t) + "</title></path>";
    s += "<text x=\"" + F("%.1f", X(c.back().first) - 4) + "\" y=\"" + F("%.1f", Y(c.back().second) - 6) +
         "\" class=\"lbl\" text-anchor=\"end\">" + Esc(t) + "</text>";
  }
  return s + "</svg>";
}

const char* kCss = R"(body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2430;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dae1;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#5b6675}.rec-box{background:#eef6ee;border:1px solid #9cc79c;padding:10px 14px;border-radius:6px}
.none-box{background:#fbf1e6;border:1px solid #e3b77f;padding:10px 14px;border-radius:6px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #e4e7ec;text-align:right}
th{background:#f4f6f8}td.l,th.l{text-align:left}tr.recommended td{background:#eef6ee;font-weight:600}td.fail{color:#a3302a;text-align:left}td.pass{color:#2b7a35;text-align:left}
.plot{width:100%;max-width:680px;height:auto;display:block}.frame{fill:#fbfcfd;stroke:#c7cdd5}.tick{font-size:11px;fill:#5b6675}.axis{font-size:12px;fill:#3b4552}
.pt{fill:#b7bec8;stroke:#6f7a88}.front-pt{fill:#2f6fdf;stroke:#1b4aa0}.fail{fill-opacity:.35}.base{fill:#f0a020;stroke:#9a6200}
.front{fill:none;stroke:#2f6fdf;stroke-width:1.5;stroke-dasharray:4 3}.rec{fill:none;stroke:#2b9a3a;stroke-width:2.5}
.lbl{font-size:11px;fill:#1b4aa0}.curve{fill:none;stroke:#7a4fd0;stroke-width:2}code{background:#f1f3f5;padding:0 3px;border-radius:3px})";

}  // namespace

std::string ResultsCsv(const std::vector<TrialResult>& results) {
  std::string s =
      "trial,target,status,error,model,criterion,granularity,schedule,sparsity,achieved_sparsity,accuracy,"
      "baseline_accuracy,worst_class_drop,latency_p50_ms,latency_p90_ms,latency_p99_ms,throughput_sps,"
      "server_max_qps,speedup_p90,params,model_bytes,peak_rss_bytes,worker,pruned_by\n";
  for (const auto& r : results) {
    if (!IsTableRow(r)) continue;
    const std::string num = fmt::sprintf("%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%llu,%llu,%llu", r.sparsity,
                  r.achieved_sparsity, r.accuracy, r.baseline_accuracy, r.worst_class_drop, r.latency_p50_ms,
                  r.latency_p90_ms, r.latency_p99_ms, r.throughput_sps, r.server_max_qps, r.speedup_p90,
                  static_cast<unsigned long long>(r.params), static_cast<unsigned long long>(r.model_bytes),
                  static_cast<unsigned long long>(r.peak_rss_bytes));
    s += CsvField(r.task_id) + "," + CsvField(r.target) + "," + (r.ok ? "ok" : "failed") + "," + CsvField(r.error) + "," +
         CsvField(r.model) + "," + CsvField(r.baseline ? "dense" : r.criterion) + "," + CsvField(r.granularity) + "," +
         CsvField(r.schedule) + "," + num + "," + CsvField(r.worker_id) + "," + CsvField(r.pruned_by) + "\n";
  }
  return s;
}

StatusOr<std::vector<std::string>> WriteReport(const std::string& dir, const ReportInput& in) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "cards", ec);
  if (ec) return Status::IoError("cannot create " + dir + ": " + ec.message());
  const auto& results = *in.results;
  auto decisions = Decide(results, in.options);
  std::vector<std::string> written;
  auto write = [&](const std::string& name, const std::string& text) -> Status {
    std::ofstream out(fs::path(dir) / name, std::ios::trunc);
    out << text;
    if (!out) return Status::IoError("cannot write " + (fs::path(dir) / name).string());
    written.push_back((fs::path(dir) / name).string());
    return Status::Ok();
  };

  // results.json: every row, and the decisions.
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : results)
    if (r.kind != TaskKind::kTrainBaseline) rows.push_back(ToJson(r));
  nlohmann::json doc{{"sweep", in.sweep_id}, {"name", in.sweep_name}, {"results", rows},
                     {"decisions", DecisionsJson(decisions, in.options)}};
  PRUNELAB_RETURN_IF_ERROR(write("results.json", DumpJson(doc, 1)));
  PRUNELAB_RETURN_IF_ERROR(write("results.csv", ResultsCsv(results)));

  // Model cards of every front variant.
  std::set<std::string> carded;
  for (const auto& d : decisions)
    for (const auto& v : d.variants) {
      if (v.rank != 1 || v.row->baseline || carded.count(v.row->task_id)) continue;
      auto card = ModelCard(*v.row, d.baseline);
      std::string base = "cards/" + v.row->task_id;
      PRUNELAB_RETURN_IF_ERROR(write(base + ".json", DumpJson(card, 2)));
      PRUNELAB_RETURN_IF_ERROR(write(base + ".md", ModelCardMarkdown(card)));
      carded.insert(v.row->task_id);
    }

  std::string objs;
  for (const auto& o : in.options.objectives) objs += (objs.empty() ? "" : ", ") + o.Label();
  const GateSpec& g = in.options.gates;
  const bool lm = std::any_of(results.begin(), results.end(), [](const TrialResult& r) { return ScoredByPerplexity(r); });
  std::string gates = lm ? F("perplexity at most %.3fx the dense model's", g.max_perplexity_ratio)
                         : F("accuracy drop at most %.2f points", g.max_accuracy_drop);
  if (g.max_worst_class_drop >= 0) gates += F("; worst-class drop at most %.2f points", g.max_worst_class_drop);
  for (const auto& [f, ms] : g.latency_budget_ms) gates += "; " + f + F(" at most %.3f ms", ms);
  if (g.max_memory_fraction > 0) gates += F("; model memory at most %.0f%% of the dense model's", g.max_memory_fraction * 100);
  if (g.min_throughput_sps > 0) gates += F("; throughput at least %.0f samples/s", g.min_throughput_sps);

  // report.md
  std::string md = "# Sweep " + in.sweep_id + " '" + in.sweep_name + "'\n\nObjectives: " + objs + ". Gates (vs the dense baseline on the same target): " +
                   gates + ". Rule: " + in.options.rule + ".\n";
  md += FormatDecisions(decisions, in.options);
  PRUNELAB_RETURN_IF_ERROR(write("report.md", md));

  // report.html
  std::string h = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>prunelab " + Esc(in.sweep_id) +
                  "</title><style>" + kCss + "</style></head><body>";
  h += "<h1>Sweep " + Esc(in.sweep_id) + " &lsquo;" + Esc(in.sweep_name) + "&rsquo;</h1>";
  h += "<p class=\"muted\">Objectives: " + Esc(objs) + ". Gates against the dense baseline measured on the same target: " +
       Esc(gates) + ". Recommendation rule: <b>" + Esc(in.options.rule) +
       "</b>. Files: <a href=\"results.json\">results.json</a>, <a href=\"results.csv\">results.csv</a>, "
       "<a href=\"report.md\">report.md</a>.</p>";
  for (const auto& d : decisions) {
    h += "<section class=\"target\" data-target=\"" + Esc(d.target) + "\"><h2>Target " + Esc(d.target) + "</h2>";
    if (d.recommended)
      h += "<div class=\"rec-box\" id=\"rec-" + Esc(d.target) + "\">Recommended: <b>" + Esc(d.recommended->task_id) + "</b> (" +
           Esc(DescribeVariant(*d.recommended)) + F(", %.2f %% top-1", d.recommended->accuracy * 100) +
           F(", p90 %.3f ms", d.recommended->latency_p90_ms) + ") &mdash; " + Esc(d.why) + "</div>";
    else
      h += "<div class=\"none-box\">No recommendation: " + Esc(d.why) + "</div>";
    for (const auto& n : d.notes) h += "<p class=\"muted\">Note: " + Esc(n) + ".</p>";
    h += Scatter(d);
    h += "<p class=\"muted\">Blue: on the front (rank 1 over every objective); dashed: the accuracy/latency front; "
         "orange square: the dense baseline; faded: fails a gate; green ring: recommended. Hover a point for its numbers.</p>";
    h += "<h3>Variants and gates</h3><table class=\"gates\"><tr><th>rank</th><th class=\"l\">trial</th><th class=\"l\">variant</th>"
         "<th>accuracy</th><th>drop (pt)</th><th>worst class (pt)</th><th>p90 ms</th><th>p99 ms</th><th>samples/s</th>"
         "<th>model memory</th><th class=\"l\">gates</th><th class=\"l\">card</th></tr>";
    for (const auto& v : d.variants) {
      std::string reasons;
      for (size_t i = 0; i < v.reasons.size(); ++i) reasons += (i ? "; " : "") + v.reasons[i];
      h += "<tr class=\"" + std::string(v.row == d.recommended ? "recommended" : "") + "\" data-trial=\"" + Esc(v.row->task_id) +
           "\" data-rank=\"" + std::to_string(v.rank) + "\"><td>" + std::to_string(v.rank) + "</td><td class=\"l\">" +
           Esc(v.row->task_id) + "</td><td class=\"l\">" + Esc(DescribeVariant(*v.row)) + "</td><td>" +
           F("%.2f%%", v.row->accuracy * 100) + "</td><td>" + F("%+.2f", v.accuracy_drop_pt) + "</td><td>" +
           F("%.1f", v.row->worst_class_drop * 100) + "</td><td>" + F("%.3f", v.row->latency_p90_ms) + "</td><td>" +
           F("%.3f", v.row->latency_p99_ms) + "</td><td>" + F("%.0f", v.row->throughput_sps) + "</td><td>" +
           F("%.0f%%", v.memory_fraction * 100) + "</td>" +
           (v.pass ? "<td class=\"pass\">pass</td>" : "<td class=\"fail\">" + Esc(reasons) + "</td>") + "<td class=\"l\">" +
           (carded.count(v.row->task_id) ? "<a href=\"cards/" + Esc(v.row->task_id) + ".md\">card</a>" : std::string()) +
           "</td></tr>";
    }
    h += "</table>";
    if (d.confirmation && d.confirmation->skipped.empty()) {
      const ConfirmationRound& c = *d.confirmation;
      h += "<h3>Confirmation round</h3><p class=\"muted\">" + std::to_string(c.rounds) +
           " rounds on " + Esc(d.confirmation_worker.empty() ? std::string("one worker") : d.confirmation_worker) + ", " +
           std::to_string(c.threads) + " thread(s), every model timed single-stream once per round in rotating order; "
           "interference: " + Esc(c.verdict) + ". Ratio: p90 over the baseline's in the same round (&lt; 1 is faster). "
           "Candidates whose ranges overlap are within noise of each other.</p><table class=\"confirm\"><tr>"
           "<th class=\"l\">trial</th><th class=\"l\">form</th><th>median p90 ms</th><th>median ratio</th>"
           "<th>range over rounds</th><th class=\"l\"></th></tr>";
      for (const auto& m : c.models) {
        const bool tied = std::find(d.within_noise.begin(), d.within_noise.end(), m.task_id) != d.within_noise.end();
        h += "<tr data-trial=\"" + Esc(m.task_id) + "\"><td class=\"l\">" + Esc(m.task_id) + "</td><td class=\"l\">" +
             Esc(m.form) + "</td><td>" + F("%.3f", m.median_p90_ms) + "</td><td>" + F("%.3f", m.median_ratio) + "</td><td>" +
             F("%.3f", m.min_ratio) + F(" &ndash; %.3f", m.max_ratio) + "</td><td class=\"l\">" +
             (tied ? "within noise" : "") + "</td></tr>";
      }
      h += "</table>";
    }
    if (d.failed) h += "<p class=\"muted\">" + std::to_string(d.failed) + " failed result(s) on this target: see results.csv.</p>";
    // Per-class accuracy of the front's variants.
    h += "<h3>Per-class accuracy of the front (%)</h3><table><tr><th class=\"l\">trial</th>";
    size_t classes = 0;
    std::vector<std::string> names;
    for (const auto& v : d.variants) {
      classes = std::max(classes, v.row->per_class_accuracy.size());
      if (names.empty()) names = v.row->class_names;
    }
    for (size_t c = 0; c < classes; ++c)
      h += "<th>" + (c < names.size() ? Esc(names[c]) : std::to_string(c)) + "</th>";
    h += "</tr>";
    for (const auto& v : d.variants) {
      if (v.rank != 1 && !v.row->baseline) continue;
      h += "<tr><td class=\"l\">" + Esc(v.row->task_id) + "</td>";
      for (size_t c = 0; c < classes; ++c)
        h += "<td>" + (c < v.row->per_class_accuracy.size() ? F("%.1f", v.row->per_class_accuracy[c] * 100) : std::string("")) + "</td>";
      h += "</tr>";
    }
    h += "</table><h3>Sparsity curves (iterative runs)</h3>" + SparsityCurves(results, d.target);
    // Hardware fingerprints of the workers that measured this target.
    h += "<h3>Hardware</h3><table><tr><th class=\"l\">worker</th><th class=\"l\">CPU</th><th>cores</th><th>threads</th>"
         "<th class=\"l\">BLAS</th><th class=\"l\">LibTorch</th><th class=\"l\">device</th></tr>";
    std::set<std::string> seen;
    for (const auto& v : d.variants) {
      const auto& hw = v.row->hardware;
      if (!seen.insert(v.row->worker_id).second) continue;
      h += "<tr><td class=\"l\">" + Esc(v.row->worker_id) + "</td><td class=\"l\">" + Esc(hw.cpu_model) + "</td><td>" +
           std::to_string(hw.cores) + "</td><td>" + std::to_string(hw.threads) + "</td><td class=\"l\">" + Esc(hw.blas) +
           "</td><td class=\"l\">" + Esc(hw.torch_version) + "</td><td class=\"l\">" + Esc(hw.device) + "</td></tr>";
    }
    h += "</table></section>";
  }
  h += "<p class=\"muted\">Written by prunelab " + std::string(kPrunelabVersion) +
       ". Deploy a variant: <code>prunelab export " + Esc(in.sweep_id) + " TRIAL -o DIR</code>.</p></body></html>\n";
  PRUNELAB_RETURN_IF_ERROR(write("report.html", h));
  return written;
}

}  // namespace prunelab::coordinator
