#include "common/net/rpc.h"

namespace prunelab {

RpcClient::RpcClient(ZmqContext& ctx, std::string endpoint, ClientSecurity security)
    : ctx_(ctx), endpoint_(std::move(endpoint)), security_(std::move(security)) {}

Status RpcClient::EnsureConnected() {
  if (socket_) return Status::Ok();
  // ZeroMQ picks a fresh routing id per connection, so a reconnect never collides with
  // the id of a socket the ROUTER still has attached.
  auto s = DealerSocket::Connect(ctx_, endpoint_, "", security_);
  if (!s.ok()) return s.status();
  socket_ = std::move(s).value();
  return Status::Ok();
}

Status RpcClient::Send(const Message& msg) {
  PRUNELAB_RETURN_IF_ERROR(EnsureConnected());
  return socket_->Send(Encode(msg));
}

StatusOr<Message> RpcClient::Call(const Message& msg, int timeout_ms) {
  PRUNELAB_RETURN_IF_ERROR(EnsureConnected());
  // Bounded like the reply: a connection the peer refused leaves the socket nowhere to send.
  Status sent = socket_->Send(Encode(msg), timeout_ms);
  if (!sent.ok()) {
    socket_.reset();
    return sent;
  }
  auto reply = socket_->Receive(timeout_ms);
  if (!reply.ok()) {
    socket_.reset();
    return reply.status();
  }
  if (!reply.value().has_value()) {
    socket_.reset();
    return Status::Unavailable("no reply from " + endpoint_ + " within " + std::to_string(timeout_ms) + " ms to " +
                               MessageName(msg) +
                               (security_.enabled() ? " (CURVE: is this key in the coordinator's allow-list?)" : ""));
  }
  return Decode(*reply.value());
}

}  // namespace prunelab
