#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <random>
#include <regex>
#include <set>

#include "coordinator/decide/decision.h"
#include "tests/status_matchers.h"
#include "coordinator/decide/front.h"
#include "coordinator/decide/model_card.h"
#include "coordinator/decide/report.h"
#include "tests/test_util.h"
#include "coordinator/decide/pareto.h"

namespace prunelab::coordinator {
namespace {

using prunelab::testing::IsError;

// Reference: all-pairs dominance; among identical points only the lowest index is kept.
std::set<size_t> BruteForce(const std::vector<Point2>& p) {
  std::set<size_t> out;
  for (size_t i = 0; i < p.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < p.size() && !dominated; ++j) {
      if (i == j) continue;
      bool ge = p[j].maximize >= p[i].maximize && p[j].minimize <= p[i].minimize;
      bool strictly = p[j].maximize > p[i].maximize || p[j].minimize < p[i].minimize;
      if (ge && strictly) dominated = true;
      if (!strictly && ge && j < i) dominated = true;  // duplicate of an earlier point
    }
    if (!dominated) out.insert(i);
  }
  return out;
}

TEST(ParetoTest, MatchesBruteForceOnRandomPointsWithTies) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    size_t n = 1 + rng() % 40;
    std::vector<Point2> pts;
    for (size_t i = 0; i < n; ++i)  // coarse grid: many ties and duplicates
      pts.push_back({static_cast<double>(rng() % 6), static_cast<double>(rng() % 6)});
    auto front = ParetoFront(pts);
    std::set<size_t> got(front.begin(), front.end());
    EXPECT_EQ(got.size(), front.size());
    EXPECT_EQ(got, BruteForce(pts)) << "round " << round;
    for (size_t k = 1; k < front.size(); ++k) EXPECT_LT(pts[front[k - 1]].minimize, pts[front[k]].minimize);
  }
}

TrialResult R(const std::string& id, const std::string& target, bool baseline, double acc, double p90, bool ok = true) {
  TrialResult r;
  r.task_id = id;
  r.target = target;
  r.baseline = baseline;
  r.kind = baseline ? TaskKind::kEvaluateBaseline : TaskKind::kPruneTrial;
  r.accuracy = acc;
  r.latency_p90_ms = p90;
  r.ok = ok;
  return r;
}

TEST(ParetoTest, OneFrontPerTargetWithBaselineAndFailures) {
  std::vector<TrialResult> rs = {
      R("base@a", "a", true, 0.90, 0.35), R("t1@a", "a", false, 0.89, 0.17), R("t2@a", "a", false, 0.85, 0.30),
      R("t3@a", "a", false, 0.0, 0.0, false), R("base@b", "b", true, 0.90, 1.0), R("t1@b", "b", false, 0.89, 2.0)};
  auto fronts = FrontsByTarget(rs);
  ASSERT_EQ(fronts.size(), 2u);
  EXPECT_EQ(fronts[0].target, "a");
  ASSERT_EQ(fronts[0].front.size(), 2u);  // t1 (fast) and baseline (accurate); t2 dominated by t1
  EXPECT_EQ(fronts[0].front[0]->task_id, "t1@a");
  EXPECT_EQ(fronts[0].front[1]->task_id, "base@a");
  EXPECT_EQ(fronts[0].failed, 1u);
  EXPECT_EQ(fronts[0].baseline->task_id, "base@a");
  ASSERT_EQ(fronts[1].front.size(), 1u);  // on b the variant is slower and worse
  EXPECT_EQ(fronts[1].front[0]->task_id, "base@b");
  std::string table = FormatParetoTable(rs, "a");
  EXPECT_NE(table.find("t1@a"), std::string::npos);
  EXPECT_EQ(table.find("t2@a"), std::string::npos);
  EXPECT_EQ(table.find("target 'b'"), std::string::npos);
  EXPECT_NE(table.find("2.06x"), std::string::npos) << table;  // 0.35 / 0.17, separate runs
  rs[1].speedup_p90 = 1.9;
  rs[1].speedup_min = 1.8;
  rs[1].speedup_max = 2.0;
  table = FormatParetoTable(rs, "a");
  EXPECT_NE(table.find("1.90x (1.80-2.00)"), std::string::npos) << table;  // A/B figure preferred
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

TEST(ParetoTest, UnbenchmarkedRowsStayOffTheFrontAndSayWhatTheyAre) {
  std::vector<TrialResult> rs = {R("base@a", "a", true, 0.90, 0.35), R("t1@a", "a", false, 0.89, 0.17),
                                 R("t2@a/r1", "a", false, 0.91, 0.0), R("t3@a", "a", false, 0.80, 0.0)};
  rs[2].schedule = "iterative";
  rs[2].round = 1;
  rs[2].rounds = 4;
  rs[3].schedule = "sensitivity";
  rs[3].layer = "conv2";
  auto fronts = FrontsByTarget(rs);
  ASSERT_EQ(fronts[0].front.size(), 2u) << "a row without a latency is not a deployable point";
  std::string all = FormatResultsTable(rs);
  EXPECT_NE(all.find("iter r1/4"), std::string::npos) << all;
  EXPECT_NE(all.find("only conv2"), std::string::npos) << all;
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

// Random point sets with many ties and exact duplicates (values from a small grid).
PointSet RandomPoints(std::mt19937& rng, size_t n, size_t dims, int grid) {
  std::uniform_int_distribution<int> v(0, grid);
  PointSet p;
  p.dims = dims;
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < dims; ++k) p.values.push_back(v(rng));
  // Duplicate some rows exactly.
  for (size_t i = 0; i + 1 < n; i += 7)
    for (size_t k = 0; k < dims; ++k) p.values[(i + 1) * dims + k] = p.values[i * dims + k];
  return p;
}

TEST(FrontTest, MatchesBruteForceOnRandomSetsWithTiesAndDuplicates) {
  std::mt19937 rng(11);
  for (size_t dims = 1; dims <= 5; ++dims)
    for (int trial = 0; trial < 40; ++trial) {
      size_t n = 1 + rng() % 300;
      PointSet p = RandomPoints(rng, n, dims, trial % 2 ? 5 : 1000);
      EXPECT_EQ(NondominatedFront(p), BruteForceFront(p)) << dims << " objectives, trial " << trial;
    }
}

TEST(FrontTest, RanksPeelSuccessiveFrontsAndDuplicatesShareARank) {
  std::mt19937 rng(5);
  for (size_t dims = 2; dims <= 4; ++dims) {
    PointSet p = RandomPoints(rng, 200, dims, 6);
    auto rank = ParetoRanks(p);
    // Reference: rank r = brute-force front of what is left after ranks < r.
    std::vector<size_t> left(p.size());
    std::iota(left.begin(), left.end(), 0);
    for (int r = 1; !left.empty(); ++r) {
      PointSet sub;
      sub.dims = dims;
      for (size_t i : left) sub.values.insert(sub.values.end(), p.row(i), p.row(i) + dims);
      std::set<size_t> front;
      for (size_t j : BruteForceFront(sub)) front.insert(left[j]);
      std::vector<size_t> rest;
      for (size_t i : left) {
        EXPECT_EQ(rank[i] == r, front.count(i) == 1) << "point " << i << " rank " << rank[i] << " expected " << r;
        if (!front.count(i)) rest.push_back(i);
      }
      left.swap(rest);
    }
    for (size_t i = 0; i + 1 < p.size(); i += 7) EXPECT_EQ(rank[i], rank[i + 1]) << "duplicates share a rank";
  }
}

TEST(FrontTest, ObjectivesParseWithDirectionsAndNameWhatIsAllowed) {
  auto o = ParseObjectives("accuracy:max,latency_p99_ms:min,peak_rss_bytes:min");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  ASSERT_EQ(o->size(), 3u);
  EXPECT_TRUE((*o)[0].maximize);
  EXPECT_FALSE((*o)[1].maximize);
  auto bad = ParseObjectives("accuracy:max,speed:min");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown field 'speed'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("latency_p90_ms"), std::string::npos) << "lists the allowed fields";
  EXPECT_TRUE(IsError(ParseObjectives("accuracy"), Status::Code::kInvalidArgument, "direction must be max or min")) << "a direction is required";
  // The suggestion follows the metric registry's direction; the allowed list carries units.
  EXPECT_TRUE(IsError(ParseObjectives("accuracy"), Status::Code::kInvalidArgument, "as in accuracy:max"));
  EXPECT_TRUE(IsError(ParseObjectives("latency_p90_ms"), Status::Code::kInvalidArgument, "as in latency_p90_ms:min"));
  EXPECT_TRUE(IsError(ParseObjectives("speed:min"), Status::Code::kInvalidArgument, "latency_p90_ms (ms)"));
  EXPECT_TRUE(IsError(ParseObjectives("accuracy:max,accuracy:min"), Status::Code::kInvalidArgument, "objective 'accuracy' is listed twice"));
  TrialResult r;
  r.peak_rss_bytes = 5;
  double v = 0;
  ASSERT_TRUE(ObjectiveValue(r, "peak_rss_bytes", &v));
  EXPECT_EQ(v, 5);
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

TrialResult Row(const std::string& id, double acc, double p90, uint64_t bytes, bool baseline = false) {
  TrialResult r;
  r.task_id = id;
  r.target = "cpu";
  r.ok = true;
  r.baseline = baseline;
  r.kind = baseline ? TaskKind::kEvaluateBaseline : TaskKind::kPruneTrial;
  r.criterion = "l1";
  r.granularity = "structured";
  r.accuracy = acc;
  r.latency_p90_ms = p90;
  r.latency_p99_ms = p90 * 1.2;
  r.model_bytes = bytes;
  r.throughput_sps = 1000 / p90;
  r.per_class_accuracy.assign(10, acc);
  return r;
}

std::vector<TrialResult> HandMade() {
  return {Row("base@cpu", 0.90, 1.0, 1000, true),
          Row("t001@cpu", 0.895, 0.8, 600),   // memory 60 %: fails the 0.5 gate
          Row("t002@cpu", 0.885, 0.6, 400),   // passes: drop 1.5 pt, 40 %
          Row("t003@cpu", 0.889, 0.7, 300),   // passes: drop 1.1 pt, 30 %
          Row("t004@cpu", 0.870, 0.3, 100),   // drop 3 pt: fails accuracy
          Row("t005@cpu", 0.880, 0.9, 500)};  // dominated by t002 and t003
}

TEST(DecisionTest, GatesNameEveryFailureAndRulesPickDifferentVariants) {
  auto rows = HandMade();
  DecisionOptions o;  // default objectives, 2 pt drop, memory 0.5, rule fastest
  auto d = Decide(rows, o);
  ASSERT_EQ(d.size(), 1u);
  std::map<std::string, const Verdict*> by;
  for (const auto& v : d[0].variants) by[v.row->task_id] = &v;
  ASSERT_EQ(by.size(), 6u);
  EXPECT_FALSE(by["t001@cpu"]->pass);
  EXPECT_NE(by["t001@cpu"]->reasons.at(0).find("model memory 60% of dense > 50%"), std::string::npos);
  EXPECT_FALSE(by["t004@cpu"]->pass);
  EXPECT_NE(by["t004@cpu"]->reasons.at(0).find("accuracy drop 3.00 pt > 2.00"), std::string::npos);
  EXPECT_TRUE(by["t002@cpu"]->pass);
  EXPECT_TRUE(by["t003@cpu"]->pass);
  EXPECT_FALSE(by["base@cpu"]->pass) << "the dense model is 100 % of itself";
  EXPECT_EQ(by["t005@cpu"]->rank, 2);
  EXPECT_EQ(by["t004@cpu"]->rank, 1);
  ASSERT_NE(d[0].recommended, nullptr);
  EXPECT_EQ(d[0].recommended->task_id, "t002@cpu") << "fastest passing";
  o.rule = "most_accurate";
  EXPECT_EQ(Decide(rows, o)[0].recommended->task_id, "t003@cpu");
  // A latency budget and a worst-class gate reject more.
  o.rule = "fastest";
  o.gates.latency_budget_ms["latency_p90_ms"] = 0.65;
  EXPECT_EQ(Decide(rows, o)[0].recommended->task_id, "t002@cpu");
  o.gates.latency_budget_ms["latency_p90_ms"] = 0.5;
  auto none = Decide(rows, o);
  EXPECT_EQ(none[0].recommended, nullptr);
  EXPECT_NE(none[0].why.find("no variant passes every gate"), std::string::npos);
  // Nothing small enough: the report says so.
  DecisionOptions tight;
  tight.gates.max_memory_fraction = 0.05;
  auto t = Decide(rows, tight);
  ASSERT_FALSE(t[0].notes.empty());
  EXPECT_NE(t[0].notes[0].find("no variant meets the memory gate"), std::string::npos);
  // Knee: a passing front point, deterministic.
  DecisionOptions knee;
  knee.rule = "knee";
  auto k = Decide(rows, knee);
  ASSERT_NE(k[0].recommended, nullptr);
  EXPECT_TRUE(k[0].recommended->task_id == "t002@cpu" || k[0].recommended->task_id == "t003@cpu");
  EXPECT_EQ(Decide(rows, knee)[0].recommended, k[0].recommended);
}

// Language models: rows whose metric is perplexity are ranked, gated and tabled by it (lower
// is better; the gate is a ratio to dense), with the default objectives taking perplexity's
// place and next-token accuracy playing no part.
TEST(DecisionTest, LanguageModelRowsAreDecidedByPerplexity) {
  auto lm = [](const std::string& id, double ppl, double p90, uint64_t bytes, bool baseline = false) {
    TrialResult r = Row(id, /*next-token accuracy, ignored*/ 0.30, p90, bytes, baseline);
    r.metric = "perplexity";
    r.perplexity = ppl;
    r.baseline_perplexity = 40.0;
    return r;
  };
  std::vector<TrialResult> rows{lm("base@cpu", 40.0, 1.0, 1000, true), lm("t001@cpu", 44.0, 0.6, 450),
                                lm("t002@cpu", 52.0, 0.4, 300), lm("t003@cpu", 45.0, 0.9, 480)};
  rows[1].accuracy = 0.01;  // a next-token accuracy that would fail any accuracy gate
  DecisionOptions o;
  o.gates.max_perplexity_ratio = 1.15;
  auto d = Decide(rows, o);
  ASSERT_EQ(d.size(), 1u);
  std::map<std::string, const Verdict*> by;
  for (const auto& v : d[0].variants) by[v.row->task_id] = &v;
  EXPECT_TRUE(by["t001@cpu"]->pass) << "44 / 40 = 1.10x; the accuracy gate does not apply";
  EXPECT_NEAR(by["t001@cpu"]->quality_loss, 10.0, 1e-9);
  ASSERT_FALSE(by["t002@cpu"]->pass);
  EXPECT_NE(by["t002@cpu"]->reasons.at(0).find("perplexity 52.00 = 1.300x dense > 1.150x"), std::string::npos)
      << by["t002@cpu"]->reasons.at(0);
  EXPECT_EQ(by["t003@cpu"]->rank, 2) << "worse perplexity and slower than t001: dominated";
  ASSERT_NE(d[0].recommended, nullptr);
  EXPECT_EQ(d[0].recommended->task_id, "t001@cpu");
  EXPECT_NE(d[0].why.find("perplexity 44.00, +10.0 % vs dense"), std::string::npos) << d[0].why;
  o.rule = "most_accurate";
  auto m = Decide(rows, o);
  ASSERT_NE(m[0].recommended, nullptr);
  EXPECT_EQ(m[0].recommended->task_id, "t001@cpu") << "the lowest perplexity passing, not the highest accuracy";
  EXPECT_NE(m[0].why.find("the lowest perplexity"), std::string::npos) << m[0].why;
  const std::string text = FormatDecisions(d, o);
  EXPECT_NE(text.find("perplexity (min)"), std::string::npos) << text;
  EXPECT_NE(text.find("ppl_+%"), std::string::npos) << text;
  EXPECT_EQ(DecisionsJson(d, o)["objectives"][0]["field"], "perplexity");
  const std::string table = FormatParetoTable(rows, "");
  EXPECT_NE(table.find("perplexity (min) vs single-stream p90"), std::string::npos) << table;
  EXPECT_EQ(table.find("t003@cpu"), std::string::npos) << "dominated: off the front\n" << table;
  EXPECT_NE(FormatResultsTable(rows).find("perplexity ppl_+%"), std::string::npos) << FormatResultsTable(rows);
  // Objectives the spec names are kept as given.
  auto named = OptionsFromSpec(ReportSpec{"accuracy:max,latency_p90_ms:min", "fastest", {}});
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(ForRows(named.value(), rows).objectives[0].field, "accuracy");
}

// Issue 25's run 1, as recorded: the 30 % variant's own run read 0.897 ms (twice as fast as in
// the runs before and after it) while its interleaved A/B rounds said 1.76x against the 50 %
// variant's 2.84x. Fronts, gates and the recommendation compare the side-by-side figures.
TEST(DecisionTest, LatenciesAreComparedAsMeasuredSideBySideNotAtDifferentMoments) {
  std::vector<TrialResult> rows{Row("base@cpu", 0.90, 3.030, 1000, true), Row("t001@cpu", 0.895, 0.897, 400),
                                Row("t002@cpu", 0.893, 1.023, 250)};
  rows[1].speedup_p90 = 1.76;
  rows[2].speedup_p90 = 2.84;
  DecisionOptions o;
  auto d = Decide(rows, o);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_NE(d[0].recommended, nullptr);
  EXPECT_EQ(d[0].recommended->task_id, "t002@cpu") << d[0].why;
  EXPECT_NE(d[0].why.find("(1.067 ms"), std::string::npos) << "3.030 / 2.84: " << d[0].why;
  std::map<std::string, const Verdict*> by;
  for (const auto& v : d[0].variants) by[v.row->task_id] = &v;
  EXPECT_NEAR(by["t001@cpu"]->row->latency_p90_ms, 3.030 / 1.76, 1e-9);
  EXPECT_DOUBLE_EQ(by["t001@cpu"]->measured_p90_ms, 0.897) << "the variant's own run stays visible";
  EXPECT_NEAR(by["t001@cpu"]->row->latency_p99_ms, 3.030 / 1.76 * 1.2, 1e-9) << "percentiles scale together";
  EXPECT_DOUBLE_EQ(by["base@cpu"]->row->latency_p90_ms, 3.030) << "the reference figure itself";
  EXPECT_EQ(by["t001@cpu"]->rank, 1) << "more accurate than t002: still on the front";
  bool said = false;
  for (const auto& n : d[0].notes) said |= n.find("divided by their median interleaved A/B speedup") != std::string::npos;
  EXPECT_TRUE(said) << "the table says how its latencies were made";
  // A latency budget judges the same figures: t001's 1.72 ms is over 1.5 ms, its 0.897 ms run was not.
  o.gates.latency_budget_ms["latency_p90_ms"] = 1.5;
  auto gated = Decide(rows, o);
  for (const auto& v : gated[0].variants)
    if (v.row->task_id == "t001@cpu") {
      EXPECT_FALSE(v.pass);
      ASSERT_FALSE(v.reasons.empty());
      EXPECT_NE(v.reasons.back().find("latency_p90_ms 1.722 ms > 1.500 ms"), std::string::npos) << v.reasons.back();
    }
  // The Pareto table's front ranks by the same figures: t001 (more accurate, slower side by side) stays on it.
  auto fronts = FrontsByTarget(rows);
  ASSERT_EQ(fronts.size(), 1u);
  std::set<std::string> on;
  for (const auto* r : fronts[0].front) on.insert(r->task_id);
  EXPECT_EQ(on, (std::set<std::string>{"t002@cpu", "t001@cpu", "base@cpu"}));
  // Without A/B rounds there is nothing to scale by: the rows' own figures are used.
  rows[1].speedup_p90 = rows[2].speedup_p90 = 0;
  EXPECT_EQ(Decide(rows, o)[0].recommended->task_id, "t001@cpu");
}

// A confirm row as the worker writes it: per-round p90s, the baseline first.
TrialResult ConfirmRow(const std::vector<std::pair<std::string, std::vector<double>>>& p90s) {
  ConfirmationRound round;
  round.rounds = static_cast<uint32_t>(p90s.front().second.size());
  round.threads = 1;
  for (const auto& [id, v] : p90s) round.models.push_back({id, "dense", v});
  SummarizeConfirmation(&round);
  TrialResult r;
  r.task_id = "confirm@cpu";
  r.target = "cpu";
  r.kind = TaskKind::kConfirmTarget;
  r.ok = true;
  r.worker_id = "w001";
  r.benchmark_json = nlohmann::json{{"confirmation", ToJson(round)}}.dump();
  return r;
}

TEST(DecisionTest, TheConfirmationRoundDecidesAndATieWithinNoiseGoesToFewerBytes) {
  // Side by side in their own A/B rounds t002 looked faster (2.84x against 1.76x) ...
  std::vector<TrialResult> rows{Row("base@cpu", 0.90, 2.0, 1000, true), Row("t001@cpu", 0.895, 0.9, 400),
                                Row("t002@cpu", 0.893, 1.0, 250)};
  rows[1].speedup_p90 = 1.76;
  rows[2].speedup_p90 = 2.84;
  DecisionOptions o;
  ASSERT_EQ(Decide(rows, o)[0].recommended->task_id, "t002@cpu");
  // ... the round, every model timed in each of 5 rounds while the machine's speed moved 2x,
  // says t001 is at half of dense's p90 and t002 at 0.6: t001 is recommended.
  rows.push_back(ConfirmRow({{"base@cpu", {2.0, 3.4, 1.2, 2.6, 1.8}},
                             {"t001@cpu", {1.0, 1.7, 0.61, 1.31, 0.9}},
                             {"t002@cpu", {1.2, 2.05, 0.72, 1.55, 1.09}}}));
  auto d = Decide(rows, o);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_NE(d[0].recommended, nullptr);
  EXPECT_EQ(d[0].recommended->task_id, "t001@cpu") << d[0].why;
  // `prunelab pareto`'s first table puts on its front what the round says, not the A/B rounds:
  // t001 (0.895, 0.5x dense) dominates t002 (0.893, 0.6x); by A/B alone both were on it.
  {
    std::vector<TrialResult> ab_only(rows.begin(), rows.end() - 1);
    auto ab = FrontsByTarget(ab_only);
    ASSERT_EQ(ab.size(), 1u);
    EXPECT_EQ(ab[0].front.size(), 3u) << "A/B: base, t001 (1.76x) and t002 (2.84x, less accurate) all non-dominated";
    auto fronts = FrontsByTarget(rows);
    ASSERT_EQ(fronts.size(), 1u);
    EXPECT_TRUE(fronts[0].by_confirmation_round);
    std::vector<std::string> on;
    for (const auto* r : fronts[0].front) on.push_back(r->task_id);
    EXPECT_EQ(on, (std::vector<std::string>{"t001@cpu", "base@cpu"}));
    const std::string table = FormatParetoTable(rows, "");
    EXPECT_NE(table.find("compared as timed side by side in the confirmation round"), std::string::npos) << table;
  }
  EXPECT_NE(d[0].why.find("confirmation round (5 interleaved rounds"), std::string::npos) << d[0].why;
  EXPECT_EQ(d[0].failed, 0u) << "the confirm row is not a failed variant";
  EXPECT_EQ(d[0].variants.size(), 3u) << "nor a variant";
  std::map<std::string, const Verdict*> by;
  for (const auto& v : d[0].variants) by[v.row->task_id] = &v;
  ASSERT_NE(by["t001@cpu"]->confirmed, nullptr);
  EXPECT_NEAR(by["t001@cpu"]->confirmed->median_ratio, 0.5, 0.01);
  EXPECT_NEAR(by["t001@cpu"]->row->latency_p90_ms, 2.0 * by["t001@cpu"]->confirmed->median_ratio, 1e-9)
      << "the baseline's p90 times the median ratio in the round";
  EXPECT_TRUE(d[0].within_noise.empty()) << "0.50 and 0.60 do not overlap";
  const std::string table = FormatDecisions(d, o);
  EXPECT_NE(table.find("confirmation round: 5 rounds"), std::string::npos) << table;
  EXPECT_NE(table.find("0.50x dense"), std::string::npos) << table;
  auto j = DecisionsJson(d, o);
  EXPECT_EQ(j["targets"][0]["confirmation"]["models"].size(), 3u);

  // Truly equal within the round's noise: the fewest bytes wins (t002, 250 bytes).
  rows.back() = ConfirmRow({{"base@cpu", {2.0, 2.0, 2.0}}, {"t001@cpu", {1.0, 1.1, 1.02}}, {"t002@cpu", {1.05, 1.0, 1.04}}});
  d = Decide(rows, o);
  ASSERT_NE(d[0].recommended, nullptr);
  EXPECT_EQ(d[0].recommended->task_id, "t002@cpu") << d[0].why;
  EXPECT_NE(d[0].why.find("within noise"), std::string::npos) << d[0].why;
  EXPECT_EQ(d[0].within_noise.size(), 2u);

  // The candidates a round times: the baseline, the best passing, the front; never a row
  // without an artifact.
  rows.pop_back();
  for (auto& r : rows) r.artifact_hash = r.baseline ? "" : "hash-" + r.task_id;
  d = Decide(rows, o);
  auto picked = ConfirmationCandidates(d[0], o, 1);
  ASSERT_GE(picked.size(), 2u);
  EXPECT_EQ(picked[0]->task_id, "base@cpu");
  EXPECT_EQ(picked[1]->task_id, "t002@cpu") << "the fastest passing by the A/B-scaled figures";
  rows[2].artifact_hash.clear();
  d = Decide(rows, o);
  for (const auto* r : ConfirmationCandidates(d[0], o, 3)) EXPECT_NE(r->task_id, "t002@cpu");
}

TEST(DecisionTest, ModelsWithinNoiseInTheRoundRankAsEquallyFastSoTheFrontDoesNotFollowNoise) {
  // An unstructured variant is the dense model's size and speed, and 0.01 pt more accurate.
  // Whether its median in the round lands a hair above or below dense's, dense is dominated.
  for (const std::vector<double>& t001 : {std::vector<double>{1.9, 2.1, 2.05}, std::vector<double>{2.1, 1.95, 2.2}}) {
    std::vector<TrialResult> rows{Row("base@cpu", 0.8943, 2.0, 1000, true), Row("t001@cpu", 0.8944, 2.0, 1000),
                                  Row("t003@cpu", 0.8916, 1.0, 250)};
    rows.push_back(ConfirmRow({{"base@cpu", {2.0, 2.0, 2.0}}, {"t001@cpu", t001}, {"t003@cpu", {1.1, 1.0, 1.05}}}));
    auto d = Decide(rows, DecisionOptions{});
    std::map<std::string, int> rank;
    for (const auto& v : d[0].variants) rank[v.row->task_id] = v.rank;
    EXPECT_EQ(rank["base@cpu"], 2) << "t001 is as fast within noise, as big, and more accurate";
    EXPECT_EQ(rank["t001@cpu"], 1);
    EXPECT_EQ(rank["t003@cpu"], 1) << "clearly faster: its range does not overlap";
    bool noted = false;
    for (const auto& n : d[0].notes) noted |= n.find("rank as equally fast") != std::string::npos;
    EXPECT_TRUE(noted);
  }
}

TEST(ReportTest, WritesParseableFilesWithEveryFrontVariant) {
  testing::TempDir dir;
  auto rows = HandMade();
  rows.push_back(Row("t006@cpu", 0.5, 0.2, 50));
  rows.back().ok = false;
  rows.back().error = "diverged, loss NaN";
  ReportInput in{"sw-0042", "hand-made", &rows, DecisionOptions{}};
  auto written = WriteReport(dir.path(), in);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  auto read = [&](const std::string& f) {
    std::ifstream is(dir.path() + "/" + f);
    std::stringstream ss;
    ss << is.rdbuf();
    return ss.str();
  };
  auto j = nlohmann::json::parse(read("results.json"), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["results"].size(), 7u);
  EXPECT_EQ(j["decisions"]["targets"][0]["recommended"], "t002@cpu");
  std::string html = read("report.html");
  EXPECT_EQ(html.find("http://"), std::string::npos) << "self-contained: nothing fetched";
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  std::istringstream csv(read("results.csv"));
  std::string line;
  std::getline(csv, line);
  size_t cols = std::count(line.begin(), line.end(), ',') + 1;
  int n = 0;
  bool saw_failure = false;
  while (std::getline(csv, line)) {
    ++n;
    saw_failure |= line.find("diverged") != std::string::npos;
    if (line.find('"') == std::string::npos) EXPECT_EQ(std::count(line.begin(), line.end(), ',') + 1u, cols) << line;
  }
  EXPECT_EQ(n, 7);
  EXPECT_TRUE(saw_failure);
  const auto decided = Decide(rows, DecisionOptions{});  // alive while its rows are read
  for (const auto& v : decided[0].variants) {
    if (v.rank != 1) continue;
    EXPECT_NE(html.find("data-trial=\"" + v.row->task_id + "\""), std::string::npos) << v.row->task_id;
    if (!v.row->baseline) EXPECT_FALSE(read("cards/" + v.row->task_id + ".md").empty()) << v.row->task_id;
  }
  EXPECT_NE(html.find("Recommended: <b>t002@cpu</b>"), std::string::npos);
  EXPECT_NE(read("report.md").find("recommended: t002@cpu"), std::string::npos);
}

}  // namespace
}  // namespace prunelab::coordinator

namespace prunelab::coordinator {
namespace {

// One version number: the model card and the report say what CMakeLists.txt says (they drifted:
// cards said 0.3.0 while CMake said 0.1.0).
TEST(ModelCardTest, VersionIsTheProjectVersionFromCMake) {
  std::ifstream in(std::string(PRUNELAB_SOURCE_DIR) + "/CMakeLists.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  std::smatch m;
  const std::string text = ss.str();
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(project\(prunelab VERSION ([0-9.]+))")));
  EXPECT_EQ(std::string(kPrunelabVersion), m[1].str());
  TrialResult r;
  r.task_id = "t001@local";
  r.ok = true;
  EXPECT_EQ(ModelCard(r, nullptr)["library_versions"]["prunelab"], m[1].str());
}

}  // namespace
}  // namespace prunelab::coordinator
