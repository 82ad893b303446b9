#include "coordinator/decide/decision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <tuple>

#include <fmt/printf.h>

#include "common/codec/records.h"
#include "coordinator/decide/front.h"
#include "coordinator/decide/pareto.h"

namespace prunelab::coordinator {
namespace {

std::string Fmt(const char* format, double a, double b = 0) { return fmt::sprintf(format, a, b); }

double Value(const TrialResult& r, const Objective& o) {
  double v = 0;
  ObjectiveValue(r, o.field, &v);
  return o.maximize ? -v : v;  // smaller is better
}

// Gates against the baseline measured on the same target.
void Check(const GateSpec& g, const TrialResult* base, Verdict* v) {
  const TrialResult& r = *v->row;
  if (!base) {
    v->pass = false;
    v->reasons.push_back("no dense baseline measured on this target to compare with");
    return;
  }
  v->accuracy_drop_pt = (base->accuracy - r.accuracy) * 100;
  v->quality_loss = QualityLoss(r, *base);
  v->memory_fraction = base->model_bytes ? static_cast<double>(r.model_bytes) / base->model_bytes : 0;
  auto fail = [&](const std::string& why) {
    v->pass = false;
    v->reasons.push_back(why);
  };
  if (ScoredByPerplexity(r)) {
    const double ratio = base->perplexity > 0 ? r.perplexity / base->perplexity : 0;
    if (!(ratio > 0)) fail("perplexity not measured");
    else if (ratio > g.max_perplexity_ratio)
      fail(Fmt("perplexity %.2f", r.perplexity) + Fmt(" = %.3fx dense > %.3fx", ratio, g.max_perplexity_ratio));
  } else if (v->accuracy_drop_pt > g.max_accuracy_drop) {
    fail(Fmt("accuracy drop %.2f pt > %.2f", v->accuracy_drop_pt, g.max_accuracy_drop));
  }
  if (g.max_worst_class_drop >= 0 && r.worst_class_drop * 100 > g.max_worst_class_drop)
    fail(Fmt("worst-class drop %.2f pt > %.2f", r.worst_class_drop * 100, g.max_worst_class_drop));
  for (const auto& [field, budget] : g.latency_budget_ms) {
    double ms = 0;
    ObjectiveValue(r, field, &ms);
    if (ms <= 0) fail(field + " not measured");
    else if (ms > budget) fail(field + Fmt(" %.3f ms > %.3f ms", ms, budget));
  }
  if (g.max_memory_fraction > 0 && v->memory_fraction > g.max_memory_fraction)
    fail(Fmt("model memory %.0f%% of dense > %.0f%%", v->memory_fraction * 100, g.max_memory_fraction * 100));
  if (g.min_throughput_sps > 0 && r.throughput_sps < g.min_throughput_sps)
    fail(Fmt("throughput %.0f samples/s < %.0f", r.throughput_sps, g.min_throughput_sps));
}

// What the recommended variant gave up, in the task's terms.
std::string BelowDense(const Verdict& v) {
  return ScoredByPerplexity(*v.row) ? Fmt("perplexity %.2f, ", v.row->perplexity) + Fmt("%+.1f %% vs dense", v.quality_loss)
                                    : Fmt("%.2f pt below dense", v.accuracy_drop_pt);
}

PointSet PointsOf(const std::vector<const TrialResult*>& rows, const std::vector<Objective>& objs) {
  PointSet p;
  p.dims = objs.size();
  for (const auto* r : rows)
    for (const auto& o : objs) p.values.push_back(Value(*r, o));
  return p;
}

// Models whose ratio ranges in the confirmation round overlap (transitively) are within noise
// of each other: for ranking, every latency objective of such a group takes the group's best
// value, so which of two equally fast models looks faster in one run does not decide the
// front (the other objectives still do). Returns how many models took another's value.
size_t TieWithinNoise(const std::vector<const ConfirmedModel*>& confirmed, const std::vector<Objective>& objs,
                      PointSet* pts) {
  const size_t n = confirmed.size();
  std::vector<size_t> group(n);
  for (size_t i = 0; i < n; ++i) group[i] = i;
  std::function<size_t(size_t)> root = [&](size_t i) { return group[i] == i ? i : group[i] = root(group[i]); };
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j)
      if (confirmed[i] && confirmed[j] && ConfirmationRound::WithinNoise(*confirmed[i], *confirmed[j]))
        group[root(i)] = root(j);
  std::vector<bool> moved(n, false);
  for (size_t k = 0; k < objs.size(); ++k) {
    if (objs[k].maximize || objs[k].field.find("_ms") == std::string::npos) continue;
    std::map<size_t, double> best;
    for (size_t i = 0; i < n; ++i) {
      if (!confirmed[i]) continue;
      auto [it, fresh] = best.emplace(root(i), pts->values[i * pts->dims + k]);
      if (!fresh) it->second = std::min(it->second, pts->values[i * pts->dims + k]);
    }
    for (size_t i = 0; i < n; ++i) {
      if (!confirmed[i]) continue;
      double& v = pts->values[i * pts->dims + k];
      const double b = best[root(i)];
      if (v != b) {
        v = b;
        moved[i] = true;
      }
    }
  }
  return static_cast<size_t>(std::count(moved.begin(), moved.end(), true));
}

const Objective* LatencyObjective(const std::vector<Objective>& objs) {
  for (const auto& o : objs)
    if (!o.maximize && o.field.find("_ms") != std::string::npos) return &o;
  return nullptr;
}

}  // namespace

StatusOr<DecisionOptions> OptionsFromSpec(const ReportSpec& report) {
  DecisionOptions o;
  if (!report.objectives.empty()) {
    auto objs = ParseObjectives(report.objectives);
    if (!objs.ok()) return objs.status();
    o.objectives = objs.value();
    o.default_objectives = false;
  }
  o.gates = report.gates;
  o.rule = report.recommend;
  return o;
}

DecisionOptions ForRows(const DecisionOptions& options, const std::vector<TrialResult>& results) {
  DecisionOptions o = options;
  if (!o.default_objectives) return o;
  for (const auto& r : results)
    if (ScoredByPerplexity(r)) {
      o.objectives = DefaultObjectives("perplexity");
      break;
    }
  return o;
}

std::vector<TargetDecision> Decide(const std::vector<TrialResult>& results, const DecisionOptions& given) {
  const DecisionOptions options = ForRows(given, results);
  std::vector<TargetDecision> out;
  auto slot = [&](const std::string& t) -> TargetDecision& {
    for (auto& d : out)
      if (d.target == t) return d;
    out.push_back(TargetDecision{});
    out.back().target = t;
    return out.back();
  };
  for (const auto& r : results) {
    if (r.kind == TaskKind::kTrainBaseline || r.target.empty()) continue;
    TargetDecision& d = slot(r.target);
    if (r.kind == TaskKind::kConfirmTarget && r.ok) {
      auto round = ConfirmationFromJson(r.benchmark_json);
      if (round.ok()) {
        d.confirmation = std::make_shared<const ConfirmationRound>(std::move(round).value());
        d.confirmation_worker = r.worker_id;
      }
      continue;
    }
    if (!r.ok) {
      ++d.failed;
      continue;
    }
    if (r.baseline && !d.baseline) d.baseline = &r;
  }
  for (auto& d : out) {
    std::vector<const TrialResult*> rows;
    for (const auto& r : results) {
      if (r.kind == TaskKind::kTrainBaseline || r.kind == TaskKind::kConfirmTarget || !r.ok || r.target != d.target)
        continue;
      if (!r.baseline && r.latency_p90_ms <= 0) continue;  // evaluated only (rounds, sensitivity)
      rows.push_back(&r);
    }
    // Latencies measured at different moments by different workers are not compared: each
    // variant's come from its confirmation round if it was in one, else from its A/B rounds
    // against the baseline, either way relative to the baseline timed beside it and scaled to
    // one baseline figure.
    const bool round = d.confirmation && d.confirmation->skipped.empty() && !d.confirmation->models.empty();
    // The reference figure: the baseline's median p90 over the round's rounds when it ran (a
    // median of several moments), else the baseline's own benchmark.
    const ConfirmedModel* base_cm = round && d.baseline ? d.confirmation->Find(d.baseline->task_id) : nullptr;
    const double reference = base_cm && base_cm->median_p90_ms > 0 ? base_cm->median_p90_ms
                             : d.baseline                         ? d.baseline->latency_p90_ms
                                                                  : 0;
    std::vector<double> measured;
    std::vector<const ConfirmedModel*> confirmed;
    size_t scaled = 0;
    for (auto& r : rows) {
      measured.push_back(r->latency_p90_ms);
      const ConfirmedModel* cm = round ? d.confirmation->Find(r->task_id) : nullptr;
      if (cm && cm->median_ratio <= 0) cm = nullptr;
      confirmed.push_back(cm);
      const double scale = ComparedLatencyScale(*r, d.baseline, round ? d.confirmation.get() : nullptr);
      if (scale == 1) continue;
      d.compared.push_back(std::make_shared<const TrialResult>(ScaledSingleStream(*r, scale)));
      r = d.compared.back().get();
      ++scaled;
    }

    PointSet pts = PointsOf(rows, options.objectives);
    size_t tied = TieWithinNoise(confirmed, options.objectives, &pts);
    if (tied)
      d.notes.push_back(std::to_string(tied) + " model(s) rank as equally fast as another whose latency range in "
                        "the confirmation round overlaps theirs: fronts do not follow noise");
    std::vector<int> rank = ParetoRanks(pts);
    for (size_t i = 0; i < rows.size(); ++i) {
      Verdict v;
      v.row = rows[i];
      v.measured_p90_ms = measured[i];
      v.confirmed = confirmed[i];
      v.rank = rank[i];
      Check(options.gates, d.baseline, &v);
      d.variants.push_back(v);
    }
    std::stable_sort(d.variants.begin(), d.variants.end(), [&](const Verdict& a, const Verdict& b) {
      if (a.rank != b.rank) return a.rank < b.rank;
      return Value(*a.row, options.objectives[0]) < Value(*b.row, options.objectives[0]);
    });
    // Notes a reader needs before trusting the recommendation.
    if (options.gates.max_memory_fraction > 0) {
      bool any = false;
      for (const auto& v : d.variants) any |= d.baseline && v.memory_fraction <= options.gates.max_memory_fraction;
      if (!any && !d.variants.empty())
        d.notes.push_back(Fmt("no variant meets the memory gate (model memory at most %.0f%% of the dense model's)",
                              options.gates.max_memory_fraction * 100));
    }
    if (scaled)
      d.notes.push_back(std::to_string(scaled) + " row(s)' single-stream latencies are the dense baseline's on this "
                        "target" + Fmt(" (p90 %.3f ms", reference) +
                        (base_cm ? ", its median over the confirmation round)" : ")") +
                        " times their median ratio to it in the confirmation round, or divided by their median "
                        "interleaved A/B speedup: figures measured side by side, not at different moments (their own "
                        "runs' p90: `prunelab pareto`)");
    if (d.confirmation && !d.confirmation->skipped.empty())
      d.notes.push_back("no confirmation round: " + d.confirmation->skipped);
    if (round && d.confirmation->verdict != "clean") {
      std::string why;
      for (const auto& w : d.confirmation->invalid_reasons) why += (why.empty() ? "" : "; ") + w;
      d.notes.push_back("the confirmation round was disturbed (" + why + "); its ratios still compare models timed "
                        "side by side, but rerun on a quiet machine before deploying");
    }
    std::vector<const Verdict*> passing;
    for (const auto& v : d.variants)
      if (v.pass) passing.push_back(&v);
    if (passing.empty()) {
      d.why = d.variants.empty() ? "nothing benchmarked on this target yet"
                                 : "no variant passes every gate (see the reasons); keep the current model";
      continue;
    }
    const Verdict* best = nullptr;
    const Objective* lat = LatencyObjective(options.objectives);
    Objective p90{"latency_p90_ms", false};
    if (!lat) lat = &p90;
    if (options.rule == "most_accurate") {
      for (const auto* v : passing)
        if (!best || QualityScore(*v->row) > QualityScore(*best->row) ||
            (QualityScore(*v->row) == QualityScore(*best->row) && Value(*v->row, *lat) < Value(*best->row, *lat)))
          best = v;
      d.why = std::string(ScoredByPerplexity(*best->row) ? "most_accurate: the lowest perplexity"
                                                         : "most_accurate: the highest accuracy") +
              " among the " + std::to_string(passing.size()) + " variant(s) passing every gate (" +
              QualityText(*best->row) + ")";
    } else if (options.rule == "knee") {
      std::vector<const TrialResult*> rows;
      for (const auto* v : passing) rows.push_back(v->row);
      PointSet pp = PointsOf(rows, options.objectives);
      std::vector<size_t> front = NondominatedFront(pp);
      std::vector<double> lo(pp.dims, 1e300), hi(pp.dims, -1e300);
      for (size_t i : front)
        for (size_t k = 0; k < pp.dims; ++k) {
          lo[k] = std::min(lo[k], pp.row(i)[k]);
          hi[k] = std::max(hi[k], pp.row(i)[k]);
        }
      double best_dist = 1e300;
      for (size_t i : front) {
        double dist = 0;
        for (size_t k = 0; k < pp.dims; ++k) {
          double span = hi[k] - lo[k];
          double x = span > 0 ? (pp.row(i)[k] - lo[k]) / span : 0;
          dist += x * x;
        }
        if (dist < best_dist) {
          best_dist = dist;
          best = passing[i];
        }
      }
      d.why = "knee: the passing front's point closest to the ideal point (objectives scaled to [0, 1]; distance " +
              Fmt("%.3f)", std::sqrt(best_dist));
    } else if (std::any_of(passing.begin(), passing.end(), [](const Verdict* v) { return v->confirmed; })) {
      // From the confirmation round: the fastest confirmed candidate, or among those within
      // noise of it, the fewest bytes, then the smaller accuracy drop.
      const Verdict* fastest = nullptr;
      for (const auto* v : passing)
        if (v->confirmed && (!fastest || v->confirmed->median_ratio < fastest->confirmed->median_ratio)) fastest = v;
      std::vector<const Verdict*> tied;
      for (const auto* v : passing)
        if (v->confirmed && ConfirmationRound::WithinNoise(*v->confirmed, *fastest->confirmed)) tied.push_back(v);
      for (const auto* v : tied) {
        auto key = [](const Verdict* x) {
          return std::make_tuple(x->row->model_bytes, x->quality_loss, x->confirmed->median_ratio);
        };
        if (!best || key(v) < key(best)) best = v;
      }
      auto range = [](const ConfirmedModel& m) {
        return Fmt("%.2fx", m.median_ratio) + Fmt(" (%.2f-%.2f)", m.min_ratio, m.max_ratio);
      };
      d.why = "fastest, from the confirmation round (" + std::to_string(d.confirmation->rounds) +
              " interleaved rounds on one worker): " + best->row->task_id + " at " + range(*best->confirmed) +
              " of dense's p90";
      if (tied.size() > 1) {
        std::string others;
        for (const auto* v : tied) {
          d.within_noise.push_back(v->row->task_id);
          if (v != best) others += (others.empty() ? "" : ", ") + v->row->task_id + " " + range(*v->confirmed);
        }
        d.why += "; within noise of " + others + " (ranges overlap): the fewest bytes wins, then the smaller quality loss";
      }
      if (!best->row->baseline) d.why += ", " + BelowDense(*best);
    } else {
      for (const auto* v : passing) {
        double a = Value(*v->row, *lat);
        if (!best || a < Value(*best->row, *lat) ||
            (a == Value(*best->row, *lat) && QualityScore(*v->row) > QualityScore(*best->row)))
          best = v;
      }
      double ms = 0;
      ObjectiveValue(*best->row, lat->field, &ms);
      d.why = "fastest: the lowest " + lat->field + " among the " + std::to_string(passing.size()) +
              " variant(s) passing every gate" + Fmt(" (%.3f ms", ms) +
              (best->row->baseline ? ")" : ", " + BelowDense(*best) + ")");
    }
    d.recommended = best->row;
  }
  return out;
}

std::vector<const TrialResult*> ConfirmationCandidates(const TargetDecision& d, const DecisionOptions& options,
                                                       size_t best_n) {
  std::vector<const TrialResult*> out;
  if (!d.baseline) return out;
  out.push_back(d.baseline);
  const Objective* lat = LatencyObjective(options.objectives);
  Objective p90{"latency_p90_ms", false};
  if (!lat) lat = &p90;
  std::vector<const Verdict*> order;
  for (const auto& v : d.variants)
    if (!v.row->baseline && !v.row->artifact_hash.empty()) order.push_back(&v);
  std::stable_sort(order.begin(), order.end(),
                   [&](const Verdict* a, const Verdict* b) { return Value(*a->row, *lat) < Value(*b->row, *lat); });
  auto add = [&](const Verdict* v) {
    if (out.size() >= kMaxConfirmCandidates) return;
    for (const auto* r : out)
      if (r->task_id == v->row->task_id) return;
    out.push_back(v->row);
  };
  size_t passing = 0;
  for (const auto* v : order)
    if (v->pass && passing < best_n) {
      add(v);
      ++passing;
    }
  for (const auto* v : order)
    if (v->rank == 1) add(v);
  return out;
}

namespace {
// The objectives the decisions were made over (Decide's ForRows).
std::vector<Objective> ShownObjectives(const std::vector<TargetDecision>& decisions, const DecisionOptions& options) {
  if (options.default_objectives)
    for (const auto& d : decisions)
      for (const auto& v : d.variants)
        if (ScoredByPerplexity(*v.row)) return DefaultObjectives("perplexity");
  return options.objectives;
}
}  // namespace

std::string FormatDecisions(const std::vector<TargetDecision>& decisions, const DecisionOptions& options) {
  std::string s;
  std::string objs;
  for (const auto& o : ShownObjectives(decisions, options)) objs += (objs.empty() ? "" : ", ") + o.Label();
  for (const auto& d : decisions) {
    const bool lm = d.baseline && ScoredByPerplexity(*d.baseline);
    s += "\nTarget '" + d.target + "': fronts over " + objs + "; gates vs the dense baseline on this target\n";
    std::string line = fmt::sprintf("   %-5s %-13s %-28s %9s %8s %9s %8s  %s\n", "rank", "trial", "variant",
                                    lm ? "perplexity" : "accuracy", lm ? "ppl_+%" : "drop_pt", "p90_ms", "mem_%", "gates");
    s += line;
    for (const auto& v : d.variants) {
      std::string gates = v.pass ? "pass" : "FAIL: ";
      for (size_t i = 0; i < v.reasons.size(); ++i) gates += (i ? "; " : "") + v.reasons[i];
      line = fmt::sprintf(lm ? "%s  %-5d %-13s %-28s %9.2f %+8.2f %9.3f %7.0f%%  %s\n"
                             : "%s  %-5d %-13s %-28s %8.2f%% %+8.2f %9.3f %7.0f%%  %s\n",
                          v.row == d.recommended ? ">>" : "  ", v.rank, v.row->task_id.c_str(),
                          DescribeVariant(*v.row).c_str(), lm ? v.row->perplexity : v.row->accuracy * 100,
                          lm ? v.quality_loss : v.accuracy_drop_pt, v.row->latency_p90_ms, v.memory_fraction * 100,
                          gates.c_str());
      s += line;
    }
    if (d.confirmation && d.confirmation->skipped.empty()) {
      const ConfirmationRound& c = *d.confirmation;
      s += fmt::sprintf("   confirmation round: %u rounds, models in rotating order on %s, %u thread(s), %s\n", c.rounds,
                        d.confirmation_worker.empty() ? "one worker" : d.confirmation_worker.c_str(), c.threads,
                        c.verdict.c_str());
      for (const auto& m : c.models)
        s += fmt::sprintf("     %-13s %-7s p90 median %8.3f ms   %.2fx dense (%.2f-%.2f over rounds)%s\n",
                          m.task_id.c_str(), m.form.c_str(), m.median_p90_ms, m.median_ratio, m.min_ratio, m.max_ratio,
                          std::find(d.within_noise.begin(), d.within_noise.end(), m.task_id) != d.within_noise.end()
                              ? "  within noise"
                              : "");
    }
    for (const auto& n : d.notes) s += "   note: " + n + "\n";
    if (d.failed) s += "   " + std::to_string(d.failed) + " failed result(s) on this target (prunelab results shows why)\n";
    s += d.recommended ? "   recommended: " + d.recommended->task_id + " (" + DescribeVariant(*d.recommended) + ") — " + d.why + "\n"
                       : "   recommended: none — " + d.why + "\n";
  }
  return s;
}

nlohmann::json DecisionsJson(const std::vector<TargetDecision>& decisions, const DecisionOptions& options) {
  nlohmann::json objs = nlohmann::json::array();
  for (const auto& o : ShownObjectives(decisions, options))
    objs.push_back({{"field", o.field}, {"direction", o.maximize ? "max" : "min"}});
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& d : decisions) {
    nlohmann::json vs = nlohmann::json::array();
    for (const auto& v : d.variants)
      vs.push_back({{"trial", v.row->task_id}, {"variant", DescribeVariant(*v.row)}, {"rank", v.rank},
                    {"pass", v.pass}, {"reasons", v.reasons}, {"accuracy", v.row->accuracy},
                    {"accuracy_drop_pt", v.accuracy_drop_pt}, {"memory_fraction", v.memory_fraction},
                    {"metric", v.row->metric.empty() ? "accuracy" : v.row->metric},
                    {"perplexity", v.row->perplexity}, {"quality_loss", v.quality_loss},
                    {"latency_p90_ms", v.row->latency_p90_ms}, {"measured_latency_p90_ms", v.measured_p90_ms},
                    {"confirmed_ratio", v.confirmed ? nlohmann::json(v.confirmed->median_ratio) : nlohmann::json()},
                    {"model_bytes", v.row->model_bytes}});
    targets.push_back({{"target", d.target}, {"variants", vs}, {"notes", d.notes}, {"failed", d.failed},
                       {"recommended", d.recommended ? nlohmann::json(d.recommended->task_id) : nlohmann::json()},
                       {"why", d.why},
                       {"confirmation", d.confirmation ? ToJson(*d.confirmation) : nlohmann::json()},
                       {"within_noise", d.within_noise}});
  }
  return {{"objectives", objs}, {"rule", options.rule}, {"targets", targets}};
}

}  // namespace prunelab::coordinator
