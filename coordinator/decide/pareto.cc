#include "coordinator/decide/pareto.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include <fmt/printf.h>

#include "common/codec/records.h"
#include "common/spec/objectives.h"

namespace prunelab::coordinator {

std::vector<size_t> ParetoFront(const std::vector<Point2>& points) {
  std::vector<size_t> idx(points.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    if (points[a].minimize != points[b].minimize) return points[a].minimize < points[b].minimize;
    return points[a].maximize > points[b].maximize;
  });
  std::vector<size_t> front;
  bool have_best = false;
  double best = 0;
  for (size_t i : idx) {
    // Strictly better on `maximize` than every point at least as good on `minimize`.
    if (!have_best || points[i].maximize > best) {
      front.push_back(i);
      best = points[i].maximize;
      have_best = true;
    }
  }
  return front;
}

double LatencyScale(const TrialResult& r, const TrialResult* base) {
  if (r.baseline || !base || base->latency_p90_ms <= 0 || r.speedup_p90 <= 0 || r.latency_p90_ms <= 0) return 1;
  return (base->latency_p90_ms / r.speedup_p90) / r.latency_p90_ms;
}

std::optional<ConfirmationRound> ConfirmationOf(const std::vector<TrialResult>& results, const std::string& target) {
  for (const auto& r : results) {
    if (r.kind != TaskKind::kConfirmTarget || !r.ok || r.target != target) continue;
    auto round = ConfirmationFromJson(r.benchmark_json);
    if (round.ok() && round->skipped.empty() && !round->models.empty()) return std::move(round).value();
  }
  return std::nullopt;
}

double ComparedLatencyScale(const TrialResult& r, const TrialResult* base, const ConfirmationRound* round) {
  const double scale = LatencyScale(r, base);
  const ConfirmedModel* base_cm = round && base ? round->Find(base->task_id) : nullptr;
  const double reference = base_cm && base_cm->median_p90_ms > 0 ? base_cm->median_p90_ms : base ? base->latency_p90_ms : 0;
  if (!base_cm || reference <= 0 || r.latency_p90_ms <= 0) return scale;
  const ConfirmedModel* cm = round->Find(r.task_id);
  if (cm && cm->median_ratio > 0) return reference * cm->median_ratio / r.latency_p90_ms;
  return scale != 1 ? scale * reference / base->latency_p90_ms : 1;  // A/B-scaled, to the same reference
}

TrialResult ScaledSingleStream(const TrialResult& row, double scale) {
  TrialResult r = row;
  for (double TrialResult::*f : kSingleStreamLatencyFields) r.*f *= scale;
  return r;
}

std::vector<TargetFront> FrontsByTarget(const std::vector<TrialResult>& results) {
  std::vector<TargetFront> out;
  auto slot = [&](const std::string& t) -> TargetFront& {
    for (auto& f : out) if (f.target == t) return f;
    TargetFront f;
    f.target = t;
    out.push_back(f);
    return out.back();
  };
  for (const auto& r : results) {
    if (!IsTableRow(r)) continue;
    TargetFront& f = slot(r.target);
    if (!r.ok) { ++f.failed; continue; }
    if (r.baseline && !f.baseline) f.baseline = &r;
  }
  for (auto& f : out) {
    const std::optional<ConfirmationRound> round = ConfirmationOf(results, f.target);
    f.by_confirmation_round = round.has_value();
    std::vector<const TrialResult*> cands;
    std::vector<Point2> pts;
    for (const auto& r : results) {
      if (!IsTableRow(r) || !r.ok || r.target != f.target) continue;
      // Iterative intermediate rounds and sensitivity trials are evaluated, not benchmarked.
      if (!r.baseline && r.latency_p90_ms <= 0) continue;
      cands.push_back(&r);
      pts.push_back({QualityScore(r), r.latency_p90_ms * ComparedLatencyScale(r, f.baseline, round ? &*round : nullptr)});
    }
    f.ok_variants = cands.size();
    for (size_t i : ParetoFront(pts)) f.front.push_back(cands[i]);
  }
  return out;
}

std::string DescribeVariant(const TrialResult& r) {
  if (r.baseline) return "dense baseline";
  std::string buf = r.granularity == "dense" ? std::string("dense")
                                             : fmt::sprintf("%s %s %.0f%%", r.criterion.c_str(), r.granularity.c_str(), r.sparsity * 100);
  std::string v = buf;
  if (r.schedule == "iterative") v += " iter" + (r.round && r.round < r.rounds ? " r" + std::to_string(r.round) + "/" + std::to_string(r.rounds) : "");
  if (r.schedule == "sensitivity") v += " only " + r.layer;
  if (r.trial_json.find("\"distill_temperature\"") != std::string::npos) v += " +KD";  // written only when on
  if (r.trial_json.find("\"quantize\":\"int8\"") != std::string::npos) v += " +int8";  // likewise
  if (r.trial_json.find("\"quantize\":\"int8_dynamic\"") != std::string::npos) v += " +int8dyn";
  return v;
}

namespace {

std::string Row(const TrialResult& r, const TrialResult* base, const char* mark) {
  std::string buf;
  // Speedup: the interleaved A/B median against the baseline when the worker measured it;
  // otherwise the ratio of p90s measured in separate runs (shown without a spread).
  std::string speed = "-";
  if (r.speedup_p90 > 0)
    speed = fmt::sprintf("%5.2fx (%.2f-%.2f)", r.speedup_p90, r.speedup_min, r.speedup_max);
  else if (base && r.latency_p90_ms > 0)
    speed = fmt::sprintf("%5.2fx", base->latency_p90_ms / r.latency_p90_ms);
  double drop = base ? QualityLoss(r, *base) : 0;
  std::string worst = "     -";
  if (r.worst_class >= 0) worst = fmt::sprintf("%+6.2f", r.worst_class_drop * 100);
  // Language models: perplexity and its increase over dense in percent, in the same columns.
  const bool lm = ScoredByPerplexity(r);
  buf = fmt::sprintf(lm ? "%-2s %-12s %-24s %6.1f%% %8.2f %+6.1f%% %s %8.3f %8.3f %8.3f %-19s %-6s %10.0f %8llu %8.1f %s\n"
                        : "%-2s %-12s %-24s %6.1f%% %7.2f%% %+6.2f %s %8.3f %8.3f %8.3f %-19s %-6s %10.0f %8llu %8.1f %s\n",
                mark, r.task_id.c_str(), DescribeVariant(r).c_str(), r.achieved_sparsity * 100, lm ? r.perplexity : r.accuracy * 100, drop, worst,
                r.latency_p50_ms, r.latency_p90_ms, r.latency_p99_ms, speed,
                r.deployable_form.empty() ? "dense" : r.deployable_form.c_str(), r.throughput_sps,
                static_cast<unsigned long long>(r.params), r.model_bytes / 1024.0,
                r.benchmark_json.empty() ? "" : (r.bench_valid ? "VALID" : "INVALID"));
  return buf;
}

const char* kHeader =
    "   trial        variant                  achieved accuracy drop_pt worst_pt   p50_ms   p90_ms   p99_ms p90_speedup(spread)  form  offline_sps   params size_KiB bench\n";
const char* kLmHeader =
    "   trial        variant                  achieved perplexity ppl_+% worst_pt   p50_ms   p90_ms   p99_ms p90_speedup(spread)  form  offline_sps   params size_KiB bench\n";

}  // namespace

std::string FormatParetoTable(const std::vector<TrialResult>& results, const std::string& only_target) {
  std::string out;
  auto fronts = FrontsByTarget(results);
  if (fronts.empty()) return "no results yet\n";
  for (const auto& f : fronts) {
    if (!only_target.empty() && f.target != only_target) continue;
    const bool lm = f.baseline && ScoredByPerplexity(*f.baseline);
    std::string title = fmt::sprintf("Pareto front for target '%s': %s vs single-stream p90 latency (min%s); "
                  "%zu of %zu variants non-dominated, %zu failed\n",
                  f.target.c_str(), lm ? "perplexity (min)" : "accuracy (max)",
                  f.by_confirmation_round ? ", compared as timed side by side in the confirmation round" : "",
                  f.front.size(), f.ok_variants, f.failed);
    out += title;
    out += lm ? kLmHeader : kHeader;
    bool base_on_front = false;
    for (const TrialResult* r : f.front) {
      if (r == f.baseline) base_on_front = true;
      out += Row(*r, f.baseline, "*");
    }
    if (f.baseline && !base_on_front) out += Row(*f.baseline, f.baseline, "r");
    if (!f.baseline) out += "   (no successful dense baseline on this target: drops and ratios not available)\n";
    out += "   * = on the front, r = dense reference (dominated). Latencies: single-stream, batch 1, on the target,\n"
           "   in the fastest execution form measured (form). drop_pt = accuracy points lost vs the dense baseline\n"
           "   (language models: ppl_+% = perplexity increase over dense, in percent);\n"
           "   worst_pt = the largest per-class loss (points), where pruning hurts first.\n"
           "   p90_speedup = median of baseline/variant p90 ratios over interleaved A/B rounds on the same worker\n"
           "   (min-max in parentheses; >1 is faster). The front compares p90s measured side by side: a variant's\n"
           "   is the dense baseline's p90 / its p90_speedup (the p90 column is its own run's). bench = every\n"
           "   scenario run VALID or not (see `prunelab summary SWEEP TRIAL`).\n\n";
  }
  if (out.empty()) out = "no results for target '" + only_target + "'\n";
  return out;
}

std::string FormatResultsTable(const std::vector<TrialResult>& results) {
  std::string out;
  std::string current;
  for (const auto& r : results) {
    if (!IsTableRow(r)) continue;
    if (r.target != current) {
      current = r.target;
      out += "target '" + current + "'\n" + (ScoredByPerplexity(r) ? kLmHeader : kHeader);
    }
    if (!r.ok) {
      out += "!  " + r.task_id + "  " + DescribeVariant(r) + "  FAILED: " + r.error + "\n";
      continue;
    }
    const TrialResult* base = nullptr;
    for (const auto& b : results)
      if (b.baseline && b.ok && b.target == r.target) { base = &b; break; }
    out += Row(r, base, " ");
  }
  if (out.empty()) out = "no results yet\n";
  return out;
}

}  // namespace prunelab::coordinator
