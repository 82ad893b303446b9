#include "common/rpc.h"

namespace prunelab {

RpcClient::RpcClient(ZmqContext& ctx, std::string endpoint, std::string identity)
    : ctx_(ctx), endpoint_(std::move(endpoint)), identity_(std::move(identity)) {}

Status RpcClient::EnsureConnected() {
  if (socket_) return Status::Ok();
  // A fresh routing id per reconnect: ROUTER refuses a second connection using an id
  // that is still attached.
  std::string id = identity_.empty() ? "" : identity_ + "#" + std::to_string(reconnects_++);
  auto s = DealerSocket::Connect(ctx_, endpoint_, id);
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
  PRUNELAB_RETURN_IF_ERROR(socket_->Send(Encode(msg)));
  auto reply = socket_->Receive(timeout_ms);
  if (!reply.ok()) {
    socket_.reset();
    return reply.status();
  }
  if (!reply.value().has_value()) {
    socket_.reset();
    return Status::Unavailable("no reply from " + endpoint_ + " within " + std::to_string(timeout_ms) +
                               " ms to " + MessageName(msg));
  }
  return Decode(*reply.value());
}

}  // namespace prunelab
