#include "common/transport.h"

#include <zmq.hpp>

#include <vector>

#include "common/codec.h"

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

struct RouterSocket::Impl {
  explicit Impl(zmq::context_t& c) : sock(c, zmq::socket_type::router) {}
  zmq::socket_t sock;
};

StatusOr<std::unique_ptr<RouterSocket>> RouterSocket::Bind(ZmqContext& ctx, const std::string& endpoint) {
  std::unique_ptr<RouterSocket> r(new RouterSocket());
  try {
    r->impl_ = std::make_unique<Impl>(Ctx(ctx));
    ApplyLimits(r->impl_->sock);
    r->impl_->sock.bind(endpoint);
    r->endpoint_ = r->impl_->sock.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + endpoint + ": " + e.what() +
                               " (is another process using that port? pick another with tcp://*:PORT)");
  }
  return r;
}

RouterSocket::~RouterSocket() = default;

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
    if (frames.size() == 2) return PeerMessage{frames[0].to_string(), frames[1].to_string()};
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
  explicit Impl(zmq::context_t& c) : sock(c, zmq::socket_type::dealer) {}
  zmq::socket_t sock;
};

StatusOr<std::unique_ptr<DealerSocket>> DealerSocket::Connect(ZmqContext& ctx, const std::string& endpoint,
                                                              const std::string& identity) {
  std::unique_ptr<DealerSocket> d(new DealerSocket());
  try {
    d->impl_ = std::make_unique<Impl>(Ctx(ctx));
    ApplyLimits(d->impl_->sock);
    if (!identity.empty()) d->impl_->sock.set(zmq::sockopt::routing_id, identity);
    d->impl_->sock.connect(endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot connect to " + endpoint + ": " + e.what());
  }
  return d;
}

DealerSocket::~DealerSocket() = default;

Status DealerSocket::Send(const std::string& payload) {
  try {
    impl_->sock.send(zmq::buffer(payload), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("send failed: ") + e.what());
  }
  return Status::Ok();
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
    return Status::Unavailable(std::string("receive failed: ") + e.what());
  }
}

}  // namespace prunelab
