// RpcClient: request/reply over a DEALER socket, one request in flight at a time.
// A timed-out call drops the socket and reconnects, so a late reply to an old request
// can never be mistaken for the reply to a new one. Thread: one owner thread.
#pragma once

#include <memory>
#include <string>

#include "common/codec/codec.h"
#include "common/net/transport.h"

namespace prunelab {

class RpcClient {
 public:
  // ctx must outlive the client.
  // security: CURVE keys; default plain.
  RpcClient(ZmqContext& ctx, std::string endpoint, ClientSecurity security = {});
  // Sends msg and waits for one reply. Unavailable on timeout; InvalidArgument when the
  // reply does not decode. An ErrorMsg reply is returned as a Message, not a Status.
  StatusOr<Message> Call(const Message& msg, int timeout_ms);
  // Fire-and-forget.
  Status Send(const Message& msg);
  const std::string& endpoint() const { return endpoint_; }

 private:
  Status EnsureConnected();
  ZmqContext& ctx_;
  std::string endpoint_;
  ClientSecurity security_;
  std::unique_ptr<DealerSocket> socket_;
};

}  // namespace prunelab
