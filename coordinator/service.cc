#include "coordinator/service.h"

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>

#include "common/codec.h"

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

  // Replies wait here until the round's state changes are durable (group commit).
  struct Outgoing {
    RouterSocket* sock;
    std::string peer;
    std::string bytes;
  };
  std::vector<Outgoing> pending;

  // Handles up to a round's worth of queued messages on a socket.
  bool DrainOne(RouterSocket& sock) {
    bool any = false;
    for (int budget = 0; budget < 256; ++budget) {
      auto m = sock.TryReceive();
      if (!m) break;
      any = true;
      auto decoded = Decode(m->payload);
      if (!decoded.ok()) {
        ++rejected;
        std::fprintf(stderr, "coordinator: rejected %zu-byte message: %s\n", m->payload.size(),
                     decoded.status().message().c_str());
        pending.push_back({&sock, m->peer, Encode(ErrorMsg{"bad_message", decoded.status().message()})});
        continue;
      }
      if (options.verbose) std::fprintf(stderr, "coordinator: %s\n", MessageName(decoded.value()));
      std::optional<Message> reply = core.Handle(decoded.value());
      if (reply) pending.push_back({&sock, m->peer, Encode(*reply)});
    }
    return any;
  }

  // One WAL sync for the round, then every reply. A failed sync means acknowledged state
  // might not be on disk: stop rather than acknowledge it; a restart recovers from the store.
  void Flush() {
    if (pending.empty()) return;
    Status st = core.Commit();
    if (!st.ok()) {
      std::fprintf(stderr, "coordinator: FATAL: cannot make results durable (%s); stopping without acknowledging them\n",
                   st.ToString().c_str());
      std::abort();
    }
    for (auto& o : pending) (void)o.sock->Send(o.peer, o.bytes);
    pending.clear();
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
      core.Tick();
      (void)core.Commit();  // requeues are durable soon; nothing was acknowledged by them
      DrainAll();  // safety net for a missed ZMQ_FD edge
      ArmTimer(t);
    });
  }
};

CoordinatorService::CoordinatorService(ZmqContext& ctx, Coordinator& core, ServiceOptions options)
    : impl_(std::make_unique<Impl>(ctx, core, std::move(options))) {}
CoordinatorService::~CoordinatorService() = default;

Status CoordinatorService::Bind() {
  const ServiceOptions& o = impl_->options;
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
uint64_t CoordinatorService::refused_connections() const { return impl_->zap ? impl_->zap->refused() : 0; }

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
      std::fprintf(stderr, "coordinator: signal %d, shutting down (state is on disk)\n", sig);
      s.io.stop();
    });
  }
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
