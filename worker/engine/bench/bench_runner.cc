#include "worker/engine/bench/bench_runner.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/base/stats.h"
#include "worker/engine/bench/forms.h"
#include "worker/engine/model/model.h"
#include "worker/loadgen/memory.h"

namespace prunelab::worker {

using nlohmann::json;

ScenarioSettings SettingsFor(Scenario scenario, const BenchmarkConfig& cfg, uint64_t seed) {
  ScenarioSettings s;
  s.scenario = scenario;
  s.seed = seed;
  s.warmup_queries = cfg.warmup_queries;
  s.min_duration_s = cfg.min_duration_s;
  s.max_duration_s = cfg.max_duration_s;
  s.min_queries = cfg.min_queries;
  s.latency_bound_ms = cfg.server_latency_bound_ms;
  s.target_qps = cfg.server_target_qps;
  switch (scenario) {
    case Scenario::kSingleStream: s.samples_per_query = 1; break;
    case Scenario::kMultiStream: s.samples_per_query = cfg.multi_stream_samples; break;
    case Scenario::kServer: s.samples_per_query = 1; break;
    case Scenario::kOffline:
      s.samples_per_query = cfg.offline_batch_size;
      s.min_queries = cfg.offline_min_samples;
      s.min_duration_s = cfg.offline_min_duration_s;
      s.warmup_queries = std::min<uint32_t>(cfg.warmup_queries, 2);
      break;
  }
  if (cfg.profile == "mlperf") {
    s.min_duration_s = 600;
    s.max_duration_s = std::max(cfg.max_duration_s, 660.0);
    switch (scenario) {
      case Scenario::kSingleStream: s.min_queries = 1024; break;
      case Scenario::kMultiStream: s.min_queries = 662; break;
      case Scenario::kServer: s.min_queries = 270336; break;
      case Scenario::kOffline: s.min_queries = 24576; break;
    }
  }
  return s;
}

namespace {

json LatencyJson(const LatencySummary& l) {
  return json{{"count", l.count},   {"min_ms", l.min_ms}, {"mean_ms", l.mean_ms}, {"p50_ms", l.p50_ms},
              {"p90_ms", l.p90_ms}, {"p95_ms", l.p95_ms}, {"p99_ms", l.p99_ms},   {"p999_ms", l.p999_ms},
              {"max_ms", l.max_ms}};
}

json ReportJson(const ScenarioReport& r, const std::string& sut) {
  json j{{"scenario", ScenarioName(r.settings.scenario)},
         {"form", sut},
         {"result", r.valid ? "VALID" : "INVALID"},
         {"invalid_reasons", r.invalid_reasons},
         {"metric", r.Metric()},
         {"latency", LatencyJson(r.latency)},
         {"queries", r.queries},
         {"samples", r.samples},
         {"samples_per_query", r.settings.samples_per_query},
         {"duration_s", r.duration_s},
         {"queries_per_s", r.queries_per_s},
         {"samples_per_s", r.samples_per_s},
         {"peak_rss_bytes", r.peak_rss_bytes},
         {"min_duration_s", r.settings.min_duration_s},
         {"min_queries", r.settings.min_queries},
         {"seed", r.settings.seed},
         {"summary", r.Summary(sut)}};
  if (r.settings.scenario == Scenario::kSingleStream)
    j["early_stopping"] = {{"enough", r.early_stopping.enough},
                           {"p90_estimate_ms", r.early_stopping.estimate_ms},
                           {"min_queries", r.early_stopping.min_queries}};
  if (r.settings.scenario == Scenario::kServer)
    j["server"] = {{"target_qps", r.settings.target_qps}, {"latency_bound_ms", r.settings.latency_bound_ms}};
  return j;
}

// Settings of one side of an interleaved comparison (A/B rounds, the confirmation round):
// half the single-stream minimums, a short warm-up.
ScenarioSettings Interleaved(const ScenarioSettings& single) {
  ScenarioSettings s = single;
  s.min_duration_s = std::max(0.05, single.min_duration_s / 2);
  s.min_queries = std::max<uint64_t>(100, single.min_queries / 2);
  s.warmup_queries = std::min<uint32_t>(single.warmup_queries, 20);
  return s;
}

// Runs a scenario with memory accounting around it.
ScenarioReport Measure(SystemUnderTest& sut, BenchTimer& timer, const ScenarioSettings& s) {
  ResetPeakRss();
  ScenarioReport r = RunScenario(sut, timer, s);
  r.peak_rss_bytes = PeakRssBytes();
  return r;
}

}  // namespace

namespace {

// One benchmark of one variant, in three steps that share what they found: the deployable
// form (fastest single-stream p90), the scenarios on it, A/B rounds against the baseline.
class BenchmarkRun {
 public:
  BenchmarkRun(const BenchRequest& req, TrialResult* r)
      : req(req), cfg(req.config), r(r), timer(NewSteadyTimer()), single(Settings(Scenario::kSingleStream)) {
    detail["profile"] = cfg.profile;
  }

  Status ChooseForm() {
    // 1. Every candidate execution form, single-stream; the fastest p90 is deployable.
    std::vector<std::string> forms = CandidateForms(req.has_unstructured_zeros && cfg.sparse_forms);
    json forms_json = json::array();
    for (const auto& form : forms) {
      phase("benchmarking form " + form);
      auto sut = MakeSut(form, *req.variant, *req.samples);
      if (!sut.ok()) {
        // A form this model cannot take is reported, not fatal; the plain module always runs.
        if (form == "dense") return sut.status();
        forms_json.push_back({{"form", form}, {"error", sut.status().message()}});
        continue;
      }
      ScenarioReport rep = Measure(*sut.value(), *timer, single);
      if (cancelled()) return kCancelled;
      forms_json.push_back({{"form", form},
                            {"p50_ms", rep.latency.p50_ms},
                            {"p90_ms", rep.latency.p90_ms},
                            {"p99_ms", rep.latency.p99_ms},
                            {"valid", rep.valid}});
      if (best_form.empty() || rep.latency.p90_ms < best_single.latency.p90_ms) {
        best_form = form;
        best_single = rep;
        best_sut = std::move(sut).value();
      }
    }
    for (auto& f : forms_json) f["chosen"] = f["form"] == best_form;
    detail["forms"] = forms_json;
    detail["deployable_form"] = best_form;
    r->deployable_form = best_form;
    return Status::Ok();
  }

  Status RunScenarios() {
    // 2. The requested scenarios on the deployable form.
    json scenarios = json::array();
    for (const auto& name : cfg.scenarios) {
      auto sc = ParseScenario(name);
      if (!sc.ok()) return sc.status();
      ScenarioReport rep;
      if (sc.value() == Scenario::kSingleStream) {
        rep = best_single;
      } else if (sc.value() == Scenario::kServer && cfg.server_target_qps <= 0) {
        phase("benchmarking server (QPS search)");
        // Bracket around the single-stream capacity of one query at a time.
        double capacity = best_single.latency.mean_ms > 0 ? 1000.0 / best_single.latency.mean_ms : 100.0;
        ScenarioSettings s = Settings(Scenario::kServer);
        ResetPeakRss();
        ServerSearch search = SearchServerQps(*best_sut, *timer, s, 0.1 * capacity, 1.5 * capacity, 6);
        if (cancelled() || search.probes.empty()) return kCancelled;  // stopped before a probe finished
        json probes = json::array();
        for (const auto& p : search.probes)
          probes.push_back({{"target_qps", p.settings.target_qps}, {"p99_ms", p.latency.p99_ms}, {"valid", p.valid}});
        detail["server_search"] = {{"probes", probes}, {"best_qps", search.best_qps},
                                   {"latency_bound_ms", s.latency_bound_ms}};
        rep = search.best_qps > 0 ? search.best : search.probes.front();
        rep.peak_rss_bytes = PeakRssBytes();
        r->server_max_qps = search.best_qps;
        r->server_p99_ms = rep.latency.p99_ms;
        if (search.best_qps <= 0) rep.invalid_reasons.push_back("no probed QPS met the p99 bound");
        rep.valid = rep.invalid_reasons.empty();
      } else {
        phase("benchmarking " + name);
        rep = Measure(*best_sut, *timer, Settings(sc.value()));
        if (sc.value() == Scenario::kServer) {
          r->server_max_qps = rep.valid ? rep.settings.target_qps : 0;
          r->server_p99_ms = rep.latency.p99_ms;
        }
      }
      if (cancelled()) return kCancelled;
      if (sc.value() == Scenario::kMultiStream) r->multistream_p99_ms = rep.latency.p99_ms;
      if (sc.value() == Scenario::kOffline) r->throughput_sps = rep.samples_per_s;
      all_valid &= rep.valid;
      peak = std::max(peak, rep.peak_rss_bytes);
      scenarios.push_back(ReportJson(rep, best_form));
    }
    detail["scenarios"] = scenarios;

    r->latency_mean_ms = best_single.latency.mean_ms;
    r->latency_p50_ms = best_single.latency.p50_ms;
    r->latency_p90_ms = best_single.latency.p90_ms;
    r->latency_p95_ms = best_single.latency.p95_ms;
    r->latency_p99_ms = best_single.latency.p99_ms;
    r->latency_p999_ms = best_single.latency.p999_ms;
    r->early_stop_p90_ms = best_single.early_stopping.estimate_ms;
    r->queries = best_single.queries;
    r->bench_duration_s = best_single.duration_s;
    peak = std::max(peak, best_single.peak_rss_bytes);
    all_valid &= best_single.valid;

    return Status::Ok();
  }

  Status AbAgainstBaseline() {
    // 3. Interleaved A/B against the dense baseline: drift hits both sides alike.
    {
      phase("A/B against the baseline");
      // Deployable against deployable: the baseline runs in its own fastest form.
      std::string base_form;
      double base_best = 0;
      for (const auto& form : CandidateForms(false)) {
        auto sut = MakeSut(form, *req.baseline, *req.samples);
        if (!sut.ok()) {
          if (form == "dense") return sut.status();
          continue;
        }
        double p90 = RunScenario(*sut.value(), *timer, single).latency.p90_ms;
        if (cancelled()) return kCancelled;
        if (base_form.empty() || p90 < base_best) {
          base_form = form;
          base_best = p90;
        }
      }
      auto base_sut = MakeSut(base_form, *req.baseline, *req.samples);
      if (!base_sut.ok()) return base_sut.status();
      ScenarioSettings ab = Interleaved(single);
      json rounds = json::array();
      std::vector<double> ratios;
      for (uint32_t i = 0; i < cfg.ab_rounds; ++i) {
        ab.seed = req.seed + i;  // both sides see the same samples in a round
        ScenarioReport a = RunScenario(*base_sut.value(), *timer, ab);
        ScenarioReport b = RunScenario(*best_sut, *timer, ab);
        if (cancelled()) return kCancelled;
        double ratio = b.latency.p90_ms > 0 ? a.latency.p90_ms / b.latency.p90_ms : 0;
        ratios.push_back(ratio);
        rounds.push_back({{"baseline_p90_ms", a.latency.p90_ms}, {"variant_p90_ms", b.latency.p90_ms},
                          {"baseline_p50_ms", a.latency.p50_ms}, {"variant_p50_ms", b.latency.p50_ms},
                          {"ratio_p90", ratio}});
      }
      r->speedup_p90 = Median(ratios);
      r->speedup_min = *std::min_element(ratios.begin(), ratios.end());
      r->speedup_max = *std::max_element(ratios.begin(), ratios.end());
      detail["ab"] = {{"rounds", rounds},
                      {"speedup_p90_median", r->speedup_p90},
                      {"speedup_p90_min", r->speedup_min},
                      {"speedup_p90_max", r->speedup_max},
                      {"variant_form", best_form},
                      {"baseline_form", base_form},
                      {"note", "baseline/variant p90 ratio per interleaved round (A B A B ...); >1 is faster"}};
    }
    return Status::Ok();
  }

  // attempts: the interference seen by every run of this benchmark; reasons: why the last one
  // is not to be trusted (empty: it is).
  void Finish(json attempts, const std::vector<std::string>& reasons) {
    detail["interference"] = {{"policy", ToJson(req.interference)},
                              {"attempts", std::move(attempts)},
                              {"verdict", reasons.empty() ? "clean" : "INVALID"}};
    if (!reasons.empty()) {
      detail["invalid_reasons"] = reasons;
      all_valid = false;
    }
    r->peak_rss_bytes = peak;
    r->bench_valid = all_valid;
    r->benchmark_json = detail.dump();
  }
  void phase(const std::string& p) const {
    if (req.on_phase) req.on_phase(p);
  }

 private:
  ScenarioSettings Settings(Scenario sc) const {
    ScenarioSettings s = SettingsFor(sc, cfg, req.seed);
    s.cancelled = req.cancelled;
    return s;
  }
  bool cancelled() const { return req.cancelled && req.cancelled(); }

  const Status kCancelled = Status::Unavailable("benchmark cancelled: the worker is stopping");
  const BenchRequest& req;
  const BenchmarkConfig& cfg;
  TrialResult* r;
  std::unique_ptr<BenchTimer> timer;
  const ScenarioSettings single;
  json detail;
  bool all_valid = true;
  uint64_t peak = 0;
  std::string best_form;
  ScenarioReport best_single;
  std::unique_ptr<SystemUnderTest> best_sut;
};

}  // namespace

Status RunConfirmation(const ConfirmRequest& req, ConfirmationRound* round) {
  if (req.models.size() < 2) return Status::InvalidArgument("confirmation round: fewer than two models to compare");
  auto phase = [&](const std::string& p) {
    if (req.on_phase) req.on_phase(p);
  };
  auto cancelled = [&] { return req.cancelled && req.cancelled(); };
  std::vector<std::unique_ptr<SystemUnderTest>> suts;
  round->models.clear();
  for (const auto& m : req.models) {
    ConfirmedModel cm;
    cm.task_id = m.task_id;
    cm.form = m.form;
    auto sut = MakeSut(m.form, *m.module, *req.samples);
    if (!sut.ok() && m.form != "dense") {
      cm.form = "dense (" + m.form + ": " + sut.status().message().substr(0, 120) + ")";
      sut = MakeSut("dense", *m.module, *req.samples);
    }
    if (!sut.ok()) return Status::InvalidArgument(m.task_id + ": " + sut.status().message());
    suts.push_back(std::move(sut).value());
    round->models.push_back(std::move(cm));
  }
  auto timer = NewSteadyTimer();
  ScenarioSettings settings = Interleaved(SettingsFor(Scenario::kSingleStream, req.config, req.seed));
  settings.cancelled = req.cancelled;
  round->rounds = req.config.confirm_rounds;
  const size_t n = suts.size();
  auto before = ReadCpuSample();
  for (uint32_t i = 0; i < req.config.confirm_rounds; ++i) {
    phase("confirmation round " + std::to_string(i + 1) + " of " + std::to_string(req.config.confirm_rounds) + " (" +
          std::to_string(n) + " models)");
    settings.seed = req.seed + i;  // every model sees the same samples within a round
    for (size_t k = 0; k < n; ++k) {
      const size_t idx = (i + k) % n;
      ScenarioReport rep = RunScenario(*suts[idx], *timer, settings);
      if (cancelled()) return Status::Unavailable("confirmation round cancelled: the worker is stopping");
      round->models[idx].p90_ms.push_back(rep.latency.p90_ms);
    }
  }
  auto after = ReadCpuSample();
  if (before.ok() && after.ok()) round->invalid_reasons = Judge(Between(before.value(), after.value()), req.interference);
  round->verdict = round->invalid_reasons.empty() ? "clean" : "INVALID";
  SummarizeConfirmation(round);
  return Status::Ok();
}

Status RunBenchmarks(const BenchRequest& req, TrialResult* r) {
  // The whole benchmark is one run under observation: the machine's other load is read before
  // and after it; a disturbed run (or one whose A/B rounds disagree) is run again, and the last
  // run's figures stand, INVALID with its reasons if it was disturbed too.
  const InterferencePolicy& policy = req.interference;
  json attempts = json::array();
  for (int attempt = 0;; ++attempt) {
    auto before = ReadCpuSample();
    BenchmarkRun run(req, r);
    PRUNELAB_RETURN_IF_ERROR(run.ChooseForm());
    PRUNELAB_RETURN_IF_ERROR(run.RunScenarios());
    const bool ab = req.baseline && req.config.ab_rounds > 0;
    if (ab) PRUNELAB_RETURN_IF_ERROR(run.AbAgainstBaseline());
    auto after = ReadCpuSample();
    std::vector<std::string> reasons;
    json seen;
    if (before.ok() && after.ok()) {
      Interference i = Between(before.value(), after.value());
      seen = ToJson(i);
      reasons = Judge(i, policy);
    } else {
      seen = {{"error", (before.ok() ? after.status() : before.status()).ToString()}};
    }
    if (ab)
      for (auto& why : JudgeAbSpread(r->speedup_min, r->speedup_max, policy)) reasons.push_back(std::move(why));
    seen["invalid_reasons"] = reasons;
    attempts.push_back(seen);
    const bool cancelled = req.cancelled && req.cancelled();
    if (reasons.empty() || attempt >= policy.retries || cancelled) {
      run.Finish(std::move(attempts), reasons);
      return Status::Ok();
    }
    run.phase("benchmark disturbed (" + reasons.front() + "); again in " +
              std::to_string(static_cast<int>(policy.retry_pause_s * 1000)) + " ms, try " + std::to_string(attempt + 2) +
              " of " + std::to_string(policy.retries + 1));
    for (double waited = 0; waited < policy.retry_pause_s && !(req.cancelled && req.cancelled()); waited += 0.05)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace prunelab::worker
