// Transport: the one place that includes zmq.hpp. ROUTER (coordinator side) and DEALER
// (worker / client side) sockets carrying one opaque payload per message.
// Thread-safety: a socket belongs to the thread that uses it; ZmqContext is thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/status.h"

namespace prunelab {

// Owns the ZeroMQ context. Built once in main() and passed to every socket; outlives them.
class ZmqContext {
 public:
  ZmqContext();
  ~ZmqContext();
  ZmqContext(const ZmqContext&) = delete;
  ZmqContext& operator=(const ZmqContext&) = delete;
  void* raw();  // zmq::context_t*, for transport.cc only

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PeerMessage {
  std::string peer;     // ROUTER routing id of the sender
  std::string payload;  // one encoded Envelope
};

class RouterSocket {
 public:
  // endpoint like tcp://*:5555, tcp://127.0.0.1:* (ephemeral port) or inproc://name.
  static StatusOr<std::unique_ptr<RouterSocket>> Bind(ZmqContext& ctx, const std::string& endpoint);
  ~RouterSocket();

  // The endpoint actually bound (ephemeral ports resolved), e.g. tcp://127.0.0.1:40123.
  const std::string& endpoint() const { return endpoint_; }
  // ZMQ_FD: becomes readable when socket events may have changed (edge-like; always
  // drain with TryReceive until it returns nothing).
  int fd();
  // Non-blocking. Frames that are not exactly [peer, payload] are discarded.
  std::optional<PeerMessage> TryReceive();
  // Non-blocking; a message to a peer that has gone is dropped.
  Status Send(const std::string& peer, const std::string& payload);

 private:
  RouterSocket() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

class DealerSocket {
 public:
  // identity: routing id the ROUTER sees (empty: ZeroMQ picks one).
  static StatusOr<std::unique_ptr<DealerSocket>> Connect(ZmqContext& ctx, const std::string& endpoint,
                                                         const std::string& identity = "");
  ~DealerSocket();
  Status Send(const std::string& payload);
  // Waits up to timeout_ms; nullopt on timeout.
  StatusOr<std::optional<std::string>> Receive(int timeout_ms);

 private:
  DealerSocket() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prunelab
