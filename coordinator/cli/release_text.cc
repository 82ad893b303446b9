#include "coordinator/cli/release_text.h"

#include <ctime>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace prunelab::coordinator {

using nlohmann::json;

namespace {

std::string When(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%SZ", &tm);
  return b;
}

std::string Bands(const json& th) {
  if (!th.is_object()) return "not checked";
  const double w = th.value("warning", 0.0), c = th.value("critical", 0.0);
  if (th.value("higher_is_worse", true)) return fmt::format("< {:g} / {:g}-{:g} / > {:g}", w, w, c, c);
  return fmt::format(">= {:g} / {:g}-{:g} / < {:g}", w, c, w, c);
}

}  // namespace

std::string FormatRelease(const json& r) {
  std::string s = fmt::format("{} {}: {} {} (released by {} at {})\n", r.value("version", ""),
                              r.value("current", false) ? "(current)" : "", r.value("sweep", ""), r.value("trial", ""),
                              r.value("released_by", ""), When(r.value("released_at_ms", int64_t{0})));
  const json g = r.value("gates", json::object());
  s += fmt::format("  gates ({}): {}", g.value("from", "sweep spec"), g.value("pass", false) ? "pass" : "FAIL");
  for (const auto& why : g.value("reasons", json::array())) s += "; " + why.get<std::string>();
  if (r.value("forced", false)) s += " - released with --force: " + r.value("force_reason", "");
  s += "\n";
  const json c = r.value("changelog", json::object());
  if (c.is_object() && !c.empty()) {
    const json d = c.value("deltas", json::object());
    s += fmt::format("  changelog against {}: {} {} {} sparsity {:.0f}%, quantization {}, {} layer(s) pruned\n",
                     c.value("against", ""), c.value("pattern", ""), c.value("criterion", ""), c.value("schedule", ""),
                     100 * c.value("sparsity", 0.0), c.value("quantization", ""), c.value("layers_pruned", json::array()).size());
    s += fmt::format("    accuracy {:+.2f} points, p90 {:+.3f} ms, p95 {:+.3f} ms, memory {:+.0f} bytes, throughput {:+.0f} samples/s\n",
                     d.value("accuracy_points", 0.0), d.value("latency_p90_ms", 0.0), d.value("latency_p95_ms", 0.0),
                     d.value("model_bytes", 0.0), d.value("throughput_sps", 0.0));
  }
  if (!r.value("note", "").empty()) s += "  note: " + r.value("note", "") + "\n";
  s += fmt::format("  status: {}{}\n", r.value("status", ""), r.value("known_good", false) ? " (known-good)" : "");
  return s;
}

std::string FormatReleaseHistory(const json& h) {
  std::string s;
  for (const auto& t : h.value("targets", json::array())) {
    s += fmt::format("target {}: current {}\n", t.value("target", ""), t.value("current", "").empty() ? "none" : t.value("current", ""));
    const json rels = t.value("releases", json::array());
    for (auto it = rels.rbegin(); it != rels.rend(); ++it) {
      const json& r = *it;
      s += fmt::format("  {:<4} {:<3} {:<10} {:<14} {:<22} by {:<16} {}{}\n", r.value("version", ""),
                       r.value("current", false) ? "*" : "", r.value("sweep", ""), r.value("trial", ""),
                       r.value("status", "") + (r.value("known_good", false) ? ", good" : ""), r.value("released_by", ""),
                       When(r.value("released_at_ms", int64_t{0})), r.value("forced", false) ? "  (forced: " + r.value("force_reason", "") + ")" : "");
    }
    s += "  events:\n";
    for (const auto& e : t.value("events", json::array()))
      s += fmt::format("    {} {:<8} {:>4} -> {:<4} by {}{}{}\n", When(e.value("at_ms", int64_t{0})), e.value("action", ""),
                       e.value("from", ""), e.value("to", ""), e.value("by", ""), e.value("automatic", false) ? " (policy)" : "",
                       e.value("reason", "").empty() ? "" : ": " + e.value("reason", ""));
    const json evs = t.value("evaluations", json::array());
    if (!evs.empty()) s += "  latest evaluations:\n";
    for (const auto& e : evs)
      s += fmt::format("    {} {:<4} {:<9} {}{}{}\n", e.value("id", ""), e.value("release", ""),
                       e.value("level", "").empty() ? e.value("state", "") : e.value("level", ""),
                       e.value("reference", false) ? "(reference run) " : "", e.value("data", json::object()).value("path", ""),
                       e.value("action", "").empty() || e.value("action", "") == "none" ? "" : "  -> " + e.value("action", ""));
  }
  if (s.empty()) s = "no releases yet (prunelab release SWEEP TRIAL --target T)\n";
  return s;
}

std::string FormatEvaluation(const json& e) {
  const json data = e.value("data", json::object());
  std::string s = fmt::format("evaluation {} of {} {}{} on {} ({})", e.value("id", ""), e.value("target", ""),
                              e.value("release", ""), e.value("reference", false) ? " (reference run)" : "",
                              data.value("path", ""), data.value("name", ""));
  const std::string state = e.value("state", "");
  if (state != "done") return s + ": " + state + (e.contains("error") ? ": " + e.value("error", "") : "") + "\n";
  const json a = e.value("assessment", json::object());
  std::string level = e.value("level", "");
  for (auto& c : level) c = static_cast<char>(std::toupper(c));
  s += fmt::format(": {}\n  {} samples, worker {} ({}), compared with {}\n", level, a.value("samples", 0),
                   e.value("worker", ""), e.value("hardware", json::object()).value("cpu", ""), e.value("compared_with", ""));
  s += fmt::format("  {:<18} {:>12}  {:<18} {:<28} {}\n", "metric", "value", "unit", "ok / warning / critical", "level");
  for (const auto& m : a.value("metrics", json::array())) {
    std::string detail;
    if (m.contains("name")) detail = " (" + m.value("name", "") + ")";
    if (m.contains("feature")) detail = " (" + m.value("feature", "") + ")";
    if (m.value("margin_95", 0.0) > 0) detail += fmt::format(" +-{:.1f} at 95 %", m.value("margin_95", 0.0));
    if (m.contains("note")) detail += " (" + m.value("note", "") + ")";
    s += fmt::format("  {:<18} {:>12.4g}  {:<18} {:<28} {}{}\n", m.value("metric", ""), m.value("value", 0.0),
                     m.value("unit", ""), m.contains("threshold") && m["threshold"].is_object() ? Bands(m["threshold"]) : "not checked",
                     m.value("level", ""), detail);
  }
  const json ws = a.value("worst_slice", json());
  if (ws.is_object())
    s += fmt::format("  worst slice: class {} '{}': accuracy {:.2f} % vs the teacher's {:.2f} % ({:.1f} points, {} samples)\n",
                     ws.value("class", -1), ws.value("name", ""), 100 * ws.value("accuracy", 0.0),
                     100 * ws.value("teacher_accuracy", 0.0), ws.value("drop_points", 0.0), ws.value("samples", 0));
  s += "  " + a.value("why", "") + "\n";
  if (e.contains("policy")) s += "  policy on critical: " + e.value("policy", "") + " -> " + e.value("action", "") + "\n";
  return s;
}

}  // namespace prunelab::coordinator
