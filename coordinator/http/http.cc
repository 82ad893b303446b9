#include "coordinator/http/http.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <fmt/printf.h>

#include "common/base/text.h"
#include "common/codec/records.h"
#include "common/spec/spec.h"
#include "coordinator/http/dashboard_page.h"
#include "coordinator/decide/decision.h"
#include "coordinator/release/releases.h"
#include "coordinator/store/store_view.h"

namespace prunelab::coordinator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string Label(const std::string& v) { return PrometheusLabelValue(v); }

// A histogram in Prometheus form, on coarse 1-2-5 bounds taken from the fine buckets.
void Histogram(std::string& out, const std::string& name, const std::string& help, const LatencyHistogram* h) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  static const double kBounds[] = {1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1, 2, 5};
  uint64_t total = h ? h->count() : 0;
  for (double b : kBounds) {
    uint64_t c = 0;
    if (h)
      for (int i = 0; i < LatencyHistogram::kBuckets && LatencyHistogram::UpperBound(i) <= b * (1 + 1e-9); ++i) c += h->bucket(i);
    out += fmt::sprintf("%s_bucket{le=\"%g\"} %llu\n", name, b, static_cast<unsigned long long>(c));
  }
  out += fmt::sprintf("%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name.c_str(),
                static_cast<unsigned long long>(total), name.c_str(), h ? h->sum_seconds() : 0.0, name.c_str(),
                      static_cast<unsigned long long>(total));
}

// The sweep's report options (objectives, gates, rule); the defaults where its spec is
// unreadable (an older record).
DecisionOptions SweepDecisionOptions(Store& store, const std::string& sweep_id) {
  DecisionOptions o;
  auto spec = ReadSpecYaml(store, sweep_id);
  if (!spec.ok()) return o;
  auto parsed = ParseSpec(spec.value());
  if (!parsed.ok()) return o;
  auto from = OptionsFromSpec(parsed->report);
  return from.ok() ? from.value() : o;
}

void Gauge(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name + "{" + labels + "} " + fmt::sprintf("%.9g", v) + "\n";
}

}  // namespace

std::string CandidateMetricsText(Store& store, std::vector<SweepStatus> sweeps) {
  // The newest sweeps with results first; older ones drop out of the series (bounded cardinality).
  std::sort(sweeps.begin(), sweeps.end(),
            [](const SweepStatus& a, const SweepStatus& b) { return a.created_at_ms > b.created_at_ms; });
  std::string acc, mem, lat, budget, has;
  size_t taken = 0;
  for (const SweepStatus& sw : sweeps) {
    if (taken >= kCandidateMetricSweeps) break;
    if (sw.done + sw.failed == 0 || sw.id.rfind("ev-", 0) == 0) continue;  // ev-: evaluation jobs, not sweeps
    auto results = ReadResults(store, sw.id);
    if (!results.ok()) continue;
    ++taken;
    DecisionOptions o = SweepDecisionOptions(store, sw.id);
    for (const TargetDecision& d : Decide(results.value(), o)) {
      const std::string where = "sweep=\"" + Label(sw.id) + "\",target=\"" + Label(d.target) + "\"";
      for (const auto& [field, ms] : o.gates.latency_budget_ms)
        if (field == "latency_p90_ms") Gauge(budget, "prunelab_latency_budget_seconds", where, ms / 1000.0);
      Gauge(has, "prunelab_sweep_recommendation", where, d.recommended ? 1 : 0);
      // The candidate: the recommendation, else the best-ranked pruned variant (what a user
      // would be tempted to deploy although it fails a gate).
      const Verdict* c = nullptr;
      for (const Verdict& v : d.variants) {
        if (d.recommended ? v.row == d.recommended : !v.row->baseline) {
          c = &v;
          break;
        }
      }
      if (!c) continue;
      const std::string labels = where + ",trial=\"" + Label(c->row->task_id) + "\",recommended=\"" +
                                 (d.recommended ? "true" : "false") + "\"";
      Gauge(acc, "prunelab_candidate_accuracy_drop_points", labels, c->accuracy_drop_pt);
      Gauge(mem, "prunelab_candidate_memory_ratio", labels, c->memory_fraction);
      Gauge(lat, "prunelab_candidate_latency_p90_seconds", labels, c->row->latency_p90_ms / 1000.0);
    }
  }
  std::string out;
  auto section = [&](const char* name, const char* help, const std::string& body) {
    if (body.empty()) return;
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + body;
  };
  section("prunelab_sweep_recommendation", "1 when some variant of the sweep passes every gate on the target.", has);
  section("prunelab_candidate_accuracy_drop_points",
          "Accuracy drop of the target's candidate (the recommendation, else the best-ranked variant) vs dense, in points.", acc);
  section("prunelab_candidate_memory_ratio", "Candidate's model bytes over the dense model's.", mem);
  section("prunelab_candidate_latency_p90_seconds", "Candidate's single-stream p90 latency on the target, in seconds.", lat);
  section("prunelab_latency_budget_seconds", "The sweep's latency_p90_ms gate, in seconds.", budget);
  return out;
}

std::string MetricsText(const DashboardSnapshot& s, const DashboardState& state) {
  std::string out;
  out += "# HELP prunelab_tasks Tasks of every sweep by state.\n# TYPE prunelab_tasks gauge\n";
  for (const char* st : {"blocked", "pending", "running", "done", "failed"}) {
    auto it = s.tasks_by_state.find(st);
    out += "prunelab_tasks{state=\"" + std::string(st) + "\"} " + std::to_string(it == s.tasks_by_state.end() ? 0 : it->second) + "\n";
  }
  uint64_t alive = 0, dead = 0;
  for (const auto& w : s.workers) (w.alive ? alive : dead)++;
  out += "# HELP prunelab_workers Registered workers by health.\n# TYPE prunelab_workers gauge\n";
  out += "prunelab_workers{state=\"alive\"} " + std::to_string(alive) + "\nprunelab_workers{state=\"dead\"} " + std::to_string(dead) + "\n";
  out += "# HELP prunelab_sweeps Sweeps by state.\n# TYPE prunelab_sweeps gauge\n";
  std::map<std::string, uint64_t> by_state;
  for (const auto& sw : s.sweeps) ++by_state[sw.state];
  for (const auto& [st, n] : by_state) out += "prunelab_sweeps{state=\"" + Label(st) + "\"} " + std::to_string(n) + "\n";
  out += "# HELP prunelab_results Result rows recorded, per hardware target.\n# TYPE prunelab_results gauge\n";
  for (const auto& [t, n] : s.results_by_target) out += "prunelab_results{target=\"" + Label(t) + "\"} " + std::to_string(n) + "\n";
  out += "# HELP prunelab_failed_results Result rows recorded as failed, per hardware target.\n# TYPE prunelab_failed_results gauge\n";
  for (const auto& [t, n] : s.results_by_target) {
    auto f = s.failed_results_by_target.find(t);
    out += "prunelab_failed_results{target=\"" + Label(t) + "\"} " +
           std::to_string(f == s.failed_results_by_target.end() ? 0 : f->second) + "\n";
  }
  Histogram(out, "prunelab_dispatch_latency_seconds", "Work request read to assignment sent, in the coordinator.", state.dispatch);
  Histogram(out, "prunelab_ack_latency_seconds", "Result or submission read to durable acknowledgement sent.", state.ack);
  Histogram(out, "prunelab_store_write_latency_seconds", "RocksDB batch writes.", state.store_write);
  Histogram(out, "prunelab_store_sync_latency_seconds", "RocksDB WAL syncs (one per round of acknowledgements).", state.store_sync);
  out += "# HELP prunelab_rejected_messages_total Malformed messages answered with an error.\n"
         "# TYPE prunelab_rejected_messages_total counter\nprunelab_rejected_messages_total " +
         std::to_string(state.rejected_messages ? state.rejected_messages() : 0) + "\n";
  out += "# HELP prunelab_refused_connections_total Peers refused by the CURVE allow-lists.\n"
         "# TYPE prunelab_refused_connections_total counter\nprunelab_refused_connections_total " +
         std::to_string(state.refused_connections ? state.refused_connections() : 0) + "\n";
  return out;
}

HttpReply ServeGet(std::string target, Store& store, const DashboardState& state) {
  auto q = target.find('?');
  if (q != std::string::npos) target.resize(q);
  auto json = [](const nlohmann::json& j, int status = 200) {
    return HttpReply{status, "application/json", DumpJson(j)};
  };
  if (target == "/" || target == "/index.html") return {200, "text/html; charset=utf-8", kDashboardPage};
  if (target == "/metrics") {
    DashboardSnapshot snap = state.Get();
    return {200, "text/plain; version=0.0.4", MetricsText(snap, state) + CandidateMetricsText(store, snap.sweeps) +
                                                    ReleaseBook::MetricsText(store)};
  }
  if (target == "/api/sweeps") {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& s : state.Get().sweeps) a.push_back(ToJson(s));
    return json(a);
  }
  if (target == "/api/releases") {
    auto h = ReleaseBook::HistoryJson(store);
    if (!h.ok()) return json({{"error", h.status().message()}}, 500);
    return {200, "application/json", h.value()};
  }
  if (target == "/api/workers") {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& w : state.Get().workers) {
      auto j = ToJson(w);
      j["slots"] = w.slots;
      a.push_back(j);
    }
    return json(a);
  }
  if (target.rfind("/api/sweeps/", 0) == 0 && target.size() > 22 &&
      target.compare(target.size() - 10, 10, "/decisions") == 0) {
    std::string id = target.substr(12, target.size() - 22);
    auto results = ReadResults(store, id);
    if (!results.ok()) return json({{"error", results.status().message()}}, 404);
    DecisionOptions o = SweepDecisionOptions(store, id);
    auto decisions = Decide(results.value(), o);
    nlohmann::json j = DecisionsJson(decisions, o);
    j["sweep"] = id;
    return json(j);
  }
  return {404, "text/plain", "not found; try / /metrics /api/sweeps /api/workers /api/releases /api/sweeps/ID/decisions\n"};
}

struct HttpServer::Impl {
  Impl(std::string a, uint16_t p, Store& s, const DashboardState& st) : address(std::move(a)), port(p), store(s), state(st) {}
  std::string address;
  uint16_t port;
  Store& store;
  const DashboardState& state;
  asio::io_context io;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::thread thread;

  http::response<http::string_body> Respond(const http::request<http::string_body>& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "prunelab");
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(false);
    if (req.method() != http::verb::get) {
      res.result(http::status::method_not_allowed);
      res.body() = "only GET\n";
    } else {
      HttpReply r = ServeGet(std::string(req.target()), store, state);
      res.result(static_cast<http::status>(r.status));
      res.set(http::field::content_type, r.content_type);
      res.body() = std::move(r.body);
    }
    res.prepare_payload();
    return res;
  }

  void Accept() {
    acceptor->async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec) return;  // closed
      try {
        // One request per connection, with a bound on how long a client may take.
        sock.set_option(asio::socket_base::linger(true, 0));
        beast::tcp_stream stream(std::move(sock));
        stream.expires_after(std::chrono::seconds(5));
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::read(stream, buf, req);
        auto res = Respond(req);
        http::write(stream, res);
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      } catch (const std::exception&) {
        // a client that vanished or sent garbage: nothing to do
      }
      Accept();
    });
  }
};

HttpServer::HttpServer(std::string address, uint16_t port, Store& store, const DashboardState& state)
    : impl_(std::make_unique<Impl>(std::move(address), port, store, state)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  try {
    tcp::endpoint ep(asio::ip::make_address(impl_->address), impl_->port);
    impl_->acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    impl_->acceptor->open(ep.protocol());
    impl_->acceptor->set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor->bind(ep);
    impl_->acceptor->listen();
  } catch (const std::exception& e) {
    return Status::Unavailable("dashboard: cannot listen on " + impl_->address + ":" + std::to_string(impl_->port) + ": " +
                               e.what() + " (pick another --http port)");
  }
  impl_->Accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->acceptor ? impl_->acceptor->local_endpoint().port() : 0; }

void HttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    boost::system::error_code ec;
    impl_->acceptor->close(ec);
  });
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace prunelab::coordinator
