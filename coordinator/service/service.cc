#include "coordinator/service/service.h"

#include <boost/asio.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <chrono>
#include <cstdio>

#include "common/base/rate_limited_log.h"
#include "common/base/log.h"
#include "common/codec/codec.h"

namespace prunelab::coordinator {

namespace asio = boost::asio;

struct CoordinatorService::Impl {
  Impl(ZmqContext& c, Coordinator& k, ServiceOptions o) : ctx(c), core(k), options(std::move(o)) {
    if (options.group_commit) core.EnableGroupCommit();
  }

  ZmqContext& ctx;
  Coordinator& core;
  ServiceOptions options;
  asio::io_context io;
  std::unique_ptr<ZapAuthenticator> zap;
  std::unique_ptr<RouterSocket> workers;
  std::unique_ptr<RouterSocket> clients;
  std::atomic<uint64_t> rejected{0};

  LatencyHistogram dispatch_latency;
  LatencyHistogram commit_latency;

  // Acknowledgements (of results, submissions, sweep control) wait here until the round's
  // state changes are durable. Everything else is answered at once: an assignment that is
  // lost in a crash is simply handed out again (results are accepted once whatever the
  // attempt), so it need not wait for the disk.
  struct Outgoing {
    RouterSocket* sock;
    std::string peer;
    std::string bytes;
    std::chrono::steady_clock::time_point received;
  };
  std::vector<Outgoing> pending;


  // Roles: a message the other endpoint's peers send is refused here (a worker key must not
  // submit sweeps, a client must not register as a worker or submit results).
  std::optional<ErrorMsg> WrongEndpoint(const RouterSocket& sock, const Message& msg) {
    const bool worker_side = &sock == workers.get();
    if (std::holds_alternative<ErrorMsg>(msg)) return std::nullopt;  // dropped by Handle; never answer an error
    const Sender sender = SenderOf(msg);
    if (sender == Sender::kEither || (sender == Sender::kWorker && worker_side) ||
        (sender == Sender::kClient && !worker_side))
      return std::nullopt;
    std::string why = std::string(MessageName(msg)) +
                      (sender == Sender::kNobody ? " is a reply; nobody may send it to the coordinator"
                       : worker_side ? " is a client message; this is the worker endpoint (the prunelab CLI connects to the "
                                       "coordinator's --client-endpoint)"
                                     : " is a worker message; this is the client endpoint (workers connect to the "
                                       "coordinator's --worker-endpoint)");
    refusals.Log(why, std::string("on the ") + (worker_side ? "worker" : "client") + " endpoint: " + why);
    return ErrorMsg{"wrong_endpoint", why};
  }

  RateLimitedLog refusals{"coordinator: refused "};

  // Handles up to a round's worth of queued messages on a socket.
  bool DrainOne(RouterSocket& sock) {
    bool any = false;
    for (int budget = 0; budget < 256; ++budget) {
      auto m = sock.TryReceive();
      if (!m) break;
      auto received = std::chrono::steady_clock::now();
      any = true;
      auto decoded = Decode(m->payload);
      if (!decoded.ok()) {
        ++rejected;
        log::Warn("coordinator: rejected " + std::to_string(m->payload.size()) +
                  "-byte message: " + decoded.status().message());
        (void)sock.Send(m->peer, Encode(ErrorMsg{"bad_message", decoded.status().message()}));
        continue;
      }
      if (options.verbose) log::Info(std::string("coordinator: ") + MessageName(decoded.value()));
      if (auto refusal = WrongEndpoint(sock, decoded.value())) {
        ++rejected;
        (void)sock.Send(m->peer, Encode(*refusal));
        continue;
      }
      // While the store is failed: what writes is refused, reads go on.
      if (store_failed.load() && KindOf(decoded.value()).writes) {
        (void)sock.Send(m->peer, Encode(ErrorMsg{"store_unavailable",
                                                 "the coordinator cannot write to its store (disk full or failing); it "
                                                 "records and acknowledges nothing until space returns; try again later"}));
        continue;
      }
      // Who releases: the authenticated key where the connection has one, never what the client says.
      if (auto* rc = std::get_if<ReleaseCommandMsg>(&decoded.value()); rc && !m->user_id.empty())
        rc->released_by = "curve:" + m->user_id;
      std::optional<Message> reply = core.Handle(decoded.value());
      if (reply) {
        if (auto* e = std::get_if<ErrorMsg>(&*reply); e && e->code == "internal_error") ++rejected;
      }
      if (!reply) continue;
      if (KindOf(decoded.value()).durable) {
        pending.push_back({&sock, m->peer, Encode(*reply), received});
        continue;
      }
      (void)sock.Send(m->peer, Encode(*reply));
      if (std::holds_alternative<RequestWorkMsg>(decoded.value()))
        dispatch_latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
    }
    return any;
  }

  // WAL syncs run on their own thread so that work requests are served while the disk
  // syncs (RocksDB's SyncWAL does not block writes from other threads). A round's
  // acknowledgements are sent, on this thread, only after a sync that began after all of
  // the round's writes; acknowledgements arriving meanwhile wait for the next sync. A failed
  // sync means acknowledged state might not be on disk: stop rather than acknowledge it; a
  // restart recovers from the store.
  std::thread committer;
  std::mutex commit_mu;
  std::condition_variable commit_cv;
  std::vector<Outgoing> committing;  // handed to the committer, waiting for its sync
  bool commit_busy = false;          // loop thread only
  bool commit_stop = false;
  std::atomic<bool> store_failed{false};
  std::atomic<bool> restart_requested{false};
  int failed_ticks = 0;  // loop thread only


  void Flush() {
    if (pending.empty() || commit_busy) return;
    commit_busy = true;
    std::lock_guard<std::mutex> lock(commit_mu);
    committing = std::move(pending);
    pending.clear();
    commit_cv.notify_one();
  }

  void CommitLoop() {
    for (;;) {
      std::vector<Outgoing> batch;
      {
        std::unique_lock<std::mutex> lock(commit_mu);
        commit_cv.wait(lock, [this] { return commit_stop || !committing.empty(); });
        if (commit_stop) return;
        batch = std::move(committing);
        committing.clear();
      }
      Status st = core.Commit();  // the store is safe for concurrent use; this touches nothing else
      if (!st.ok()) {
        // Never acknowledge what may not be on disk: this round's replies are dropped (workers
        // resend results they have no acknowledgement for). From now on the service refuses
        // what writes and serves reads, until space returns and the owner restarts it from
        // what is durable (no abort, never an acknowledgement of lost state).
        if (!store_failed.exchange(true))
          log::Error("coordinator: FATAL: cannot make results durable (" + st.ToString() +
                     "); acknowledging nothing, refusing writes, serving reads; checking every 5 s for space, then "
                     "restarting from what is on disk");
        asio::post(io, [this] {
          pending.clear();
          commit_busy = false;
        });
        continue;
      }
      asio::post(io, [this, batch = std::move(batch)]() mutable {
        auto now = std::chrono::steady_clock::now();
        for (auto& o : batch) {
          (void)o.sock->Send(o.peer, o.bytes);
          commit_latency.Observe(std::chrono::duration<double>(now - o.received).count());
        }
        commit_busy = false;
        Flush();  // what arrived during the sync
      });
    }
  }

  void StopCommitter() {
    {
      std::lock_guard<std::mutex> lock(commit_mu);
      commit_stop = true;
    }
    commit_cv.notify_one();
    if (committer.joinable()) committer.join();
  }

  // ZMQ_FD is edge-like: drain fully each time, committing and replying after each round.
  void DrainAll() {
    for (;;) {
      bool any = DrainOne(*workers) | DrainOne(*clients);
      Flush();
      if (!any) break;
    }
  }

  void WaitReadable(asio::posix::stream_descriptor& d) {
    d.async_wait(asio::posix::stream_descriptor::wait_read, [this, &d](const boost::system::error_code& ec) {
      if (ec) return;
      DrainAll();
      WaitReadable(d);
    });
  }

  void ArmTimer(asio::steady_timer& t) {
    t.expires_after(std::chrono::milliseconds(options.tick_interval_ms));
    t.async_wait([this, &t](const boost::system::error_code& ec) {
      if (ec) return;
      if (store_failed.load() && options.store_writable_again &&
          ++failed_ticks * options.tick_interval_ms >= 5000) {
        failed_ticks = 0;
        if (options.store_writable_again()) {
          log::Info("coordinator: space is back; restarting from what is on disk");
          restart_requested = true;
          io.stop();
          return;
        }
      }
      core.Tick();
      (void)core.Commit();  // requeues are durable soon; nothing was acknowledged by them
      if (options.dashboard) {
        DashboardSnapshot snap;
        snap.sweeps = core.Sweeps();
        snap.workers = core.Workers();
        core.Counts(&snap.tasks_by_state, &snap.results_by_target, &snap.failed_results_by_target);
        options.dashboard->Publish(std::move(snap));
      }
      DrainAll();  // safety net for a missed ZMQ_FD edge
      ArmTimer(t);
    });
  }
};

CoordinatorService::CoordinatorService(ZmqContext& ctx, Coordinator& core, ServiceOptions options)
    : impl_(std::make_unique<Impl>(ctx, core, std::move(options))) {}
CoordinatorService::~CoordinatorService() { impl_->StopCommitter(); }

Status CoordinatorService::Bind() {
  const ServiceOptions& o = impl_->options;
  if (o.dashboard) {
    o.dashboard->dispatch = &impl_->dispatch_latency;
    o.dashboard->ack = &impl_->commit_latency;
    o.dashboard->rejected_messages = [this] { return rejected_messages(); };
    o.dashboard->refused_connections = [this] { return refused_connections(); };
  }
  ServerSecurity ws, cs;
  if (!o.keys.secret_key.empty()) {
    // CURVE without a ZAP handler admits anyone who knows the server key: always check.
    impl_->zap = std::make_unique<ZapAuthenticator>(
        impl_->ctx, std::map<std::string, std::set<std::string>>{{"workers", o.allowed_workers}, {"clients", o.allowed_clients}});
    PRUNELAB_RETURN_IF_ERROR(impl_->zap->Start());
    ws = ServerSecurity{o.keys, "workers"};
    cs = ServerSecurity{o.keys, "clients"};
  }
  auto w = RouterSocket::Bind(impl_->ctx, o.worker_endpoint, ws);
  if (!w.ok()) return w.status();
  auto c = RouterSocket::Bind(impl_->ctx, o.client_endpoint, cs);
  if (!c.ok()) return c.status();
  impl_->workers = std::move(w).value();
  impl_->clients = std::move(c).value();
  return Status::Ok();
}

const std::string& CoordinatorService::worker_endpoint() const { return impl_->workers->endpoint(); }
const std::string& CoordinatorService::client_endpoint() const { return impl_->clients->endpoint(); }
uint64_t CoordinatorService::rejected_messages() const { return impl_->rejected.load(); }
const LatencyHistogram& CoordinatorService::dispatch_latency() const { return impl_->dispatch_latency; }
const LatencyHistogram& CoordinatorService::commit_latency() const { return impl_->commit_latency; }
bool CoordinatorService::store_failed() const { return impl_->store_failed.load(); }
bool CoordinatorService::restart_requested() const { return impl_->restart_requested.load(); }

uint64_t CoordinatorService::refused_connections() const {
  uint64_t n = impl_->zap ? impl_->zap->refused() : 0;
  for (const auto* sock : {impl_->workers.get(), impl_->clients.get()})
    if (sock) n += sock->handshake_failures();
  return n;
}

void CoordinatorService::Run(bool handle_signals) {
  Impl& s = *impl_;
  s.io.restart();
  // The descriptors belong to ZeroMQ: release them before the stream_descriptors die.
  asio::posix::stream_descriptor wfd(s.io, s.workers->fd());
  asio::posix::stream_descriptor cfd(s.io, s.clients->fd());
  asio::steady_timer timer(s.io);
  asio::signal_set signals(s.io);
  if (handle_signals) {
    signals.add(SIGINT);
    signals.add(SIGTERM);
    signals.async_wait([&s](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      log::Info("coordinator: signal " + std::to_string(sig) + ", shutting down (state is on disk)");
      s.io.stop();
    });
  }
  if (!s.committer.joinable()) s.committer = std::thread([&s] { s.CommitLoop(); });
  s.commit_busy = false;
  s.DrainAll();
  s.WaitReadable(wfd);
  s.WaitReadable(cfd);
  s.ArmTimer(timer);
  s.io.run();
  wfd.release();
  cfd.release();
}

void CoordinatorService::Stop() {
  asio::post(impl_->io, [this] { impl_->io.stop(); });
}

}  // namespace prunelab::coordinator
