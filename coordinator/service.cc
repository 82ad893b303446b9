#include "coordinator/service.h"

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>

#include "common/codec.h"

namespace prunelab::coordinator {

namespace asio = boost::asio;

struct CoordinatorService::Impl {
  Impl(ZmqContext& c, Coordinator& k, ServiceOptions o) : ctx(c), core(k), options(std::move(o)) {}

  ZmqContext& ctx;
  Coordinator& core;
  ServiceOptions options;
  asio::io_context io;
  std::unique_ptr<RouterSocket> workers;
  std::unique_ptr<RouterSocket> clients;
  std::atomic<uint64_t> rejected{0};

  // Handles everything queued on a socket. ZMQ_FD is edge-like: drain fully each time.
  bool DrainOne(RouterSocket& sock) {
    bool any = false;
    for (int budget = 0; budget < 1000; ++budget) {
      auto m = sock.TryReceive();
      if (!m) break;
      any = true;
      auto decoded = Decode(m->payload);
      if (!decoded.ok()) {
        ++rejected;
        std::fprintf(stderr, "coordinator: rejected %zu-byte message: %s\n", m->payload.size(),
                     decoded.status().message().c_str());
        (void)sock.Send(m->peer, Encode(ErrorMsg{"bad_message", decoded.status().message()}));
        continue;
      }
      if (options.verbose) std::fprintf(stderr, "coordinator: %s\n", MessageName(decoded.value()));
      std::optional<Message> reply = core.Handle(decoded.value());
      if (reply) (void)sock.Send(m->peer, Encode(*reply));
    }
    return any;
  }

  void DrainAll() {
    while (DrainOne(*workers) | DrainOne(*clients)) {
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
      DrainAll();  // safety net for a missed ZMQ_FD edge
      ArmTimer(t);
    });
  }
};

CoordinatorService::CoordinatorService(ZmqContext& ctx, Coordinator& core, ServiceOptions options)
    : impl_(std::make_unique<Impl>(ctx, core, std::move(options))) {}
CoordinatorService::~CoordinatorService() = default;

Status CoordinatorService::Bind() {
  auto w = RouterSocket::Bind(impl_->ctx, impl_->options.worker_endpoint);
  if (!w.ok()) return w.status();
  auto c = RouterSocket::Bind(impl_->ctx, impl_->options.client_endpoint);
  if (!c.ok()) return c.status();
  impl_->workers = std::move(w).value();
  impl_->clients = std::move(c).value();
  return Status::Ok();
}

const std::string& CoordinatorService::worker_endpoint() const { return impl_->workers->endpoint(); }
const std::string& CoordinatorService::client_endpoint() const { return impl_->clients->endpoint(); }
uint64_t CoordinatorService::rejected_messages() const { return impl_->rejected.load(); }

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
