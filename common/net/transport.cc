#include "common/net/transport.h"

#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>
#include <fmt/printf.h>

#include "common/base/rate_limited_log.h"
#include "common/codec/codec.h"

namespace prunelab {

struct ZmqContext::Impl {
  zmq::context_t ctx{1};
};
ZmqContext::ZmqContext() : impl_(std::make_unique<Impl>()) {}
ZmqContext::~ZmqContext() = default;
void* ZmqContext::raw() { return &impl_->ctx; }

namespace {
zmq::context_t& Ctx(ZmqContext& c) { return *static_cast<zmq::context_t*>(c.raw()); }

void ApplyLimits(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxMessageBytes));
  s.set(zmq::sockopt::linger, 200);
  s.set(zmq::sockopt::sndhwm, 10000);
  s.set(zmq::sockopt::rcvhwm, 10000);
}
}  // namespace

bool CurveAvailable() { return zmq_has("curve") == 1; }

StatusOr<CurveKeyPair> GenerateCurveKeyPair() {
  char pub[41] = {0}, sec[41] = {0};
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status::Unavailable(std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                               " (libzmq without CURVE support?)");
  return CurveKeyPair{pub, sec};
}

struct ZapAuthenticator::Impl {
  Impl(ZmqContext& c, std::map<std::string, std::set<std::string>> a) : ctx(c), allow(std::move(a)) {}
  ZmqContext& ctx;
  std::map<std::string, std::set<std::string>> allow;
  std::unique_ptr<zmq::socket_t> sock;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> refused{0}, admitted{0};
  RateLimitedLog refusals{"coordinator: REFUSED "};

  void Loop() {
    while (!stop.load()) {
      zmq::pollitem_t items[] = {{static_cast<void*>(*sock), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 1, std::chrono::milliseconds(100));
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        std::vector<zmq::message_t> frames;
        do {
          zmq::message_t part;
          if (!sock->recv(part, zmq::recv_flags::none)) break;
          frames.push_back(std::move(part));
        } while (frames.back().more());
        // version, request id, domain, address, identity, mechanism, credentials...
        if (frames.size() < 6) continue;
        std::string version = frames[0].to_string(), request_id = frames[1].to_string();
        std::string domain = frames[2].to_string(), address = frames[3].to_string();
        std::string mechanism = frames[5].to_string();
        std::string key;
        if (mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == 32) {
          char z85[41] = {0};
          zmq_z85_encode(z85, static_cast<const uint8_t*>(frames[6].data()), 32);
          key = z85;
        }
        auto list = allow.find(domain);
        bool ok = !key.empty() && list != allow.end() && list->second.count(key) > 0;
        if (ok) {
          ++admitted;
        } else {
          ++refused;
          refusals.Log(domain + "|" + address + "|" + key,
                             (domain.empty() ? std::string("a") : domain) + " connection from " + address + ": " +
                                 (key.empty() ? "mechanism " + mechanism + " is not allowed (CURVE keys required)"
                                              : "public key " + key + " is not in the " + domain + " allow-list"));
        }
        std::vector<std::string> reply{version, request_id, ok ? "200" : "400", ok ? "OK" : "not allowed",
                                       ok ? key : "", ""};
        for (size_t i = 0; i < reply.size(); ++i)
          sock->send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      } catch (const zmq::error_t&) {
        if (stop.load()) return;
      }
    }
  }
};

ZapAuthenticator::ZapAuthenticator(ZmqContext& ctx, std::map<std::string, std::set<std::string>> allow)
    : impl_(std::make_unique<Impl>(ctx, std::move(allow))) {}

ZapAuthenticator::~ZapAuthenticator() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

Status ZapAuthenticator::Start() {
  try {
    impl_->sock = std::make_unique<zmq::socket_t>(Ctx(impl_->ctx), zmq::socket_type::rep);
    impl_->sock->set(zmq::sockopt::linger, 0);
    impl_->sock->bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("cannot start the ZAP authenticator: ") + e.what());
  }
  impl_->thread = std::thread([this] { impl_->Loop(); });
  return Status::Ok();
}

uint64_t ZapAuthenticator::refused() const { return impl_->refused.load(); }
uint64_t ZapAuthenticator::admitted() const { return impl_->admitted.load(); }

struct RouterSocket::Impl {
  explicit Impl(zmq::context_t& c) : sock(c, zmq::socket_type::router) {}
  ~Impl() {
    stop_monitor = true;
    if (monitor.joinable()) monitor.join();
  }
  // CURVE handshakes that fail before the ZAP handler is asked (a plain-mode peer, a wrong
  // --server-key) are seen only by a socket monitor: log and count them like ZAP refusals.
  void StartMonitor(zmq::context_t& c, const std::string& domain) {
    static std::atomic<uint64_t> seq{0};
    const std::string addr = "inproc://prunelab-monitor-" + std::to_string(++seq);
    if (zmq_socket_monitor(static_cast<void*>(sock), addr.c_str(),
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
      return;  // no monitoring: refusals by ZAP are still logged
    auto pair = std::make_unique<zmq::socket_t>(c, zmq::socket_type::pair);
    pair->set(zmq::sockopt::linger, 0);
    pair->connect(addr);
    monitor = std::thread([this, domain, p = std::move(pair)]() mutable {
      while (!stop_monitor.load()) {
        zmq::pollitem_t items[] = {{static_cast<void*>(*p), 0, ZMQ_POLLIN, 0}};
        try {
          zmq::poll(items, 1, std::chrono::milliseconds(100));
          if (!(items[0].revents & ZMQ_POLLIN)) continue;
          zmq::message_t event, where;
          if (!p->recv(event, zmq::recv_flags::none) || !event.more() || !p->recv(where, zmq::recv_flags::none)) continue;
          if (event.size() < 6) continue;
          uint16_t id = 0;
          uint32_t value = 0;
          std::memcpy(&id, event.data(), 2);
          std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
          ++handshake_failures;
          const std::string peer = where.to_string();
          const std::string code = fmt::sprintf("0x%x", value);
          std::string why = id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                                ? "a plain-mode peer (no CURVE keys) on a CURVE endpoint"
                            : id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                                      value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                                ? "CURVE handshake failed to decrypt: the peer has a wrong --server-key"
                                : std::string("handshake failed (protocol error ") + code + ")";
          refusals.Log(domain + "|" + peer + "|" + why, domain + " connection on " + peer + ": " + why);
        } catch (const zmq::error_t&) {
          if (stop_monitor.load()) return;
        }
      }
    });
  }
  zmq::socket_t sock;
  std::thread monitor;
  std::atomic<bool> stop_monitor{false};
  std::atomic<uint64_t> handshake_failures{0};
  RateLimitedLog refusals{"coordinator: REFUSED "};
};

StatusOr<std::unique_ptr<RouterSocket>> RouterSocket::Bind(ZmqContext& ctx, const std::string& endpoint,
                                                           const ServerSecurity& security) {
  std::unique_ptr<RouterSocket> r(new RouterSocket());
  try {
    r->impl_ = std::make_unique<Impl>(Ctx(ctx));
    ApplyLimits(r->impl_->sock);
    if (security.enabled()) {
      r->impl_->sock.set(zmq::sockopt::curve_server, 1);
      r->impl_->sock.set(zmq::sockopt::curve_secretkey, security.keys.secret_key);
      r->impl_->sock.set(zmq::sockopt::zap_domain, security.zap_domain);
      r->impl_->StartMonitor(Ctx(ctx), security.zap_domain);
    }
    r->impl_->sock.bind(endpoint);
    r->endpoint_ = r->impl_->sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + endpoint + ": " + e.what() +
                               " (is another process using that port? pick another with tcp://*:PORT)");
  }
  return r;
}

RouterSocket::~RouterSocket() = default;

uint64_t RouterSocket::handshake_failures() const { return impl_->handshake_failures.load(); }

int RouterSocket::fd() { return static_cast<int>(impl_->sock.get(zmq::sockopt::fd)); }

std::optional<PeerMessage> RouterSocket::TryReceive() {
  while (true) {
    std::vector<zmq::message_t> frames;
    try {
      zmq::message_t first;
      if (!impl_->sock.recv(first, zmq::recv_flags::dontwait)) return std::nullopt;
      frames.push_back(std::move(first));
      while (frames.back().more()) {
        zmq::message_t part;
        if (!impl_->sock.recv(part, zmq::recv_flags::none)) break;
        frames.push_back(std::move(part));
      }
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
    if (frames.size() == 2) {
      std::string user;  // set by the ZAP handler's reply; absent without CURVE
      try {
        user = frames[1].gets("User-Id");
      } catch (const zmq::error_t&) {
      }
      return PeerMessage{frames[0].to_string(), frames[1].to_string(), std::move(user)};
    }
    // Wrong framing (e.g. a REQ socket's empty delimiter): drop it and look at the next.
  }
}

Status RouterSocket::Send(const std::string& peer, const std::string& payload) {
  try {
    if (!impl_->sock.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return Status::Unavailable("send queue full");
    impl_->sock.send(zmq::buffer(payload), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("send failed: ") + e.what());
  }
  return Status::Ok();
}

struct DealerSocket::Impl {
  Impl(zmq::context_t& c, std::string e) : sock(c, zmq::socket_type::dealer), endpoint(std::move(e)) {}
  zmq::socket_t sock;
  std::string endpoint;
};

StatusOr<std::unique_ptr<DealerSocket>> DealerSocket::Connect(ZmqContext& ctx, const std::string& endpoint,
                                                              const std::string& identity,
                                                              const ClientSecurity& security) {
  std::unique_ptr<DealerSocket> d(new DealerSocket());
  try {
    d->impl_ = std::make_unique<Impl>(Ctx(ctx), endpoint);
    ApplyLimits(d->impl_->sock);
    if (security.enabled()) {
      d->impl_->sock.set(zmq::sockopt::curve_serverkey, security.server_key);
      d->impl_->sock.set(zmq::sockopt::curve_publickey, security.keys.public_key);
      d->impl_->sock.set(zmq::sockopt::curve_secretkey, security.keys.secret_key);
    }
    if (!identity.empty()) d->impl_->sock.set(zmq::sockopt::routing_id, identity);
    d->impl_->sock.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot connect to " + endpoint + ": " + e.what());
  }
  return d;
}

DealerSocket::~DealerSocket() = default;

Status DealerSocket::Send(const std::string& payload, int timeout_ms) {
  try {
    zmq::pollitem_t items[] = {{static_cast<void*>(impl_->sock), 0, ZMQ_POLLOUT, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(std::max(0, timeout_ms)));
    if ((items[0].revents & ZMQ_POLLOUT) && impl_->sock.send(zmq::buffer(payload), zmq::send_flags::dontwait))
      return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("send to ") + impl_->endpoint + " failed: " + e.what());
  }
  return Status::Unavailable("cannot send to " + impl_->endpoint + " within " + std::to_string(timeout_ms) +
                             " ms: no connection takes messages (the peer closed it, refused the CURVE handshake, "
                             "or is gone)");
}

void DealerSocket::PollAny(const std::vector<DealerSocket*>& sockets, int timeout_ms, std::vector<size_t>* ready) {
  ready->clear();
  std::vector<zmq::pollitem_t> items(sockets.size());
  for (size_t i = 0; i < sockets.size(); ++i) items[i] = {static_cast<void*>(sockets[i]->impl_->sock), 0, ZMQ_POLLIN, 0};
  try {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t&) {
    return;
  }
  for (size_t i = 0; i < items.size(); ++i)
    if (items[i].revents & ZMQ_POLLIN) ready->push_back(i);
}

StatusOr<std::optional<std::string>> DealerSocket::Receive(int timeout_ms) {
  try {
    zmq::pollitem_t items[] = {{static_cast<void*>(impl_->sock), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(timeout_ms));
    if (!(items[0].revents & ZMQ_POLLIN)) return std::optional<std::string>();
    zmq::message_t msg;
    if (!impl_->sock.recv(msg, zmq::recv_flags::dontwait)) return std::optional<std::string>();
    std::string payload = msg.to_string();
    while (msg.more()) {  // a well-behaved ROUTER sends one frame; drop any extra
      zmq::message_t extra;
      if (!impl_->sock.recv(extra, zmq::recv_flags::none)) break;
      msg = std::move(extra);
    }
    return std::optional<std::string>(std::move(payload));
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("receive from " + impl_->endpoint + " failed: " + e.what());
  }
}

}  // namespace prunelab
