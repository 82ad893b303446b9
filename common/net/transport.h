// Transport: the one place that includes zmq.hpp. ROUTER (coordinator side) and DEALER
// (worker / client side) sockets carrying one opaque payload per message.
// Thread-safety: a socket belongs to the thread that uses it; ZmqContext is thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/base/status.h"

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

// ---- CURVE authentication and encryption ----
// Keys are Z85 text, 40 characters. A CURVE server admits any client that knows its public
// key unless a ZAP handler checks the client's key: the coordinator always runs one
// (ZapAuthenticator) with an allow-list per endpoint (workers, clients).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};
StatusOr<CurveKeyPair> GenerateCurveKeyPair();
bool CurveAvailable();  // libzmq built with CURVE support

struct ServerSecurity {
  CurveKeyPair keys;       // the coordinator's pair; empty: plain TCP (no authentication)
  std::string zap_domain;  // which allow-list admits peers of this socket ("workers", "clients")
  bool enabled() const { return !keys.secret_key.empty(); }
};
struct ClientSecurity {
  CurveKeyPair keys;       // this peer's pair
  std::string server_key;  // the coordinator's public key; empty: plain TCP
  bool enabled() const { return !server_key.empty(); }
};

// Answers ZeroMQ's authentication requests (ZAP, RFC 27) for every CURVE socket of a
// context: admits a peer only if its public key is in its domain's allow-list, and logs
// every refusal. Runs its own thread from Start() until destruction.
class ZapAuthenticator {
 public:
  // allow: domain -> public keys (Z85).
  ZapAuthenticator(ZmqContext& ctx, std::map<std::string, std::set<std::string>> allow);
  ~ZapAuthenticator();
  Status Start();
  uint64_t refused() const;
  uint64_t admitted() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PeerMessage {
  std::string peer;     // ROUTER routing id of the sender
  std::string payload;  // one encoded Envelope
  std::string user_id;  // under CURVE: the sender's public key (Z85) as the ZAP handler admitted it; else empty
};

class RouterSocket {
 public:
  // endpoint like tcp://*:5555, tcp://127.0.0.1:* (ephemeral port) or inproc://name.
  static StatusOr<std::unique_ptr<RouterSocket>> Bind(ZmqContext& ctx, const std::string& endpoint,
                                                      const ServerSecurity& security = {});
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
  // CURVE only: handshakes that failed before authentication (plain-mode peers, a wrong
  // server key); each is logged, rate-limited per peer.
  uint64_t handshake_failures() const;

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
                                                         const std::string& identity = "",
                                                         const ClientSecurity& security = {});
  ~DealerSocket();
  // Queues one message, waiting at most timeout_ms for the socket to take it. A DEALER whose
  // connection was closed by the peer (a refused CURVE handshake, a plain peer on a CURVE
  // endpoint) has nowhere to queue, and an unbounded send would block forever: Unavailable
  // naming the endpoint instead.
  static constexpr int kSendTimeoutMs = 5000;
  Status Send(const std::string& payload, int timeout_ms = kSendTimeoutMs);
  // Waits up to timeout_ms; nullopt on timeout.
  StatusOr<std::optional<std::string>> Receive(int timeout_ms);
  // Waits up to timeout_ms for any of `sockets` to have a message; fills `ready` with
  // their indexes (one poll for all, for programs driving many sockets on one thread).
  static void PollAny(const std::vector<DealerSocket*>& sockets, int timeout_ms, std::vector<size_t>* ready);

 private:
  DealerSocket() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prunelab
